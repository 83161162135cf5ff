"""Rollouts for reinforcement learning: prompts, samples with their rewards, and their probability
under a model, exactly as they were drawn.

A rollout is drawn by the ordinary generation modes (:class:`~harmonixr.generation.modes.Generator`,
so RL trains on the prompts users send): a :class:`Recording` watches each sampling call and keeps
the prompt, the tokens, and per step the grammar's mask and whether the last-bar rule moved the
``Bar`` probability onto the end token. :func:`score_rollouts` then recomputes, with gradients, the
log-probability of every sampled token under that same masked, tempered distribution, and the KL
to the reference model and the entropy, token by token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from symusic import Score
from torch import nn

from harmonixr.evaluation.report import split_pieces
from harmonixr.generation.modes import Generator, Result
from harmonixr.generation.piece import Piece, Region
from harmonixr.models.structure import Structure
from harmonixr.rl.config import PromptConfig
from harmonixr.rl.rewards import RewardContext, RewardWeights, reward_terms
from harmonixr.runtime import set_threads
from harmonixr.sampling.grammar import GrammarConstraint
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.training.batches import Corpus
from harmonixr.training.checkpoint import load_checkpoint

MASKED = -1e9  # logit of a forbidden token: exp() is exactly 0, and no inf * 0 in the gradients


@dataclass(frozen=True)
class Prompt:
    """One request: a piece from nothing (``piece`` None) or a hole of whole bars in ``piece``."""

    style: str
    programs: tuple[int, ...] = ()
    tempo: float = 120.0
    time_signature: tuple[int, int] = (4, 4)
    bars: int = 4
    piece: Piece | None = None
    region: Region | None = None

    @property
    def kind(self) -> str:
        return "generate" if self.piece is None else "infill"

    def run(self, gen: Generator, n: int, sampling: SamplingConfig, seed: int) -> list[Result]:
        if self.piece is None:
            return gen.generate(list(self.programs), self.style, self.bars, self.tempo, self.time_signature,
                                n=n, sampling=sampling, seed=seed)
        return gen.infill(self.piece, self.region, n=n, sampling=sampling, seed=seed)


def make_prompts(corpus: Corpus, gen: Generator, cfg: PromptConfig, split: str, count: int,
                 rng: np.random.Generator) -> list[Prompt]:
    """``count`` prompts from real pieces of ``split`` in ``cfg.styles``, styles taken in turn: an
    infill hole of 1..``max_hole_bars`` bars inside a piece, or a new piece with its instruments,
    meter and tempo."""
    per_style = max(2, count // max(len(cfg.styles), 1) + 1)
    pieces = [(p, s) for p, s in split_pieces(corpus, split, 4 * per_style, gen.vocab, rng)
              if s in cfg.styles and p.bars >= 2 * cfg.max_hole_bars + 2]
    by_style: dict[str, list[Piece]] = {}
    for piece, style in pieces:
        by_style.setdefault(style, []).append(piece)
    if not by_style:
        raise ValueError(f"no {split!r} pieces of the styles {list(cfg.styles)} in {[str(s.folder) for s in corpus.shards]}")
    styles = sorted(by_style)
    prompts = []
    for k in range(count):
        style = styles[k % len(styles)]
        piece = by_style[style][int(rng.integers(len(by_style[style])))]
        if rng.random() < cfg.infill_share:
            size = int(rng.integers(1, cfg.max_hole_bars + 1))
            first = int(rng.integers(1, piece.bars - size))
            prompts.append(Prompt(style, piece=piece, region=Region.parse(f"{first + 1}-{first + size}", gen.vocab.grid)))
        else:
            meter = piece.original.time_signatures[0] if len(piece.original.time_signatures) else None
            tempo = piece.original.tempos[0].qpm if len(piece.original.tempos) else 120.0
            programs = tuple(t.program if not t.is_drum else -1 for t in piece.original.tracks if t.notes)
            prompts.append(Prompt(style, programs, float(tempo),
                                  (meter.numerator, meter.denominator) if meter else (4, 4), cfg.generate_bars))
    return prompts


class Recording:
    """Watches one Generator call: per sampling call, the prompt and per row the tokens, masks and
    end-merge flags."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self._masks: list[np.ndarray] = []  # per step (rows, V) bool
        self._merged: list[np.ndarray] = []  # per step (rows,) bool
        self._constraint: GrammarConstraint | None = None

    def watch(self, constraint: GrammarConstraint) -> GrammarConstraint:
        self._constraint, self._masks, self._merged = constraint, [], []
        inner = constraint.apply

        def apply(logits: np.ndarray) -> np.ndarray:
            out = inner(logits)
            self._masks.append(np.isfinite(out))
            self._merged.append(constraint.end_merges(out))
            return out

        constraint.apply = apply  # this instance only
        return constraint

    def sampled(self, prompt: list[int], bar0: int, outs: list[list[int]]) -> None:
        masks, merged = np.stack(self._masks, 1), np.stack(self._merged, 1)  # (rows, steps, V), (rows, steps)
        self.calls.append({"prompt": list(prompt), "bar0": bar0, "outs": outs, "masks": masks, "merged": merged,
                           "end_id": self._constraint.grammar.end_id, "bar_id": self._constraint.grammar.vocab.bar_id})

    def calls_by_row(self, n: int) -> list[list[tuple[dict, int]]] | None:
        """For each of ``n`` variations, its (call, row) pairs in order: every call drew all ``n``
        rows, or each drew one row and the variations came in turn (a region written in parts).
        None otherwise (a piece written on window by window, the rows that needed more alone)."""
        calls = self.calls
        if calls and all(len(c["outs"]) == n for c in calls):
            return [[(c, row) for c in calls] for row in range(n)]
        if calls and all(len(c["outs"]) == 1 for c in calls) and len(calls) % n == 0:
            per = len(calls) // n
            return [[(c, 0) for c in calls[row * per : (row + 1) * per]] for row in range(n)]
        return None


