"""The model: a decoder-only Transformer in the Llama layout over rows of note fields.

One sequence position per note (or header item, or infill marker). Its input embedding is the sum
of one embedding per column of the row (:mod:`harmonixr.tokens.vocab`: the fields and the
features), and the backbone is parameter for parameter ``LlamaModel`` (RMSNorm before each
sub-layer, rotary positions, SwiGLU, no biases), so it exports to ``transformers``.

The heads write the next note one field at a time, each conditioned on the fields already chosen
(:class:`FieldHeads`): for field k, ``z_k = norm(h) + q_k + sum_{j<k} E_j(x_j)`` (plus the chosen
track's instrument once the track is known) goes through one small SwiGLU block shared by all
fields and out through the field's own projection. One backbone step writes one note; its bits are
the sum of its fields' bits. With ``head_attention`` (off in the shipped model), the fields after
the track are also told what :class:`HeadAttention` finds in the notes so far for a query that
knows the next note's bar, position and track.

Shapes: B batch, T time (positions), C channels (d_model), H heads, D head size, K predicted fields,
R row columns.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harmonixr.models.config import ModelConfig
from harmonixr.tokens.vocab import COL, COLUMNS, ECHO_COLUMNS, FIELDS


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x / rms(x) * weight, in one fused kernel, in x's dtype."""
        return F.rms_norm(x, (x.shape[-1],), self.weight.to(x.dtype), self.eps)


def rotary_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, (max_len, head_dim), in the half-split layout ``LlamaForCausalLM`` uses.

    Worked out in float64 by numpy and rounded to float32 once: PyTorch's multi-threaded float32
    ``cos`` gave other last bits in about 1 process in 16 on 2 threads, and with them other notes
    from the same seed (``tests/test_models.py`` checks the tables across processes)."""
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (D/2,)
    angles = np.outer(np.arange(max_len, dtype=np.float64), inv_freq)  # (max_len, D/2)
    angles = np.concatenate([angles, angles], axis=-1)  # (max_len, D)
    return torch.from_numpy(np.cos(angles).astype(np.float32)), torch.from_numpy(np.sin(angles).astype(np.float32))


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, T, D) queries or keys by the position tables (T, D), in x's dtype: the two
    halves (x1, x2) become (x1 cos - x2 sin, x2 cos + x1 sin), the tables' halves being equal.
    The same numbers as ``x * cos + rotate_half(x) * sin``, without multiplying a concatenated
    copy of x (on a transposed (B, H, T, D) view that took most of a long prompt's prefill)."""
    half = x.shape[-1] // 2
    c, s = cos[..., :half].to(x.dtype), sin[..., :half].to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


