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


class HeadWeights:
    """:class:`~harmonixr.models.transformer.HeadAttention`'s weights in numpy (fp32, the matrices
    as the decoders' model has them: rounded to bf16) and the rotary tables."""

    def __init__(self, model: NoteTransformer) -> None:
        attend = model.heads.attend
        assert attend is not None
        self.n_heads, self.head_dim = attend.n_heads, attend.head_dim
        self.norm, self.eps = _np(attend.norm.weight), float(attend.norm.eps)
        self.q, self.k, self.v, self.o = (_np(m.weight.T) for m in (attend.q_proj, attend.k_proj, attend.v_proj, attend.o_proj))
        self.cos, self.sin = _np(model.cos), _np(model.sin)  # (max_len, D)

    def rotate(self, x: np.ndarray, at: np.ndarray) -> np.ndarray:
        """(n, H, D) queries or keys at positions ``at`` (n,), rotated as :func:`apply_rotary` does."""
        half = self.head_dim // 2
        c, s = self.cos[at, None, :half], self.sin[at, None, :half]  # (n, 1, D/2)
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)

    def keys_values(self, h: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The keys and values (n, H, D) each of the backbone outputs h (n, C) at positions ``at`` (n,)."""
        split = (len(h), self.n_heads, self.head_dim)
        return self.rotate((h @ self.k).reshape(split), at), (h @ self.v).reshape(split)


class HeadMemory:
    """The keys and values of the heads' attention at every position so far, per row: (rows, H,
    max_len, D) each, written as the backbone's outputs come (the prompt's at :meth:`start`)."""

    def __init__(self, weights: HeadWeights) -> None:
        self.w = weights
        self.k = self.v = np.empty(0, np.float32)
        self.length = 0

    def start(self, prompt_h: np.ndarray, rows: int, max_len: int) -> None:
        """The prompt's backbone outputs (T, C), the same for each of ``rows`` rows."""
        shape = (rows, self.w.n_heads, max_len, self.w.head_dim)
        if self.k.shape != shape:
            self.k, self.v = np.empty(shape, np.float32), np.empty(shape, np.float32)
        k, v = self.w.keys_values(prompt_h, np.arange(len(prompt_h)))  # (T, H, D)
        self.k[:, :, : len(prompt_h)] = k.transpose(1, 0, 2)[None]
        self.v[:, :, : len(prompt_h)] = v.transpose(1, 0, 2)[None]
        self.length = len(prompt_h)

    def write(self, h: np.ndarray) -> None:
        """The next position's backbone outputs (rows, C)."""
        k, v = self.w.keys_values(h, np.full(len(h), self.length))
        self.k[:, :, self.length], self.v[:, :, self.length] = k, v
        self.length += 1

    def context(self, h: np.ndarray, known: np.ndarray) -> np.ndarray:
        """(rows, C) what the heads' attention finds for the last position's outputs h (rows, C),
        told the next note's bar, position and track (``known``, (rows, C), their embeddings)."""
        w, end = self.w, self.length
        z = h + known
        z = z / np.sqrt((z * z).mean(-1, keepdims=True) + w.eps) * w.norm
        q = w.rotate((z @ w.q).reshape(len(h), w.n_heads, w.head_dim), np.full(len(h), end - 1))  # (n, H, D)
        scores = np.einsum("nhd,nhtd->nht", q, self.k[:, :, :end]) / np.sqrt(w.head_dim)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        y = np.einsum("nht,nhtd->nhd", scores / scores.sum(-1, keepdims=True), self.v[:, :, :end])
        return (y.reshape(len(h), -1) @ w.o).astype(np.float32)


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
        self.attend = HeadWeights(model) if heads.attend is not None else None  # the heads' attention, if the model has it

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
    autocast to ``dtype`` (None: fp32); return the cache (fp32) and every position's hidden
    state (T, C)."""
    device = next(model.parameters()).device
    cache = KVCache(model.cfg, 1, max_len, device)
    with autocast(device, dtype):
        h = model(torch.from_numpy(prompt)[None].to(device), cache)[0]  # (T, C)
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
        self.memory = HeadMemory(self.heads.attend) if self.heads.attend is not None else None
        self.cache: KVCache | None = None
        self.prefill = LastPrompt(self.model, prefill_dtype)

    def start(self, prompt: np.ndarray, rows: int, max_len: int) -> np.ndarray:
        """Run ``prompt`` (T, R); return the hidden state of ``rows`` copies (rows, C)."""
        cache, h = self.prefill(prompt, max_len)
        self.cache = cache.repeat(rows)
        if self.memory is not None:
            self.memory.start(h, rows, max_len)
        return h[-1:].repeat(rows, axis=0)

    @torch.inference_mode()
    def step(self, rows: np.ndarray) -> np.ndarray:
        """rows (n, R) -> hidden states (n, C)."""
        h = _np(self.model(torch.from_numpy(rows)[:, None].to(self.device), self.cache)[:, -1])
        if self.memory is not None:
            self.memory.write(h)
        return h


class NumbaDecoder:
    """The same backbone, one compiled call per position (CPU); the prompt as in :class:`TorchDecoder`."""

    def __init__(self, model: NoteTransformer, prefill_dtype: torch.dtype | None = None) -> None:
        self.model = bf16_matrices(model)
        self.heads = Heads(self.model)
        self.memory = HeadMemory(self.heads.attend) if self.heads.attend is not None else None
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
        if self.memory is not None:
            self.memory.start(h, rows, max_len)
        return h[-1:].repeat(rows, axis=0)

    def step(self, rows: np.ndarray) -> np.ndarray:
        w = self.weights
        x = self.heads.embed_rows(rows).astype(np.float32)
        out = self.out[: len(rows)]
        decode_step(x, self.pos, w["cos"], w["sin"], w["attn_norm"], w["qkv"], w["o"], w["mlp_norm"], w["gu"], w["down"],
                    w["final_norm"], self.k, self.v, out, self.eps)
        self.pos += 1
        if self.memory is not None:
            self.memory.write(out)
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


