"""The backbone's decode step of :class:`~harmonixr.models.transformer.NoteTransformer`, compiled with numba.

At batch 1 a small model spends its time in framework overhead, not arithmetic: PyTorch eager runs
about 25 operators per layer at 5-20 us each, ``transformers``' ``generate`` adds its own per-step
bookkeeping. :func:`decode_step` is the backbone's whole forward pass for one new position per
row in one compiled call: per layer RMSNorm, fused QKV projection, rotary positions as a (D, D)
matrix per position, attention over the cache, output projection, RMSNorm, fused gate/up
projection, SiLU, down projection; then the final RMSNorm. The norms' weights are folded into the
matrices that follow them (``pack`` in :mod:`harmonixr.sampling.decoder`).
``benchmarks/sampling.py`` measures it; ``tests/test_sampler.py`` checks its hidden states
against the PyTorch model.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

_JIT: dict[str, Any] = {"fastmath": True, "cache": True, "nogil": True}


@nb.njit(**_JIT)
def matmul(X: np.ndarray, W: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out (B, J) = X (B, I) @ W (I, J), four rows of W per pass so that ``out`` stays in L1."""
    B, I = X.shape  # noqa: E741 - the kernel names its dimensions B, I, J
    J = W.shape[1]
    out[:] = 0.0
    i = 0
    while i + 4 <= I:
        for b in range(B):
            x0, x1, x2, x3 = X[b, i], X[b, i + 1], X[b, i + 2], X[b, i + 3]
            for j in range(J):
                out[b, j] += x0 * W[i, j] + x1 * W[i + 1, j] + x2 * W[i + 2, j] + x3 * W[i + 3, j]
        i += 4
    while i < I:
        for b in range(B):
            x0 = X[b, i]
            for j in range(J):
                out[b, j] += x0 * W[i, j]
        i += 1


@nb.njit(**_JIT)
def rms_norm(x: np.ndarray, out: np.ndarray, eps: float) -> None:  # pragma: no cover - compiled
    """out (B, C) = x / rms(x), row by row (the weight is folded into the next matrix)."""
    B, C = x.shape
    for b in range(B):
        total = 0.0
        for c in range(C):
            total += x[b, c] * x[b, c]
        scale = 1.0 / np.sqrt(total / C + eps)
        for c in range(C):
            out[b, c] = x[b, c] * scale


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
def decode_step(x: np.ndarray, pos: int, rotary: np.ndarray, w_qkv: np.ndarray, w_o: np.ndarray,
                w_gu: np.ndarray, w_down: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray,
                out: np.ndarray, eps: float) -> None:  # pragma: no cover
    """One position per row at sequence index ``pos``: writes its keys/values into the caches and
    the final-normed hidden state (without the norm's weight) into ``out``.

    x (B, C) input embeddings (changed in place: the residual stream); rotary (max_len, D, D);
    w_qkv (L, C, 3C); w_o (L, C, C); w_gu (L, C, 2FF); w_down (L, FF, C); k_cache (L, B, H, D,
    max_len) (keys transposed: the score loop runs along time); v_cache (L, B, H, max_len, D);
    out (B, C).
    """
    B = x.shape[0]
    n_layers, C, _ = w_qkv.shape
    H, D = k_cache.shape[2], k_cache.shape[3]
    FF = w_down.shape[1]
    scale = 1.0 / np.sqrt(D)
    h = np.empty((B, C), np.float32)
    qkv = np.empty((B, 3 * C), np.float32)
    att = np.empty((B, C), np.float32)
    o = np.empty((B, C), np.float32)
    gu = np.empty((B, 2 * FF), np.float32)
    act = np.empty((B, FF), np.float32)
    scores = np.empty((1, pos + 1), np.float32)
    q2 = np.empty((1, D), np.float32)
    q = q2[0]
    mixed = np.empty((1, D), np.float32)
    key = np.empty(D, np.float32)
    for layer in range(n_layers):
        rms_norm(x, h, eps)
        matmul(h, w_qkv[layer], qkv)
        for b in range(B):
            for head_index in range(H):
                qo, ko, vo = head_index * D, C + head_index * D, 2 * C + head_index * D
                keys, values = k_cache[layer, b, head_index], v_cache[layer, b, head_index]  # (D, max_len), (max_len, D)
                rot = rotary[pos]  # (D, D)
                q[:] = 0.0
                key[:] = 0.0
                for i in range(D):  # rotary: q = q @ R[pos], k = k @ R[pos]
                    qi, ki = qkv[b, qo + i], qkv[b, ko + i]
                    for j in range(D):
                        q[j] += qi * rot[i, j]
                        key[j] += ki * rot[i, j]
                keys[:, pos] = key
                values[pos] = qkv[b, vo : vo + D]
                seen = pos + 1
                attend(q, keys, seen, scores[0])
                top = -1e30
                for t in range(seen):
                    top = max(top, scores[0, t])
                total = 0.0
                for t in range(seen):
                    scores[0, t] = np.exp((scores[0, t] - top) * scale)
                    total += scores[0, t]
                for t in range(seen):
                    scores[0, t] /= total
                mix(scores[0], values, seen, mixed[0])
                att[b, qo : qo + D] = mixed[0]
        matmul(att, w_o[layer], o)
        x += o
        rms_norm(x, h, eps)
        matmul(h, w_gu[layer], gu)
        for b in range(B):
            for j in range(FF):
                gate = gu[b, j]
                act[b, j] = gate / (1.0 + np.exp(-gate)) * gu[b, FF + j]
        matmul(act, w_down[layer], o)
        x += o
    rms_norm(x, out, eps)


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
def field_head(z: np.ndarray, gate_up: np.ndarray, down: np.ndarray, out_w: np.ndarray, eps: float,
               out: np.ndarray) -> None:  # pragma: no cover - compiled
    """One field's logits, out (B, V) from z (B, C) = hidden state + the field's query + the
    condition (changed in place: the residual), through the heads' shared SwiGLU block:
    RMSNorm, fused gate/up (C, 2H), SiLU, down (H, C), residual, RMSNorm, the field's output
    matrix (C, V). The norms' weights are folded into the matrices after them."""
    B, C = z.shape
    H = down.shape[0]
    a = np.empty((B, C), np.float32)
    gu = np.empty((B, 2 * H), np.float32)
    act = np.empty((B, H), np.float32)
    mixed = np.empty((B, C), np.float32)
    rms_norm(z, a, eps)
    matmul(a, gate_up, gu)
    for b in range(B):
        for j in range(H):
            gate = gu[b, j]
            act[b, j] = gate / (1.0 + np.exp(-gate)) * gu[b, H + j]
    matmul(act, down, mixed)
    z += mixed
    rms_norm(z, a, eps)
    matmul(a, out_w, out)
