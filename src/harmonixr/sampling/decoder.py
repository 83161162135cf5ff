"""Decoders: run a :class:`MusicTransformer` one token per row, keeping its keys and values.

Both hold a preallocated cache for the whole generation (no allocation per token) and give the
sampler numpy logits:

- :class:`TorchDecoder`: the model itself with a :class:`KVCache`, on any device (GPU included);
- :class:`NumbaDecoder`: CPU only; the prompt runs once through the PyTorch model (batch 1), its
  cache is shared as numpy arrays, copied to the N rows, and each new token runs the compiled
  :func:`~harmonixr.sampling.kernels.decode_step`.

:func:`make_decoder` is the one place that picks: numba on the CPU (unless told otherwise),
PyTorch everywhere else.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from harmonixr.models.transformer import KVCache, MusicTransformer
from harmonixr.sampling.kernels import decode_step

BACKENDS = ("auto", "numba", "torch")


@torch.inference_mode()
def prefill(model: MusicTransformer, prompt: Sequence[int], feats: np.ndarray, max_len: int) -> tuple[KVCache, np.ndarray]:
    """Run ``prompt`` (T,) with ``feats`` (T, F) once into a fresh cache of ``max_len`` positions
    (batch 1); return the cache and the next-token logits (1, V)."""
    device = next(model.parameters()).device
    cache = KVCache(model.cfg, 1, max_len, device)
    ids = torch.tensor([list(prompt)], device=device)  # (1, T)
    logits = model(ids, torch.from_numpy(feats)[None].to(device), cache)[:, -1]  # (1, V)
    return cache, logits.float().cpu().numpy()


class TorchDecoder:
    """The PyTorch model with a KV cache; works on every device."""

    def __init__(self, model: MusicTransformer) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.cache: KVCache | None = None

    def start(self, prompt: Sequence[int], feats: np.ndarray, rows: int, max_len: int) -> np.ndarray:
        """Run ``prompt`` (T,) with ``feats`` (T, F); return the next-token logits of ``rows`` copies (rows, V)."""
        cache, logits = prefill(self.model, prompt, feats, max_len)
        self.cache = cache.repeat(rows)
        return logits.repeat(rows, axis=0)

    @torch.inference_mode()
    def step(self, tokens: np.ndarray, feats: np.ndarray) -> np.ndarray:
        """tokens (rows,), feats (rows, F) -> logits (rows, V)."""
        ids = torch.from_numpy(tokens)[:, None].to(self.device)  # (rows, 1)
        logits = self.model(ids, torch.from_numpy(feats)[:, None].to(self.device), self.cache)[:, -1]
        return logits.float().cpu().numpy()


class NumbaDecoder:
    """The same forward pass, one compiled call per token (CPU)."""

    def __init__(self, model: MusicTransformer) -> None:
        self.model = model.eval()
        self.weights = pack(model)
        self.eps = float(model.norm.eps)
        self.k = self.v = None
        self.pos = 0

    def start(self, prompt: Sequence[int], feats: np.ndarray, rows: int, max_len: int) -> np.ndarray:
        cache, logits = prefill(self.model, prompt, feats, max_len)
        keys = cache.k.numpy().transpose(0, 1, 2, 4, 3)  # (L, 1, H, D, max_len): the kernel's layout
        self.k = np.ascontiguousarray(keys.repeat(rows, axis=1))  # (L, rows, H, D, max_len)
        self.v = np.ascontiguousarray(cache.v.numpy().repeat(rows, axis=1))
        self.pos = len(prompt)
        self.logits = np.empty((rows, logits.shape[1]), np.float32)
        return logits.repeat(rows, axis=0)

    def step(self, tokens: np.ndarray, feats: np.ndarray) -> np.ndarray:
        w = self.weights
        ids = np.concatenate([tokens[:, None], feats[:, w["columns"]] + w["offsets"]], axis=1)  # (rows, 1 + F)
        decode_step(ids, self.pos, w["table"], w["rotary"], w["qkv"], w["o"], w["gu"], w["down"], w["head"],
                    self.k, self.v, self.logits, self.eps)
        self.pos += 1
        return self.logits  # overwritten by the next step


class EncoderDecoderDecoder:
    """The encoder-decoder baseline (:class:`~harmonixr.models.baselines.EncoderDecoder`): the
    prompt up to its last ``Infill_Fill`` is the encoder's input, the fill so far the decoder's; no
    cache, the decoder runs over the whole fill at each step (the baseline is small)."""

    def __init__(self, model: torch.nn.Module, fill_id: int) -> None:
        self.model, self.fill_id = model.eval(), fill_id
        self.device = next(model.parameters()).device

    @torch.inference_mode()
    def start(self, prompt: Sequence[int], feats: np.ndarray, rows: int, max_len: int) -> np.ndarray:
        if self.fill_id not in prompt:
            raise ValueError("the encoder-decoder only fills holes: its prompt must end in Infill_Fill")
        split = len(prompt) - 1 - list(prompt)[::-1].index(self.fill_id)
        self.src = torch.tensor([list(prompt[:split])], device=self.device).repeat(rows, 1)  # (rows, S)
        self.src_feats = torch.from_numpy(feats[:split])[None].repeat(rows, 1, 1).to(self.device)
        self.keys = torch.ones_like(self.src, dtype=torch.bool)
        self.tgt = torch.tensor([list(prompt[split:])], device=self.device).repeat(rows, 1)  # (rows, U)
        self.tgt_feats = torch.from_numpy(feats[split:])[None].repeat(rows, 1, 1).to(self.device)
        return self._logits()

    @torch.inference_mode()
    def step(self, tokens: np.ndarray, feats: np.ndarray) -> np.ndarray:
        self.tgt = torch.cat([self.tgt, torch.from_numpy(tokens)[:, None].to(self.device)], 1)
        self.tgt_feats = torch.cat([self.tgt_feats, torch.from_numpy(feats)[:, None].to(self.device)], 1)
        return self._logits()

    def _logits(self) -> np.ndarray:
        out = self.model(self.src, self.src_feats, self.keys, self.tgt, self.tgt_feats)[:, -1]  # (rows, V)
        return out.float().cpu().numpy()


def pack(model: MusicTransformer) -> dict[str, np.ndarray]:
    """The model's weights as the kernel wants them: fused, transposed, norm weights folded in."""

    def t(x: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(x.detach().float().cpu().numpy())

    tables = [model.embed_tokens.weight, *(table.weight for table in model.structure.tables)]
    sizes = [0, *np.cumsum([table.shape[0] for table in tables])[:-1]]
    head_dim = model.cfg.d_model // model.cfg.n_heads
    half = head_dim // 2
    swap = torch.zeros(head_dim, head_dim)  # x @ swap = cat(-x[half:], x[:half])
    swap[torch.arange(half) + half, torch.arange(half)] = -1.0
    swap[torch.arange(half), torch.arange(half) + half] = 1.0
    rotary = torch.diag_embed(model.cos) + swap[None] * model.sin[:, None, :]  # (max_len, D, D)
    layers = model.layers
    return {
        "table": t(torch.cat(tables)),
        "offsets": np.asarray(sizes[1:], dtype=np.int64),
        "columns": np.asarray(model.structure.columns, dtype=np.int64),
        "rotary": t(rotary),
        "qkv": np.stack([t(b.input_layernorm.weight[:, None] * torch.cat(
            [b.self_attn.q_proj.weight, b.self_attn.k_proj.weight, b.self_attn.v_proj.weight]).T) for b in layers]),
        "o": np.stack([t(b.self_attn.o_proj.weight.T) for b in layers]),
        "gu": np.stack([t(b.post_attention_layernorm.weight[:, None] * torch.cat(
            [b.mlp.gate_proj.weight, b.mlp.up_proj.weight]).T) for b in layers]),
        "down": np.stack([t(b.mlp.down_proj.weight.T) for b in layers]),
        "head": t(model.norm.weight[:, None] * model.lm_head.weight.T),
    }


def make_decoder(model: torch.nn.Module, backend: str = "auto",
                 fill_id: int | None = None) -> TorchDecoder | NumbaDecoder | EncoderDecoderDecoder:
    """``auto``: numba when the model is on the CPU, else PyTorch; the encoder-decoder baseline
    (which fills holes only, ``fill_id`` marking where the fill starts) has its own decoder."""
    if not isinstance(model, MusicTransformer):
        if fill_id is None:
            raise ValueError(f"{type(model).__name__} can only fill holes; pass the Infill_Fill id")
        return EncoderDecoderDecoder(model, fill_id)
    if backend not in BACKENDS:
        raise ValueError(f"unknown decoder backend {backend!r}; one of {BACKENDS}")
    on_cpu = next(model.parameters()).device.type == "cpu"
    if backend == "numba" and not on_cpu:
        raise ValueError("the numba decoder runs on the CPU; use backend='torch' on a GPU")
    return NumbaDecoder(model) if backend == "numba" or (backend == "auto" and on_cpu) else TorchDecoder(model)