@dataclass
class Segment:
    """One sampling call's share of a rollout: what the model saw and drew."""

    ids: list[int]  # prompt + sampled tokens
    prompt_len: int
    bar0: int
    mask: np.ndarray  # (L, V) bool: the tokens the grammar allowed at each sampled step
    merged: np.ndarray  # (L,) bool: the end token also took the Bar probability at this step
    end_id: int
    bar_id: int


@dataclass
class Rollout:
    """One sample of one prompt: its segments (one per sampling call: a region written in parts
    has several), the result and its reward terms."""

    prompt_index: int
    segments: list[Segment]
    result: Result
    terms: dict[str, float] = field(default_factory=dict)

    @property
    def reward(self) -> float:
        return self.terms["total"]

    @property
    def sampled(self) -> tuple[int, ...]:
        """Every sampled token, in order."""
        return tuple(t for seg in self.segments for t in seg.ids[seg.prompt_len :])


def judged(result: Result) -> Score:
    """What the reward judges: the region of an infill, the whole of a new piece."""
    if result.mode == "generate":
        return result.score
    end = result.end_tick if result.end_tick is not None else result.score.end() + 1
    return result.score.clip(result.start_tick, end, clip_end=False).shift_time(-result.start_tick)


def collect(gen: Generator, prompts: Sequence[Prompt], n: int, sampling: SamplingConfig, seed: int,
            weights: RewardWeights, context: RewardContext) -> tuple[list[Rollout], int]:
    """``n`` rollouts per prompt, with rewards; a prompt whose sampling calls cannot be told apart
    by variation (see :meth:`Recording.calls_by_row`) is skipped and counted."""
    rollouts, skipped = [], 0
    for p, prompt in enumerate(prompts):
        recording = Recording()
        gen.recorder = recording
        try:
            results = prompt.run(gen, n, sampling, seed + 1009 * p)
        finally:
            gen.recorder = None
        calls = recording.calls_by_row(n)
        if calls is None:
            skipped += 1
            continue
        for row, result in enumerate(results):
            segments = [Segment(c["prompt"] + c["outs"][r], len(c["prompt"]), c["bar0"], c["masks"][r, : len(c["outs"][r])],
                                c["merged"][r, : len(c["outs"][r])], c["end_id"], c["bar_id"]) for c, r in calls[row]]
            region = (result.start_tick, result.end_tick) if prompt.kind == "infill" else None
            terms = reward_terms(judged(result), weights, context, region, prompt.style, whole=result.score)
            rollouts.append(Rollout(p, segments, result, terms))
    return rollouts, skipped


