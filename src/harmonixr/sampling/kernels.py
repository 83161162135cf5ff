"""The backbone's decode step of :class:`~harmonixr.models.transformer.NoteTransformer`, compiled with numba.

At batch 1 a small model spends its time in framework overhead, not arithmetic: PyTorch eager runs
about 25 operators per layer at 5-20 us each, ``transformers``' ``generate`` adds its own per-step
bookkeeping. :func:`decode_step` is the backbone's whole forward pass for one new position per
row in one compiled call: per layer RMSNorm, then the attention block on numba's threads by
head (the head's QKV columns, rotary positions, attention over the cache, its rows of the output
projection), RMSNorm, then the MLP block by half of the hidden units (gate/up columns, SiLU, its
rows of the down projection); then the final RMSNorm. The matrices are int8 with a scale per
output column (``pack`` in :mod:`harmonixr.sampling.decoder`), the arithmetic fp32: at batch 1
the step reads 4.7 MiB of weights, where bf16 read 9.2 and fp32 18.4; split between the two
cores, each streams half of them. ``benchmarks/sampling.py`` measures it;
``tests/test_sampler.py`` checks its hidden states against the PyTorch model with the same
matrices.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

_JIT: dict[str, Any] = {"fastmath": True, "cache": True, "nogil": True}
LOG2E = 1.4426950408889634
EXP2 = (0.6931471805599453, 0.2402265069591007, 0.05550410866482158, 0.009618129107628477,
        0.0013333558146428443, 0.00015403530393381606)  # 2^f ~ 1 + sum EXP2[i] f^(i+1) on |f| <= 1/2 (Taylor)
Matrix = tuple[np.ndarray, np.ndarray]  # int8 q (I, J) and fp32 scale (J,): the matrix q x scale, column by column
Stacked = tuple[np.ndarray, np.ndarray]  # the same, one per layer: q (L, I, J), scale (L, J)
EXP_FLOOR = -126.0  # 2^-126, the smallest normal float: below it a weight is as good as 0 beside the top one (1)


@nb.njit(**_JIT)
def matmul(X: np.ndarray, W: Matrix, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out (B, J) = X (B, I) @ W, W an int8 matrix (q (I, J) int8, scale (J,) fp32: W = q x scale
    column by column, from :func:`~harmonixr.sampling.decoder.int8_matrix`): four rows of q at a
    time are converted to fp32 (for several rows of X into a buffer that stays in L1, for one
    where they are used: 20-30% faster a step), multiplied into ``out``, and each column is scaled
    at the end. At batch 1 the step is bound by reading the weights: a byte a weight, where bf16
    read two and fp32 four."""
    q, scale = W
    B, I = X.shape  # noqa: E741 - the kernel names its dimensions B, I, J
    J = q.shape[1]
    out[:] = 0.0
    rows = np.empty((4, J), np.float32)
    i = 0
    if B == 1:  # one row of X: each weight is used once, converted where it is used (no buffer)
        while i + 4 <= I:
            x0, x1, x2, x3 = X[0, i], X[0, i + 1], X[0, i + 2], X[0, i + 3]
            for j in range(J):
                out[0, j] += (x0 * np.float32(q[i, j]) + x1 * np.float32(q[i + 1, j]) + x2 * np.float32(q[i + 2, j])
                              + x3 * np.float32(q[i + 3, j]))
            i += 4
    while i < I:
        take = min(4, I - i)
        for r in range(take):
            for j in range(J):
                rows[r, j] = np.float32(q[i + r, j])
        for b in range(B):
            if take == 4:
                x0, x1, x2, x3 = X[b, i], X[b, i + 1], X[b, i + 2], X[b, i + 3]
                for j in range(J):
                    out[b, j] += x0 * rows[0, j] + x1 * rows[1, j] + x2 * rows[2, j] + x3 * rows[3, j]
            else:
                for r in range(take):
                    x0 = X[b, i + r]
                    for j in range(J):
                        out[b, j] += x0 * rows[r, j]
        i += take
    for b in range(B):
        for j in range(J):
            out[b, j] *= scale[j]


