"""Decoders: run a :class:`NoteTransformer` one position per row, keeping its keys and values.

The backbone runs in one of two ways, both with a preallocated cache for the whole generation (no
allocation per position):

- :class:`TorchDecoder`: the model itself with a :class:`KVCache`, on any device (GPU included);
- :class:`NumbaDecoder`: CPU only; the prompt runs once through the PyTorch model (batch 1), its
  cache is shared as numpy arrays, copied to the N rows, and each new position runs the compiled
  :func:`~harmonixr.sampling.kernels.decode_step`.

The field heads and the input embedding of new rows run outside PyTorch for both (:class:`Heads`:
numpy lookups, and the heads' block compiled, :func:`~harmonixr.sampling.kernels.field_head`):
they are small matrices on a few rows, where per-call overhead is what counts, and the same code
on every backend means the same logits for the same hidden state.

Both decoders run the model with its matrices rounded to bf16 (:func:`bf16_matrices`), the
arithmetic in fp32: the model trained under bf16 autocast, so these are the weights its matmuls
saw, and bits per note on the test pieces move by less than 0.001 (``benchmarks/sampling.py
--parts bf16`` measures it); the numba step reads half the bytes. :func:`make_decoder` is the one place
that picks the backend, and the prompt's precision: bf16 where the machine has it.
"""

from __future__ import annotations

import copy
from typing import cast

import numpy as np
import torch

from harmonixr.errors import HarmonixrError
from harmonixr.models.transformer import Block, KVCache, NoteTransformer
from harmonixr.runtime import autocast, autocast_dtype
from harmonixr.sampling.kernels import decode_step, field_head
from harmonixr.tokens.vocab import COLUMNS, ECHO_COLUMNS, MATCHED_COLUMN

BACKENDS = ("auto", "numba", "torch")


def _np(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().float().cpu().numpy())


def bf16_bits(x: torch.Tensor) -> np.ndarray:
    """``x`` rounded to bf16 (to nearest, ties to even), as the uint16 bit patterns the kernels read."""
    return np.ascontiguousarray(x.detach().cpu().to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16))


@torch.no_grad()
def bf16_matrices(model: NoteTransformer) -> NoteTransformer:
    """A copy of ``model`` (eval mode) whose linear layers' weights are rounded to bf16 (in fp32
    tensors): what the decoders run; the embeddings and the norms stay fp32."""
    out = copy.deepcopy(model).eval()
    for module in out.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight.copy_(module.weight.to(torch.bfloat16).float())
    return out


class Heads:
    """The model's input embedding and field heads in numpy (see :class:`FieldHeads`), the heads'
    matrices as bf16 bits."""

    def __init__(self, model: NoteTransformer) -> None:
        heads, embed = model.heads, model.embed
        self.table = _np(embed.table.weight)  # (E, C)
        self.offsets = embed.offsets.cpu().numpy()
        self.used = embed.used.cpu().numpy()
        self.queries = _np(heads.queries)  # (K, C)
        self.in_norm, self.out_norm = _np(heads.in_norm.weight), _np(heads.out_norm.weight)
        self.eps = float(heads.in_norm.eps)
        mlp = heads.mlp
        self.gate_up = bf16_bits(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]).T)  # (C, 2hh)
        self.down = bf16_bits(mlp.down_proj.weight.T)  # (hh, C)
        self.out = [bf16_bits(cast(torch.nn.Linear, o).weight.T) for o in heads.out]  # (C, V_k)
        self.sizes = [o.shape[1] for o in self.out]  # V_k
        self.columns = heads.columns
        # (column, index in ECHO_COLUMNS) of each echo the heads are told after the track's program
        self.echo_columns = [(c, ECHO_COLUMNS.index(COLUMNS[c])) for c in heads.track_columns if COLUMNS[c] in ECHO_COLUMNS]
        self.reads_matched = COLUMNS.index(MATCHED_COLUMN) in heads.track_columns  # else the sampler skips working it out

    def embed_rows(self, rows: np.ndarray) -> np.ndarray:
        """(n, R) rows -> (n, C) input embeddings."""
        ids = (rows + self.offsets)[:, self.used]
        return self.table[ids].sum(1, dtype=np.float32)

    def lookup(self, column: int, values: np.ndarray) -> np.ndarray:
        """(n,) stored values of one column -> (n, C) embeddings."""
        return self.table[np.asarray(values) + self.offsets[column]]

    def lookup_sum(self, columns: list[int], values: np.ndarray) -> np.ndarray:
        """(n, E) stored values of E columns -> (n, C) the sum of their embeddings, in one gather."""
        return self.table[values + self.offsets[columns]].sum(1, dtype=np.float32)

    def logits(self, k: int, h: np.ndarray, cond: np.ndarray) -> np.ndarray:
        """Field ``k``'s logits (n, V_k) for hidden states h (n, C) and their conditions (n, C)."""
        z = np.ascontiguousarray(h + self.queries[k] + cond, dtype=np.float32)
        out = np.empty((len(z), self.out[k].shape[1]), np.float32)
        field_head(z, self.in_norm, self.gate_up, self.down, self.out_norm, self.out[k], self.eps, out)
        return out


