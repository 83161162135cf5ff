"""A sampler written for speed: preallocated KV cache, N variations of one prompt in one batch,
an explicit ``torch.Generator`` so a seed reproduces, and the usual logit filters.

The prompt is run once (batch 1), its cache copied to the N rows, then each step feeds one token
per row. Structural features are advanced per row by :class:`~harmonixr.models.structure.StructureState`,
the same code that computed them for training. ``constraint`` is a hook that can mask logits per
row before sampling (grammar, infill regions), so every choice it forbids has probability zero.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from harmonixr.models.structure import Structure
from harmonixr.models.transformer import KVCache, MusicTransformer

# (logits (B, V), tokens generated so far per row) -> logits with forbidden ids at -inf
Constraint = Callable[[torch.Tensor, list[list[int]]], torch.Tensor]


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0
    top_k: int = 0  # keep the k most likely tokens (0: all)
    top_p: float = 1.0  # keep the smallest set with this much probability (1: all)
    min_p: float = 0.0  # drop tokens less likely than min_p x the most likely one
    max_tokens: int = 256

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1 or not 0 <= self.min_p < 1 or self.top_k < 0 or self.max_tokens < 1:
            raise ValueError(f"bad sampling settings: {self}")


def filter_logits(logits: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """Temperature, then top-k, top-p and min-p on (B, V) logits; removed entries become -inf."""
    logits = logits / cfg.temperature
    if cfg.top_k and cfg.top_k < logits.shape[-1]:
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cum - sorted_logits.softmax(-1) >= cfg.top_p  # mass before this token already enough
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    if cfg.min_p > 0.0:
        probs = logits.softmax(-1)
        logits = logits.masked_fill(probs < cfg.min_p * probs.max(-1, keepdim=True).values, float("-inf"))
    return logits


class Sampler:
    """Batched sampling from a :class:`MusicTransformer` with a KV cache."""

    def __init__(self, model: MusicTransformer, structure: Structure) -> None:
        self.model = model.eval()
        self.structure = structure
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def generate(self, prompt: Sequence[int], n: int, cfg: SamplingConfig, seed: int, bar0: int = 0,
                 stop_ids: Sequence[int] = (), constraint: Constraint | None = None) -> list[list[int]]:
        """``n`` continuations of ``prompt`` (token ids), each up to ``cfg.max_tokens`` tokens or
        through its first stop token; the same seed gives the same continuations."""
        if not prompt:
            raise ValueError("the prompt must hold at least one token (BOS)")
        generator = torch.Generator(device=self.device).manual_seed(seed)
        max_len = min(self.model.cfg.max_len, len(prompt) + cfg.max_tokens)
        state = self.structure.state(bar0)
        feats = torch.tensor([[state.step(int(t)) for t in prompt]], device=self.device)  # (1, T, F)
        cache = KVCache(self.model.cfg, 1, max_len, self.device)
        ids = torch.tensor([list(prompt)], device=self.device)  # (1, T)
        logits = self.model(ids, feats, cache)[:, -1].expand(n, -1)  # (n, V)
        cache = cache.repeat(n)
        states = [copy.copy(state) for _ in range(n)]
        out: list[list[int]] = [[] for _ in range(n)]
        stops = torch.tensor(sorted(set(stop_ids)), device=self.device, dtype=torch.long)
        done = torch.zeros(n, dtype=torch.bool, device=self.device)
        while cache.length < max_len and len(out[0]) < cfg.max_tokens:
            masked = constraint(logits.float(), out) if constraint is not None else logits.float()
            filtered = filter_logits(masked, cfg)  # after the mask, so a filter never keeps only forbidden tokens
            choice = torch.multinomial(filtered.softmax(-1), 1, generator=generator)  # (n, 1)
            for row, tok in enumerate(choice[:, 0].tolist()):
                if not done[row]:
                    out[row].append(tok)
            done |= torch.isin(choice[:, 0], stops)
            if bool(done.all()):
                break
            feats = torch.tensor([[states[r].step(t)] for r, t in enumerate(choice[:, 0].tolist())],
                                 device=self.device)  # (n, 1, F)
            logits = self.model(choice, feats, cache)[:, -1]
        return out