@nb.njit(**_JIT)
def rms_norm(x: np.ndarray, weight: np.ndarray, out: np.ndarray, eps: float) -> None:  # pragma: no cover - compiled
    """out (B, C) = x / rms(x) * weight, row by row."""
    B, C = x.shape
    for b in range(B):
        total = 0.0
        for c in range(C):
            total += x[b, c] * x[b, c]
        scale = 1.0 / np.sqrt(total / C + eps)
        for c in range(C):
            out[b, c] = x[b, c] * scale * weight[c]


@nb.njit(**_JIT)
def attend(q: np.ndarray, keys: np.ndarray, seen: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out[:seen] = q (D,) @ keys[:, :seen], keys (D, max_len) C-contiguous (runs along time)."""
    out[:seen] = 0.0
    for j in range(keys.shape[0]):
        qj = q[j]
        for t in range(seen):
            out[t] += qj * keys[j, t]


@nb.njit(**_JIT)
def mix(weights: np.ndarray, values: np.ndarray, seen: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out (D,) = weights[:seen] @ values[:seen], values (max_len, D) C-contiguous."""
    out[:] = 0.0
    for t in range(seen):
        w = weights[t]
        for j in range(values.shape[1]):
            out[j] += w * values[t, j]


@nb.njit(**_JIT)
def softmax(scores: np.ndarray, scale: float, wide: np.ndarray) -> None:  # pragma: no cover - compiled
    """scores = softmax(scores x scale) in place, exp as 2^n x a polynomial in f = the rest (|f| <=
    1/2, relative error ~2e-7), so that the loops vectorize: numba's exp is a scalar call, made
    per cached position and head. ``wide`` (>= len(scores),) uint32 holds 2^n's bits."""
    top = -np.inf
    for t in range(len(scores)):
        top = max(top, scores[t])
    power = wide.view(np.float32)
    for t in range(len(scores)):
        y = max((scores[t] - top) * scale * LOG2E, EXP_FLOOR)
        n = np.floor(y + 0.5)
        f = y - n
        scores[t] = 1.0 + f * (EXP2[0] + f * (EXP2[1] + f * (EXP2[2] + f * (EXP2[3] + f * (EXP2[4] + f * EXP2[5])))))
        wide[t] = np.uint32(np.int32(n) + 127) << 23  # the float 2^n
    total = 0.0
    for t in range(len(scores)):
        scores[t] *= power[t]
        total += scores[t]
    inverse = 1.0 / total
    for t in range(len(scores)):
        scores[t] *= inverse


@nb.njit(**_JIT)
def _attend_head(qkv: np.ndarray, cos: np.ndarray, sin: np.ndarray, keys: np.ndarray, values: np.ndarray,
                 pos: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """One head of one row at ``pos``: q, k, v (D,) each from ``qkv`` (3, D); rotary by the
    position's tables cos, sin (D,) (halves x1, x2 -> x1 cos - x2 sin, x2 cos + x1 sin, as
    :func:`~harmonixr.models.transformer.apply_rotary`); k and v written into the head's cache,
    keys (D, max_len), values (max_len, D); out (D,) = softmax(q . keys / sqrt(D)) @ values over
    the positions so far."""
    D = keys.shape[0]
    half = D // 2
    q = np.empty(D, np.float32)
    key = np.empty(D, np.float32)
    for j in range(half):
        q[j] = qkv[0, j] * cos[j] - qkv[0, half + j] * sin[j]
        q[half + j] = qkv[0, half + j] * cos[half + j] + qkv[0, j] * sin[half + j]
        key[j] = qkv[1, j] * cos[j] - qkv[1, half + j] * sin[j]
        key[half + j] = qkv[1, half + j] * cos[half + j] + qkv[1, j] * sin[half + j]
    keys[:, pos] = key
    values[pos] = qkv[2]
    seen = pos + 1
    scores = np.empty(seen, np.float32)
    attend(q, keys, seen, scores)
    softmax(scores, 1.0 / np.sqrt(D), np.empty(seen, np.uint32))
    mix(scores, values, seen, out)


@nb.njit(parallel=True, **_JIT)
def _attention_block(h: np.ndarray, qkv: np.ndarray, qkv_scale: np.ndarray, w_o: np.ndarray, ones: np.ndarray,
                     cos: np.ndarray, sin: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, pos: int,
                     partial: np.ndarray) -> None:  # pragma: no cover - compiled
    """One layer's attention, each head on one of numba's threads, for every row: the head's q, k,
    v from its own columns of the QKV matrix, its attention (:func:`_attend_head`), and its share of
    the output projection (its D rows of the matrix, unscaled) into ``partial``. h (B, C) the normed
    input; qkv (H, C, 3D) int8 and its scale qkv_scale (H, 3D); w_o (H, D, C) int8; ``ones``
    (C,); the position's rotary tables cos, sin (D,); the layer's caches k_cache (B, H, D,
    max_len), v_cache (B, H, max_len, D); partial (H, B, C)."""
    B = h.shape[0]
    H, D = w_o.shape[0], w_o.shape[1]
    for head in nb.prange(H):
        parts = np.empty((B, 3 * D), np.float32)
        matmul(h, (qkv[head], qkv_scale[head]), parts)
        att = np.empty((B, D), np.float32)
        for b in range(B):
            _attend_head(parts[b].reshape(3, D), cos, sin, k_cache[b, head], v_cache[b, head], pos, att[b])
        matmul(att, (w_o[head], ones), partial[head])


@nb.njit(parallel=True, **_JIT)
def _mlp_block(h: np.ndarray, gate_up: np.ndarray, gate_up_scale: np.ndarray, w_down: np.ndarray, ones: np.ndarray,
               partial: np.ndarray) -> None:  # pragma: no cover - compiled
    """One layer's SwiGLU MLP, each half of the hidden units on one of numba's threads, for every
    row: the half's gate and up columns, SiLU, and its share of the down projection (its rows of the
    matrix, unscaled) into ``partial``. h (B, C) the normed input; gate_up (2, C, FF) int8 (each
    half's gate columns, then its up columns) and its scale gate_up_scale (2, FF); w_down (2,
    FF/2, C) int8; ``ones`` (C,); partial (2, B, C)."""
    B = h.shape[0]
    half_ff = w_down.shape[1]
    for half in nb.prange(2):
        gu = np.empty((B, 2 * half_ff), np.float32)
        matmul(h, (gate_up[half], gate_up_scale[half]), gu)
        act = np.empty((B, half_ff), np.float32)
        for b in range(B):
            for j in range(half_ff):
                gate = gu[b, j]
                act[b, j] = gate / (1.0 + np.exp(-gate)) * gu[b, half_ff + j]
        matmul(act, (w_down[half], ones), partial[half])


@nb.njit(**_JIT)
def decode_step(x: np.ndarray, pos: int, cos: np.ndarray, sin: np.ndarray, attn_norm: np.ndarray, w_qkv: Stacked,
                w_o: Stacked, mlp_norm: np.ndarray, w_gu: Stacked, w_down: Stacked, final_norm: np.ndarray,
                k_cache: np.ndarray, v_cache: np.ndarray, out: np.ndarray, eps: float) -> None:  # pragma: no cover
    """One position per row at sequence index ``pos``: writes its keys/values into the caches and
    the final-normed hidden state into ``out``. Each layer is two parallel blocks on numba's
    threads, the attention by head (:func:`_attention_block`) and the MLP by half of its hidden
    units (:func:`_mlp_block`), each writing its share of the block's output projection; the shares
    are summed and scaled here, in a fixed order (the same bits with any number of threads).

    x (B, C) input embeddings (changed in place: the residual stream); cos, sin (max_len, D);
    the norms' weights attn_norm, mlp_norm (L, C) and final_norm (C,); the matrices int8 with a
    scale per output column (see :func:`matmul`), laid out by :func:`~harmonixr.sampling.decoder.pack`:
    w_qkv (L, H, C, 3D) and (L, H, 3D), w_o (L, H, D, C) and (L, C), w_gu (L, 2, C, FF) and (L, 2,
    FF), w_down (L, 2, FF/2, C) and (L, C); k_cache (L, B, H, D, max_len) (keys transposed: the
    score loop runs along time); v_cache (L, B, H, max_len, D); out (B, C).
    """
    B, C = x.shape
    n_layers, H = w_qkv[0].shape[0], w_qkv[0].shape[1]
    h = np.empty((B, C), np.float32)
    heads = np.empty((H, B, C), np.float32)
    halves = np.empty((2, B, C), np.float32)
    ones = np.ones(C, np.float32)
    for layer in range(n_layers):
        rms_norm(x, attn_norm[layer], h, eps)
        _attention_block(h, w_qkv[0][layer], w_qkv[1][layer], w_o[0][layer], ones, cos[pos], sin[pos],
                         k_cache[layer], v_cache[layer], pos, heads)
        for b in range(B):
            for j in range(C):
                total = 0.0
                for head in range(H):
                    total += heads[head, b, j]
                x[b, j] += total * w_o[1][layer, j]
        rms_norm(x, mlp_norm[layer], h, eps)
        _mlp_block(h, w_gu[0][layer], w_gu[1][layer], w_down[0][layer], ones, halves)
        for b in range(B):
            for j in range(C):
                x[b, j] += (halves[0, b, j] + halves[1, b, j]) * w_down[1][layer, j]
    rms_norm(x, final_norm, out, eps)


@nb.njit(**_JIT)
def draw(logits: np.ndarray, temperature: float, uniforms: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """out[b] = the token whose cumulative probability first reaches uniforms[b] (inverse CDF of
    softmax(logits[b] / temperature)); -inf logits have probability 0 and are never drawn."""
    B, V = logits.shape
    for b in range(B):
        top = -np.inf
        for v in range(V):
            top = max(top, logits[b, v])
        total = 0.0
        for v in range(V):
            if logits[b, v] > -np.inf:
                total += np.exp((logits[b, v] - top) / temperature)
        target = uniforms[b] * total
        running, choice = 0.0, -1
        for v in range(V):
            if logits[b, v] > -np.inf:
                running += np.exp((logits[b, v] - top) / temperature)
                choice = v
                if running >= target:
                    break
        out[b] = choice


@nb.njit(**_JIT)
def draw_masked(logits: np.ndarray, mask: np.ndarray, temperature: float, top_k: int, top_p: float, min_p: float,
                filtered: bool, uniforms: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out (B,) = :func:`draw` from logits (B, V) where ``mask`` (B, V) is set (-inf elsewhere), the
    filters of :func:`filter_rows` applied first when ``filtered``: one compiled call a field, where
    numpy's ``where``, the filter's buffers and the draw were a call each (at batch 1 those calls
    cost more than the arithmetic)."""
    B, V = logits.shape
    masked = np.empty((B, V), np.float32)
    for b in range(B):
        for v in range(V):
            masked[b, v] = logits[b, v] if mask[b, v] else -np.inf
    if filtered:
        kept = np.empty((B, V), np.float32)
        filter_rows(masked, temperature, top_k, top_p, min_p, kept)
        draw(kept, 1.0, uniforms, out)
    else:
        draw(masked, temperature, uniforms, out)


@nb.njit(cache=True, nogil=True)  # no fastmath: -inf is a value here (a bar set with no bars)
def _masked_logsumexp(x: np.ndarray, mask: np.ndarray) -> float:  # pragma: no cover - compiled
    """log sum exp of x over the entries where ``mask`` is set (-inf where none is)."""
    top = -np.inf
    for v in range(len(x)):
        if mask[v] and x[v] > top:
            top = x[v]
    if top == -np.inf:
        return -np.inf
    total = 0.0
    for v in range(len(x)):
        if mask[v]:
            total += np.exp(x[v] - top)
    return np.log(total) + top


@nb.njit(cache=True, nogil=True)
def merge_end_rows(type_logits: np.ndarray, dbar_logits: np.ndarray, allowed: np.ndarray, past: np.ndarray,
                   note: int, end_type: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out (B, T) = the log-softmaxed type logits with the last-bar rule: the note type keeps the
    log-share of the ``allowed`` bars of its dbar distribution, the end type gains the ``past`` share.
    One compiled pass per row (at batch 1 numpy's dozen small calls cost more than the arithmetic)."""
    B, T = type_logits.shape
    every_type = np.ones(T, dtype=np.bool_)
    every_bar = np.ones(dbar_logits.shape[1], dtype=np.bool_)
    for b in range(B):
        type_norm = _masked_logsumexp(type_logits[b], every_type)
        bar_norm = _masked_logsumexp(dbar_logits[b], every_bar)
        for t in range(T):
            out[b, t] = type_logits[b, t] - type_norm
        note_logp = out[b, note]
        out[b, note] = note_logp + _masked_logsumexp(dbar_logits[b], allowed[b]) - bar_norm
        out[b, end_type] = np.logaddexp(out[b, end_type],
                                        note_logp + _masked_logsumexp(dbar_logits[b], past[b]) - bar_norm)


@nb.njit(**_JIT)
def filter_rows(logits: np.ndarray, temperature: float, top_k: int, top_p: float, min_p: float,
                out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out (B, V) = logits / temperature with top-k, then top-p, then min-p applied (removed values
    -inf): top-k keeps the values at least the k-th largest; top-p the likeliest values until the
    mass before one reaches ``top_p`` (ties in index order); min-p drops values less likely than
    ``min_p`` x the likeliest. One compiled pass per row (at batch 1 numpy's ``argsort``, ``cumsum``
    and ``put_along_axis`` calls cost more than the arithmetic)."""
    B, V = logits.shape
    for b in range(B):
        row = out[b]
        for v in range(V):
            row[v] = logits[b, v] / temperature
        if 0 < top_k < V:
            kth = np.sort(row)[V - top_k]
            for v in range(V):
                if row[v] < kth:
                    row[v] = -np.inf
        if top_p < 1.0 or min_p > 0.0:
            top = -np.inf
            for v in range(V):
                top = max(top, row[v])
            if top == -np.inf:
                continue
            if top_p < 1.0:
                total = 0.0
                for v in range(V):
                    total += np.exp(row[v] - top)
                before = 0.0
                order = np.argsort(-row, kind="mergesort")  # likeliest first, ties in index order
                for v in order:
                    p = np.exp(row[v] - top) / total
                    if before >= top_p:
                        row[v] = -np.inf
                    before += p
            if min_p > 0.0:
                top = -np.inf
                for v in range(V):
                    top = max(top, row[v])
                floor = top + np.log(min_p)  # p < min_p x p_max  <=>  logit < top + log(min_p)
                for v in range(V):
                    if row[v] < floor:
                        row[v] = -np.inf


@nb.njit(**_JIT)
def field_head(z: np.ndarray, in_norm: np.ndarray, gate_up: Matrix, down: Matrix, out_norm: np.ndarray,
               out_w: Matrix, eps: float, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """One field's logits, out (B, V) from z (B, C) = hidden state + the field's query + the
    condition (changed in place: the residual), through the heads' shared SwiGLU block:
    RMSNorm, fused gate/up (C, 2H), SiLU, down (H, C), residual, RMSNorm, the field's output
    matrix (C, V); the matrices int8 (see :func:`matmul`)."""
    B, C = z.shape
    H = down[0].shape[0]
    a = np.empty((B, C), np.float32)
    gu = np.empty((B, 2 * H), np.float32)
    act = np.empty((B, H), np.float32)
    mixed = np.empty((B, C), np.float32)
    rms_norm(z, in_norm, a, eps)
    matmul(a, gate_up, gu)
    for b in range(B):
        for j in range(H):
            gate = gu[b, j]
            act[b, j] = gate / (1.0 + np.exp(-gate)) * gu[b, H + j]
    matmul(act, down, mixed)
    z += mixed
    rms_norm(z, out_norm, a, eps)
    matmul(a, out_w, out)