@dataclass
class Scored:
    """Per rollout: summed log-probability of its tokens, mean KL to the reference and mean entropy
    per token."""

    logp: torch.Tensor  # (N,) sum over sampled tokens, with gradient
    kl: torch.Tensor  # (N,) mean per token, with gradient
    entropy: torch.Tensor  # (N,) mean per token, with gradient
    tokens: torch.Tensor  # (N,) sampled tokens per rollout


def model_inputs(seqs: Sequence[Sequence[int]], bar0s: Sequence[int], structure: Structure, pad_id: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) inputs (every sequence but its last token, right-padded) and their (B, T, F) features."""
    T = max(len(s) for s in seqs) - 1
    idx = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    feats = torch.zeros((len(seqs), T, len(structure.sizes)), dtype=torch.long)
    for b, (seq, bar0) in enumerate(zip(seqs, bar0s)):
        idx[b, : len(seq) - 1] = torch.tensor(seq[:-1])
        feats[b, : len(seq) - 1] = torch.from_numpy(structure.features(seq[:-1], bar0))
    return idx.to(device), feats.to(device)


def _step_logits(logits: torch.Tensor, r: Segment, temperature: float) -> torch.Tensor:
    """(L, V) log-probabilities the sampler used: the grammar's mask, the end token holding the
    ``Bar`` probability where the last-bar rule applied, then the temperature."""
    mask = torch.from_numpy(r.mask).to(logits.device)
    merged = torch.from_numpy(r.merged).to(logits.device)
    end = torch.where(merged, torch.logaddexp(logits[:, r.end_id], logits[:, r.bar_id]), logits[:, r.end_id])
    logits = torch.cat([logits[:, : r.end_id], end[:, None], logits[:, r.end_id + 1 :]], dim=1)
    logits = logits.masked_fill(~mask, MASKED) / temperature
    return F.log_softmax(logits, dim=-1)


def score_rollouts(policy: nn.Module, reference: nn.Module | None, rollouts: Sequence[Rollout],
                   structure: Structure, pad_id: int, temperature: float = 1.0) -> Scored:
    """Log-probabilities of the rollouts' tokens under ``policy`` (with gradients) and the per-token
    KL(policy || reference) and policy entropy, all under the masks they were sampled with."""
    segments = [(k, seg) for k, r in enumerate(rollouts) for seg in r.segments]
    device = next(policy.parameters()).device
    idx, feats = model_inputs([s.ids for _, s in segments], [s.bar0 for _, s in segments], structure, pad_id, device)
    logits = policy(idx, feats).float()  # (S, T, V)
    ref_logits = None
    if reference is not None:
        with torch.no_grad():
            ref_logits = reference(idx, feats).float()
    sums: list[list[torch.Tensor]] = [[] for _ in rollouts]  # per rollout, per segment: (logp, KL, entropy) sums
    tokens = torch.zeros(len(rollouts), dtype=torch.long)
    for b, (k, seg) in enumerate(segments):
        span = slice(seg.prompt_len - 1, len(seg.ids) - 1)  # the logits that drew the sampled tokens
        lp = _step_logits(logits[b, span], seg, temperature)  # (L, V)
        drawn = torch.tensor(seg.ids[seg.prompt_len :], device=device)
        p = lp.exp()
        kl = torch.zeros((), device=device)
        if ref_logits is not None:
            kl = (p * (lp - _step_logits(ref_logits[b, span], seg, temperature))).sum()
        sums[k].append(torch.stack([lp.gather(1, drawn[:, None]).sum(), kl, -(p * lp).sum()]))
        tokens[k] += len(drawn)
    totals = torch.stack([torch.stack(rows).sum(0) for rows in sums])  # (N, 3)
    per_token = tokens.clamp(min=1).to(device)
    return Scored(totals[:, 0], totals[:, 1] / per_token, totals[:, 2] / per_token, tokens)


def load_policy(checkpoint: str, out: str, threads: int, seed: int) -> tuple[Generator, nn.Module, Path]:
    """The policy to fine-tune (a Generator over the checkpoint's weights), a frozen copy of it as
    the reference, and the run folder (created); torch's threads and seed are set first."""
    set_threads(threads)
    torch.manual_seed(seed)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    return Generator(checkpoint), load_checkpoint(checkpoint).model.requires_grad_(False), folder