@torch.inference_mode()
def prefill(model: NoteTransformer, prompt: np.ndarray, max_len: int,
            dtype: torch.dtype | None = None) -> tuple[KVCache, np.ndarray]:
    """Run ``prompt`` (T, R) once into a fresh cache of ``max_len`` positions (batch 1), under
    autocast to ``dtype`` (None: fp32); return the cache (fp32) and the last position's hidden
    state (1, C)."""
    device = next(model.parameters()).device
    cache = KVCache(model.cfg, 1, max_len, device)
    with autocast(device, dtype):
        h = model(torch.from_numpy(prompt)[None].to(device), cache)[:, -1]  # (1, C)
    return cache, _np(h)


class LastPrompt:
    """The prefill of the last prompt, kept: the next draw on the same prompt (a fill drawn again
    so that every track plays, a second call with other seeds) starts from it. The decoder that
    holds it is dropped when the weights change (:meth:`Sampler.weights_changed`), and it with it."""

    def __init__(self, model: NoteTransformer, dtype: torch.dtype | None = None) -> None:
        self.model, self.dtype = model, dtype
        self.key: tuple | None = None
        self.value: tuple[KVCache, np.ndarray] | None = None

    def __call__(self, prompt: np.ndarray, max_len: int) -> tuple[KVCache, np.ndarray]:
        key = (prompt.shape, prompt.dtype.str, prompt.tobytes(), max_len)
        if self.value is None or key != self.key:
            self.key, self.value = key, prefill(self.model, prompt, max_len, self.dtype)
        return self.value  # never written to: the decoders copy it into their rows


class TorchDecoder:
    """The PyTorch model (its matrices bf16, :func:`bf16_matrices`) with a KV cache; works on every
    device. ``prefill_dtype``: the prompt's autocast dtype (None: fp32); the steps run in fp32."""

    def __init__(self, model: NoteTransformer, prefill_dtype: torch.dtype | None = None) -> None:
        self.model = bf16_matrices(model)
        self.device = next(model.parameters()).device
        self.heads = Heads(self.model)
        self.cache: KVCache | None = None
        self.prefill = LastPrompt(self.model, prefill_dtype)

    def start(self, prompt: np.ndarray, rows: int, max_len: int) -> np.ndarray:
        """Run ``prompt`` (T, R); return the hidden state of ``rows`` copies (rows, C)."""
        cache, h = self.prefill(prompt, max_len)
        self.cache = cache.repeat(rows)
        return h.repeat(rows, axis=0)

    @torch.inference_mode()
    def step(self, rows: np.ndarray) -> np.ndarray:
        """rows (n, R) -> hidden states (n, C)."""
        h = self.model(torch.from_numpy(rows)[:, None].to(self.device), self.cache)[:, -1]
        return _np(h)