class LayerCache:
    """One layer's slice of a :class:`KVCache`, positioned where the next tokens go."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor, start: int) -> None:
        self.k, self.v, self.start = k, v, start  # k, v: (B, H, max_len, D)

    def write(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (B, H, T, D) new keys/values; return all keys/values up to them."""
        end = self.start + k.shape[2]
        self.k[:, :, self.start : end] = k
        self.v[:, :, self.start : end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    """Preallocated keys and values of every layer, (L, B, H, max_len, D) each: no allocation
    per generated token. ``length`` is how many positions are filled."""

    def __init__(self, cfg: ModelConfig, batch: int, max_len: int, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> None:
        shape = (cfg.n_layers, batch, cfg.n_heads, max_len, cfg.d_model // cfg.n_heads)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    def layer(self, index: int) -> LayerCache:
        return LayerCache(self.k[index], self.v[index], self.length)

    def repeat(self, batch: int) -> KVCache:
        """A cache of ``batch`` rows, each a copy of row 0 (one prompt -> N variations)."""
        out = KVCache.__new__(KVCache)
        out.k = self.k[:, :1].repeat(1, batch, 1, 1, 1)
        out.v = self.v[:, :1].repeat(1, batch, 1, 1, 1)
        out.length = self.length
        return out


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.o_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        """Causal self-attention over ``x`` (B, T, C). With ``cache``, ``x`` holds the positions from
        ``cache.start`` on and attends to everything cached before them (``cos``/``sin``: their tables)."""
        B, T, C = x.shape
        q, k, v = self.heads(self.q_proj(x)), self.heads(self.k_proj(x)), self.heads(self.v_proj(x))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        mask, is_causal = None, True
        if cache is not None:
            k, v = cache.write(k, v)  # (B, H, start + T, D)
            start = k.shape[2] - T
            is_causal = start == 0  # an empty cache: plain causal attention (the fused kernel; no mask to build)
            if T > 1 and start:  # query i sits at start + i and sees keys up to there
                mask = torch.arange(start + T, device=x.device)[None, :] <= start + torch.arange(T, device=x.device)[:, None]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, hidden, bias=False)
        self.up_proj = nn.Linear(d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """Pre-norm residual block: causal self-attention, SwiGLU (``LlamaDecoderLayer``)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model)
        self.mlp = SwiGLU(cfg.d_model, cfg.ffn_hidden)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        x = x + self.drop(self.self_attn(self.input_layernorm(x), cos, sin, cache))
        return x + self.drop(self.mlp(self.post_attention_layernorm(x)))


def column_rows(cfg: ModelConfig) -> dict[str, slice]:
    """Each column's rows in :class:`RowEmbedding`'s one table, in :data:`COLUMNS` order (empty for a
    column the model has no size for)."""
    out, start = {}, 0
    for name in COLUMNS:
        size = cfg.column_sizes.get(name, 0)  # 0: a column newer than the model
        out[name], start = slice(start, start + size), start + size
    return out


class RowEmbedding(nn.Module):
    """The sum of one embedding per column of a row, from one table (column k's rows start at
    ``offsets[k]``); columns left out of ``cfg.columns`` are not read (an ablation)."""

    offsets: torch.Tensor  # buffers, declared for the type checker
    used: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        rows = column_rows(cfg)
        self.register_buffer("offsets", torch.tensor([rows[name].start for name in COLUMNS]), persistent=False)  # (R,)
        used = [k for k, name in enumerate(COLUMNS) if name in cfg.columns]
        self.register_buffer("used", torch.tensor(used), persistent=False)  # (R',)
        self.table = nn.EmbeddingBag(rows[COLUMNS[-1]].stop, cfg.d_model, mode="sum")

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """rows (B, T, R) -> (B, T, C)."""
        ids = (rows + self.offsets)[..., self.used]  # (B, T, R')
        return self.table(ids.reshape(-1, ids.shape[-1])).view(*ids.shape[:-1], -1)

    def lookup(self, column: int, values: torch.Tensor) -> torch.Tensor:
        """The embedding of one column's values (...,) -> (..., C)."""
        return F.embedding(values + self.offsets[column], self.table.weight)


class HeadAttention(nn.Module):
    """Causal attention of the fields after the track over the backbone's outputs: the query at
    position t is built from h_t and the next note's chosen bar, position and track, the keys and
    values from h_0..h_t (the notes so far), so the pitch head can look up what was played at this
    place and on this track."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.norm = RMSNorm(cfg.d_model)
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.o_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """query, memory (B, T, C) -> (B, T, C)."""
        B, T, C = query.shape

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

        q = apply_rotary(split(self.q_proj(self.norm(query))), cos, sin)
        k = apply_rotary(split(self.k_proj(memory)), cos, sin)
        y = F.scaled_dot_product_attention(q, k, split(self.v_proj(memory)), is_causal=True)  # (B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class FieldHeads(nn.Module):
    """The next note, field by field: for field k, ``z_k = norm(h) + q_k + sum_{j<k} E_j(x_j)``
    (plus, after the track field, the chosen track's program and the note's echoes), then ``u_k = z_k + SwiGLU(norm(z_k))``
    and ``logits_k = W_k norm(u_k)``. The SwiGLU block is shared by the fields; each has its query
    ``q_k`` and its projection ``W_k``. The conditioning embeddings ``E_j`` are the input embeddings
    of the same columns."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.columns = [COL[name] for name in FIELDS]
        self.track_index = FIELDS.index("track")
        # what the heads are told once the track is chosen: its instrument, and the note's echoes
        # (where the model reads them; :mod:`harmonixr.tokens.echo`)
        self.track_columns = [COL["program"], *(COL[name] for name in ECHO_COLUMNS if name in cfg.columns)]
        self.queries = nn.Parameter(torch.zeros(len(FIELDS), cfg.d_model))
        self.in_norm = RMSNorm(cfg.d_model)
        self.mlp = SwiGLU(cfg.d_model, cfg.head_hidden)
        self.out_norm = RMSNorm(cfg.d_model)
        self.out = nn.ModuleList(nn.Linear(cfg.d_model, cfg.column_sizes[name], bias=False) for name in FIELDS)
        self.attend = HeadAttention(cfg) if cfg.head_attention else None

    def context(self, h: torch.Tensor, embed: RowEmbedding, nxt: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor) -> torch.Tensor:
        """(B, T, C) what :class:`HeadAttention` finds for every position: h (B, T, C), nxt (B, T, R)."""
        assert self.attend is not None
        told = self.track_known(embed, nxt)  # (B, T, C): the instrument and echoes, and type, bar, position, track:
        for col in self.columns[: self.track_index + 1]:
            told = told + embed.lookup(col, nxt[..., col])
        return self.attend(h + told, h, cos, sin)

    def track_known(self, embed: RowEmbedding, nxt: torch.Tensor) -> torch.Tensor:
        """(..., C) what the heads are told once the next rows' (..., R) track is chosen: its instrument and echoes."""
        known = embed.lookup(self.track_columns[0], nxt[..., self.track_columns[0]])
        for col in self.track_columns[1:]:
            known = known + embed.lookup(col, nxt[..., col])
        return known

    def conditions(self, embed: RowEmbedding, nxt: torch.Tensor) -> torch.Tensor:
        """(..., K, C) what each field's head is told about the fields before it, from the next rows (..., R)."""
        chosen = torch.stack([embed.lookup(col, nxt[..., col]) for col in self.columns[:-1]], dim=-2)  # (..., K-1, C)
        known = self.track_known(embed, nxt)  # (..., C)
        before = torch.cat([torch.zeros_like(chosen[..., :1, :]), chosen.cumsum(-2)], dim=-2)  # (..., K, C)
        after_track = (torch.arange(len(self.columns), device=nxt.device) > self.track_index).to(before.dtype)
        return before + after_track[:, None] * known[..., None, :]

    def hidden(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """h (..., C), cond (..., K', C) -> u (..., K', C) for the fields whose conditions are given."""
        z = h[..., None, :] + cond
        return self.out_norm(z + self.mlp(self.in_norm(z)))

    def forward(self, h: torch.Tensor, embed: RowEmbedding, nxt: torch.Tensor,
                ctx: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Teacher-forced logits of every field: h (..., C) the backbone's output, nxt (..., R)
        the rows it predicts (ctx (..., C): :meth:`context`, told the fields after the track) -> K tensors (..., V_k)."""
        cond = self.queries + self.conditions(embed, nxt)  # (..., K, C)
        if ctx is not None:
            after = (torch.arange(len(self.columns), device=nxt.device) > self.track_index).to(cond.dtype)
            cond = cond + after[:, None] * ctx[..., None, :]
        u = self.hidden(h, cond)  # (..., K, C)
        return [head(uk) for uk, head in zip(u.unbind(-2), self.out)]

    def field_logits(self, k: int, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Field ``k``'s logits (..., V_k) given h (..., C) and its conditions (..., C) (sampling)."""
        return self.out[k](self.hidden(h, (self.queries[k] + cond)[..., None, :])[..., 0, :])


class NoteTransformer(nn.Module):
    """Rows in, the backbone's normalized output (B, T, C) out; :attr:`heads` write the next row."""

    cos: torch.Tensor  # (max_len, D) buffers, declared for the type checker
    sin: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = RowEmbedding(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.heads = FieldHeads(cfg)
        cos, sin = rotary_tables(cfg.d_model // cfg.n_heads, cfg.max_len, cfg.rope_theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.apply(init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith(("o_proj.weight", "down_proj.weight")) and name.startswith(("layers.", "heads.attend")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))

    def forward(self, rows: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """rows (B, T, R) -> h (B, T, C), the final-normed hidden states.

        With ``cache``, ``rows`` are the positions after the ``cache.length`` already cached ones;
        their keys and values are added to the cache and its length advanced.
        """
        T = rows.shape[1]
        start = cache.length if cache is not None else 0
        if start + T > self.cfg.max_len:
            raise ValueError(f"sequence of {start + T} positions is longer than max_len {self.cfg.max_len}")
        x = self.drop(self.embed(rows))  # (B, T, C)
        cos, sin = self.cos[start : start + T], self.sin[start : start + T]
        for index, layer in enumerate(self.layers):
            x = layer(x, cos, sin, cache.layer(index) if cache is not None else None)
        if cache is not None:
            cache.length += T
        return self.norm(x)

    def context(self, h: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor | None:
        """What :class:`HeadAttention` finds for each position (B, T, C), h (B, T, C) the backbone's
        outputs from the sequence's first position, nxt (B, T, R) the rows after them; None
        for a model without it."""
        if self.heads.attend is None:
            return None
        T = h.shape[1]
        return self.heads.context(h, self.embed, nxt, self.cos[:T], self.sin[:T])

    def next_logits(self, h: torch.Tensor, nxt: torch.Tensor) -> list[torch.Tensor]:
        """Teacher-forced field logits of the rows nxt (B, T, R) after the positions whose backbone
        outputs, from the sequence's first position, are h (B, T, C): K tensors (B, T, V_k)."""
        return self.heads(h, self.embed, nxt, self.context(h, nxt))

    def logits(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """Teacher-forced field logits of ``rows[:, 1:]`` from ``rows[:, :-1]``: K tensors (B, T-1, V_k)."""
        return self.next_logits(self(rows[:, :-1]), rows[:, 1:])


def init_weights(module: nn.Module) -> None:
    """Normal(0, 0.02) for linear and embedding weights (nanoGPT's choice)."""
    if isinstance(module, (nn.Linear, nn.Embedding, nn.EmbeddingBag)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


def padded_field_nll(model: nn.Module, seqs: list[np.ndarray], targets: list[np.ndarray]) -> list[torch.Tensor]:
    """:func:`field_nll` of sequences of different lengths (each (T_i, R), its target (T_i,) bool)
    in one batch, padded at the end (which a causal model cannot see): per sequence, the nats
    (P_i, K) of its learned rows."""
    width = max(len(s) for s in seqs)
    rows = torch.zeros((len(seqs), width, seqs[0].shape[1]), dtype=torch.long)
    target = torch.zeros((len(seqs), width), dtype=torch.bool)
    for b, (seq, learned) in enumerate(zip(seqs, targets)):
        rows[b, : len(seq)] = torch.from_numpy(seq)
        target[b, : len(learned)] = torch.from_numpy(learned)
    nll, _ = field_nll(model, rows, target)  # (P, K), the sequences' learned rows in order
    return list(torch.split(nll, target[:, 1:].sum(1).tolist()))


def field_nll(model: nn.Module, rows: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nats of every predicted field of the learned rows: rows (B, T, R), target (B, T) bool ->
    (nll (P, K), mask (P, K)) over the P learned rows ``rows[:, 1:][target[:, 1:]]``; nll is 0 where
    mask is False (a field a row does not have: an end row has only a type). The heads run on the
    learned rows only. ``model`` is a :class:`NoteTransformer`, or one wrapped by DDP."""
    inner = cast(NoteTransformer, getattr(model, "module", model))
    h = model(rows[:, :-1])  # (B, T-1, C)
    learned = target[:, 1:]
    ctx = inner.context(h, rows[:, 1:])  # (B, T-1, C) or None
    ctx = ctx[learned] if ctx is not None else None  # (P, C)
    h, nxt = h[learned], rows[:, 1:][learned]  # (P, C), (P, R)
    values = torch.stack([nxt[:, col] for col in inner.heads.columns], dim=-1)  # (P, K)
    mask = values > 0
    out = [F.cross_entropy(lg.float(), values[:, k], reduction="none")
           for k, lg in enumerate(inner.heads(h, inner.embed, nxt, ctx))]
    return torch.stack(out, dim=-1) * mask, mask
