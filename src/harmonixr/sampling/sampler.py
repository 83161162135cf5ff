"""The sampler: N variations of one prompt in one batch, reproducible from a seed, constrained.

The prompt runs once; its keys and values are copied to the N rows of a preallocated cache
(:mod:`harmonixr.sampling.decoder`), then each step feeds one token per row. Structural features
advance per row with :class:`~harmonixr.models.structure.StructureState`, the code that computed
them for training. A constraint (:class:`~harmonixr.sampling.grammar.GrammarConstraint`) masks
the logits before the filters, so a filter never keeps only forbidden tokens and every choice it
forbids has probability zero. The random numbers come from an explicit ``torch.Generator`` seeded
by the caller: one uniform per row and step, drawn up front and turned into a token by the inverse
CDF (:func:`~harmonixr.sampling.kernels.draw`), so the same seed gives the same tokens on every
decoder backend that computes the same logits.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from harmonixr.models.structure import Structure
from harmonixr.models.transformer import MusicTransformer
from harmonixr.sampling.decoder import EncoderDecoderDecoder, NumbaDecoder, TorchDecoder, make_decoder
from harmonixr.sampling.kernels import draw


class SamplingTimeout(TimeoutError):
    """Sampling went past the caller's deadline (:attr:`Sampler.deadline`)."""


class Constraint(Protocol):
    def apply(self, logits: np.ndarray) -> np.ndarray: ...  # (rows, V) -> (rows, V), forbidden at -inf

    def advance(self, tokens: Sequence[int]) -> None: ...


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0
    top_k: int = 0  # keep the k most likely tokens (0: all)
    top_p: float = 1.0  # keep the smallest set with this much probability (1: all)
    min_p: float = 0.0  # drop tokens less likely than min_p x the most likely one
    max_tokens: int = 1024  # per call (the model's context caps it too)

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1 or not 0 <= self.min_p < 1 or self.top_k < 0 or self.max_tokens < 1:
            raise ValueError(f"bad sampling settings: {self}")


def filter_logits(logits: np.ndarray, cfg: SamplingConfig) -> np.ndarray:
    """Temperature, then top-k, top-p and min-p on (B, V) logits; removed entries become -inf."""
    logits = logits / np.float32(cfg.temperature)
    if cfg.top_k and cfg.top_k < logits.shape[-1]:
        kth = np.partition(logits, -cfg.top_k, axis=-1)[:, -cfg.top_k, None]  # (B, 1)
        logits = np.where(logits < kth, -np.inf, logits)
    if cfg.top_p < 1.0:
        order = np.argsort(-logits, axis=-1, kind="stable")
        probs = _softmax(np.take_along_axis(logits, order, axis=-1))
        drop_sorted = np.cumsum(probs, axis=-1) - probs >= cfg.top_p  # the mass before it is already enough
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        logits = np.where(drop, -np.inf, logits)
    if cfg.min_p > 0.0:
        probs = _softmax(logits)
        logits = np.where(probs < cfg.min_p * probs.max(-1, keepdims=True), -np.inf, logits)
    return logits


def _softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.max(-1, keepdims=True)
    e = np.exp(logits - np.where(np.isfinite(top), top, 0.0))
    return e / np.maximum(e.sum(-1, keepdims=True), 1e-30)


class Sampler:
    """Batched, constrained sampling from a :class:`MusicTransformer`."""

    def __init__(self, model: MusicTransformer, structure: Structure, backend: str = "auto") -> None:
        self.model = model.eval()
        self.structure = structure
        self.backend = backend
        self.decoder: TorchDecoder | NumbaDecoder | EncoderDecoderDecoder | None = None  # made on first use, kept
        self.deadline: float | None = None  # time.monotonic() past which generate raises SamplingTimeout

    def weights_changed(self) -> None:
        """Drop the decoder (it holds a packed copy of the weights); the next call packs the new ones."""
        self.decoder = None

    def generate(self, prompt: Sequence[int], n: int, cfg: SamplingConfig, seed: int, bar0: int = 0,
                 stop_ids: Sequence[int] = (), constraint: Constraint | None = None) -> list[list[int]]:
        """``n`` continuations of ``prompt`` (token ids), each up to ``cfg.max_tokens`` tokens or
        through its first stop token; the same seed gives the same continuations. Raises
        :class:`SamplingTimeout` once :attr:`deadline` has passed."""
        if not prompt:
            raise ValueError("the prompt must hold at least one token (BOS)")
        max_len = min(self.model.cfg.max_len, len(prompt) + cfg.max_tokens)
        if len(prompt) >= max_len:
            raise ValueError(f"a prompt of {len(prompt)} tokens leaves no room in a context of {self.model.cfg.max_len}")
        steps = max_len - len(prompt)
        generator = torch.Generator().manual_seed(seed)
        uniforms = torch.rand((steps, n), generator=generator, dtype=torch.float64).numpy()  # one per row and step
        if self.decoder is None:
            self.decoder = make_decoder(self.model, self.backend, self.structure.vocab.fill_id)
        state = self.structure.state(bar0)
        feats = np.array([state.step(int(t)) for t in prompt], dtype=np.int64)  # (T, F)
        logits = self.decoder.start(prompt, feats, n, max_len)  # (n, V)
        states = [copy.copy(state) for _ in range(n)]
        out: list[list[int]] = [[] for _ in range(n)]
        stops = set(stop_ids)
        done = [False] * n
        filtered = cfg.top_k or cfg.top_p < 1.0 or cfg.min_p > 0.0
        choice = np.zeros(n, dtype=np.int64)
        for step in range(steps):
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise SamplingTimeout(f"sampling stopped at the time limit after {step} tokens")
            if constraint is not None:
                logits = constraint.apply(logits)
            if filtered:  # the filters work on tempered logits
                draw(filter_logits(logits, cfg).astype(np.float32), 1.0, uniforms[step], choice)
            else:
                draw(logits, cfg.temperature, uniforms[step], choice)
            tokens = choice.tolist()
            for row, tok in enumerate(tokens):
                if not done[row]:
                    out[row].append(tok)
                    done[row] = tok in stops
            if constraint is not None:
                constraint.advance(tokens)
            if all(done) or step == steps - 1:
                break
            feats = np.array([s.step(t) for s, t in zip(states, tokens)], dtype=np.int64)  # (n, F)
            logits = self.decoder.step(choice, feats)
        return out