class NumbaDecoder:
    """The same backbone, one compiled call per position (CPU); the prompt as in :class:`TorchDecoder`."""

    def __init__(self, model: NoteTransformer, prefill_dtype: torch.dtype | None = None) -> None:
        self.model = bf16_matrices(model)
        self.heads = Heads(self.model)
        self.weights = pack(self.model)
        self.eps = float(model.norm.eps)
        self.k = self.v = np.empty(0, np.float32)  # the caches, sized by start()
        self.pos = 0
        self.prefill = LastPrompt(self.model, prefill_dtype)

    def start(self, prompt: np.ndarray, rows: int, max_len: int) -> np.ndarray:
        seen = len(prompt)  # only the prompt's positions are kept: a step writes its own before reading it
        cache, h = self.prefill(prompt, seen)
        layers, _, heads, _, dim = cache.k.shape
        if self.k.shape != (layers, rows, heads, dim, max_len):  # kept from call to call (no fresh pages to fault in)
            self.k = np.empty((layers, rows, heads, dim, max_len), np.float32)  # the kernel's layout: keys along time
            self.v = np.empty((layers, rows, heads, max_len, dim), np.float32)
        self.k[..., :seen] = cache.k.numpy().transpose(0, 1, 2, 4, 3)
        self.v[:, :, :, :seen] = cache.v.numpy()
        self.pos = seen
        self.out = np.empty((rows, h.shape[1]), np.float32)
        return h.repeat(rows, axis=0)

    def step(self, rows: np.ndarray) -> np.ndarray:
        w = self.weights
        x = self.heads.embed_rows(rows).astype(np.float32)
        out = self.out[: len(rows)]
        decode_step(x, self.pos, w["cos"], w["sin"], w["attn_norm"], w["qkv"], w["o"], w["mlp_norm"], w["gu"], w["down"],
                    w["final_norm"], self.k, self.v, out, self.eps)
        self.pos += 1
        return out.copy()


def pack(model: NoteTransformer) -> dict[str, np.ndarray]:
    """The backbone's weights as the kernel wants them: the matrices fused, transposed and in bf16
    bits, the norms' weights apart (fp32)."""
    layers = cast("list[Block]", list(model.layers))
    attn, mlp = [b.self_attn for b in layers], [b.mlp for b in layers]
    return {
        "cos": _np(model.cos), "sin": _np(model.sin),  # (max_len, D) each
        "attn_norm": np.stack([_np(b.input_layernorm.weight) for b in layers]),
        "qkv": np.stack([bf16_bits(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).T) for a in attn]),
        "o": np.stack([bf16_bits(a.o_proj.weight.T) for a in attn]),
        "mlp_norm": np.stack([_np(b.post_attention_layernorm.weight) for b in layers]),
        "gu": np.stack([bf16_bits(torch.cat([m.gate_proj.weight, m.up_proj.weight]).T) for m in mlp]),
        "down": np.stack([bf16_bits(m.down_proj.weight.T) for m in mlp]),
        "final_norm": _np(model.norm.weight),
    }


def make_decoder(model: NoteTransformer, backend: str = "auto") -> TorchDecoder | NumbaDecoder:
    """``auto``: numba when the model is on the CPU, else PyTorch; the prompt runs in bf16 where
    the machine has it (``runtime.autocast_dtype``: the model trained under bf16 autocast)."""
    if backend not in BACKENDS:
        raise HarmonixrError(f"unknown decoder backend {backend!r}; one of {BACKENDS}")
    device = next(model.parameters()).device
    on_cpu = device.type == "cpu"
    if backend == "numba" and not on_cpu:
        raise HarmonixrError("the numba decoder runs on the CPU; use backend='torch' on a GPU")
    kind = NumbaDecoder if backend == "numba" or (backend == "auto" and on_cpu) else TorchDecoder
    return kind(model, autocast_dtype("auto", device))


