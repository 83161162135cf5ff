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

Both decoders run the model with its matrices in int8, a scale per output row
(:func:`int8_matrices`), the arithmetic in fp32: bits per note of the test pieces move by less than
0.005 (``benchmarks/sampling.py --parts int8`` measures it), and the numba step reads a byte a
weight where the bf16 it read before took two (at batch 1 it is bound by reading them).
:func:`make_decoder` is the one place that picks the backend, and the prompt's precision: bf16
where the machine has it.
"""

from __future__ import annotations

import copy
from typing import cast

import numpy as np
import torch

from harmonixr.errors import HarmonixrError
from harmonixr.models.transformer import Attention, Block, KVCache, NoteTransformer, SwiGLU
from harmonixr.runtime import autocast, autocast_dtype
from harmonixr.sampling.kernels import decode_step, field_head
from harmonixr.tokens.vocab import COLUMNS, ECHO_COLUMNS, MATCHED_COLUMN, SOUNDING_COLUMNS

BACKENDS = ("auto", "numba", "torch")
INT8_TOP = 127  # the largest int8 magnitude a weight takes (symmetric: -128 is not used)


def _np(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().float().cpu().numpy())


def int8_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear layer's weight (out, in) as int8 values q (out, in) and a scale (out, 1) per
    output row, weight ~ q x scale: symmetric, the row's largest magnitude at 127."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny) / INT8_TOP
    return torch.clamp(torch.round(w / scale), -INT8_TOP, INT8_TOP), scale


def int8_matrix(weight: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A weight (out, in) in the kernels' layout (:func:`~harmonixr.sampling.kernels.matmul`):
    q (in, out) int8 and scale (out,) fp32."""
    q, scale = int8_rows(weight)
    return np.ascontiguousarray(q.T.cpu().numpy().astype(np.int8)), np.ascontiguousarray(scale[:, 0].cpu().numpy())


def stacked(matrices: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The layers' int8 matrices as one pair, q (L, ...) and scale (L, ...), each layer's as :func:`pack` cuts it."""
    # C-contiguous: a column-cut matrix stacks into another order, and numba compiles slower code for it
    return np.ascontiguousarray(np.stack([q for q, _ in matrices])), np.ascontiguousarray(np.stack([s for _, s in matrices]))


@torch.no_grad()
def int8_matrices(model: NoteTransformer) -> NoteTransformer:
    """A copy of ``model`` (eval mode) whose linear layers' weights are what the decoders run:
    q x scale of :func:`int8_rows` (in fp32 tensors); the embeddings and the norms stay fp32."""
    out = copy.deepcopy(model).eval()
    for module in out.modules():
        if isinstance(module, torch.nn.Linear):
            q, scale = int8_rows(module.weight)
            module.weight.copy_(q * scale)
    return out


class HeadWeights:
    """:class:`~harmonixr.models.transformer.HeadAttention`'s weights in numpy (fp32, the matrices
    as the decoders' model has them: :func:`int8_matrices`) and the rotary tables."""

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
    matrices int8 (:func:`int8_matrix`)."""

    def __init__(self, model: NoteTransformer) -> None:
        heads, embed = model.heads, model.embed
        self.table = _np(embed.table.weight)  # (E, C)
        self.offsets = embed.offsets.cpu().numpy()
        self.used = embed.used.cpu().numpy()
        self.queries = _np(heads.queries)  # (K, C)
        self.in_norm, self.out_norm = _np(heads.in_norm.weight), _np(heads.out_norm.weight)
        self.eps = float(heads.in_norm.eps)
        mlp = heads.mlp
        self.gate_up = int8_matrix(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))  # (C, 2hh)
        self.down = int8_matrix(mlp.down_proj.weight)  # (hh, C)
        self.out = [int8_matrix(cast(torch.nn.Linear, o).weight) for o in heads.out]  # (C, V_k)
        self.sizes = [q.shape[1] for q, _ in self.out]  # V_k
        self.columns = heads.columns
        # (column, index in ECHO_COLUMNS) of each echo the heads are told after the track's program
        self.echo_columns = [(c, ECHO_COLUMNS.index(COLUMNS[c])) for c in heads.track_columns if COLUMNS[c] in ECHO_COLUMNS]
        self.reads_matched = COLUMNS.index(MATCHED_COLUMN) in heads.track_columns  # else the sampler skips working it out
        self.reads_sounding = COLUMNS.index(SOUNDING_COLUMNS[0]) in heads.track_columns  # alike
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
        out = np.empty((len(z), self.sizes[k]), np.float32)
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
    """The PyTorch model (its matrices int8, :func:`int8_matrices`) with a KV cache; works on every
    device. ``prefill_dtype``: the prompt's autocast dtype (None: fp32); the steps run in fp32."""

    def __init__(self, model: NoteTransformer, prefill_dtype: torch.dtype | None = None) -> None:
        self.model = int8_matrices(model)
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
        self.model = int8_matrices(model)
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


def pack(model: NoteTransformer) -> dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]]:
    """The backbone's weights as :func:`~harmonixr.sampling.kernels.decode_step` wants them: the
    matrices int8 (:func:`int8_matrix`), transposed and cut into the parts its threads take (each
    head's QKV columns and output rows; each half of the MLP's gate/up columns and down rows), the
    norms' weights apart (fp32)."""
    layers = cast("list[Block]", list(model.layers))
    attn, mlp = [b.self_attn for b in layers], [b.mlp for b in layers]
    heads, dim = attn[0].n_heads, attn[0].head_dim
    hidden = mlp[0].down_proj.weight.shape[1]
    assert hidden % 2 == 0, "the MLP's hidden units split in two halves"
    half = hidden // 2

    def by_head(a: Attention) -> tuple[np.ndarray, np.ndarray]:  # (H, C, 3D) and (H, 3D): each head's q, k, v columns
        q, scale = int8_matrix(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))  # (C, 3C)
        columns = [np.concatenate([np.arange(part * heads * dim + h * dim, part * heads * dim + (h + 1) * dim)
                                   for part in range(3)]) for h in range(heads)]
        return np.stack([q[:, c] for c in columns]), np.stack([scale[c] for c in columns])

    def by_half(m: SwiGLU) -> tuple[np.ndarray, np.ndarray]:  # (2, C, FF) and (2, FF): each half's gate, then up columns
        q, scale = int8_matrix(torch.cat([m.gate_proj.weight, m.up_proj.weight]))  # (C, 2FF)
        columns = [np.r_[k * half : (k + 1) * half, hidden + k * half : hidden + (k + 1) * half] for k in range(2)]
        return np.stack([q[:, c] for c in columns]), np.stack([scale[c] for c in columns])

    def rows_in(matrix: tuple[np.ndarray, np.ndarray], parts: int) -> tuple[np.ndarray, np.ndarray]:
        q, scale = matrix  # q (in, out) -> (parts, in/parts, out): each part's rows
        return q.reshape(parts, -1, q.shape[1]), scale

    return {
        "cos": _np(model.cos), "sin": _np(model.sin),  # (max_len, D) each
        "attn_norm": np.stack([_np(b.input_layernorm.weight) for b in layers]),
        "qkv": stacked([by_head(a) for a in attn]),
        "o": stacked([rows_in(int8_matrix(a.o_proj.weight), heads) for a in attn]),
        "mlp_norm": np.stack([_np(b.post_attention_layernorm.weight) for b in layers]),
        "gu": stacked([by_half(m) for m in mlp]),
        "down": stacked([rows_in(int8_matrix(m.down_proj.weight), 2) for m in mlp]),
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


