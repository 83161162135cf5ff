"""Before/after measurements of a fine-tuned policy on held-out prompts.

- reward: the mean of every term over the samples (what RL optimised, on prompts it never saw);
- diversity: within each prompt's samples, :func:`~harmonixr.rl.rewards.batch_diversity` of their
  pitch-class histograms and the share of distinct token sequences (a collapsed policy writes the
  same thing every time);
- KL per token to the reference, under the masks the samples were drawn with;
- bits per note of real test-split music (next token, and infill holes): what supervised learning
  taught, which fine-tuning should keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from harmonixr.data.corpus import Corpus
from harmonixr.errors import HarmonixrError
from harmonixr.evaluation.compare import build_eval_set
from harmonixr.evaluation.likelihood import Scorer
from harmonixr.generation.modes import Generator
from harmonixr.generation.outputs import write_result
from harmonixr.models.transformer import NoteTransformer
from harmonixr.rl.rewards import RewardContext, RewardWeights, batch_diversity
from harmonixr.rl.rollout import Prompt, Rollout, collect, judged, score_rollouts
from harmonixr.sampling.sampler import SamplingConfig


def mean_terms(rollouts: Sequence[Rollout]) -> dict[str, float]:
    """``reward/NAME``: the mean of each term over the rollouts that have it (edge fit: infills only)."""
    names = sorted({name for r in rollouts for name in r.terms})
    return {f"reward/{n}": float(np.mean([r.terms[n] for r in rollouts if n in r.terms])) for n in names}


def summarize_rollouts(rollouts: Sequence[Rollout]) -> dict[str, float]:
    """Mean reward per term, diversity within each prompt's samples, notes and closed share."""
    out = mean_terms(rollouts)
    groups: dict[int, list[Rollout]] = {}
    for r in rollouts:
        groups.setdefault(r.prompt_index, []).append(r)
    out["diversity/pitch_classes"] = float(np.mean([batch_diversity([judged(r.result) for r in g]) for g in groups.values()]))
    out["diversity/distinct"] = float(np.mean([len({r.sampled for r in g}) / len(g) for g in groups.values()]))
    out["notes_per_sample"] = float(np.mean([r.result.notes for r in rollouts]))
    out["closed"] = float(np.mean([r.result.finished for r in rollouts]))
    return out


def assess(gen: Generator, reference: NoteTransformer, prompts: Sequence[Prompt], samples: int, sampling: SamplingConfig,
           seed: int, weights: RewardWeights, context: RewardContext) -> tuple[dict[str, float], list[Rollout]]:
    """Sample ``samples`` per held-out prompt with the generator's (policy's) weights and measure."""
    rollouts, skipped = collect(gen, prompts, samples, sampling, seed, weights, context)
    if not rollouts:
        raise HarmonixrError("no held-out prompt could be sampled in one context window")
    numbers = summarize_rollouts(rollouts)
    kl, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rollouts), 16):
            chunk = rollouts[start : start + 16]
            scored = score_rollouts(gen.model, reference, chunk, sampling.temperature)
            kl += float((scored.kl * scored.tokens).sum())
            tokens += int(scored.tokens.sum())
    numbers["kl_per_token"] = kl / max(tokens, 1)
    numbers["skipped_prompts"] = skipped
    return numbers, rollouts


def bits_per_note(model: NoteTransformer, corpus: Corpus, pieces: int, block_size: int) -> dict[str, float]:
    """Bits per note of the first ``pieces`` test-split pieces of each source: next note, and one
    infill hole each."""
    evalset = build_eval_set(corpus, "test", block_size, holes_per_piece=1, max_pieces=pieces)
    scorer = Scorer(corpus.vocab)
    out = {}
    for task, examples, labels in (("next-note", evalset.plain, evalset.plain_labels),
                                   ("infill", evalset.infill, evalset.infill_labels)):
        out[task] = scorer.score(model, examples, [s for s, _ in labels])["all"].per_note()["bits_per_note"]
    return out


def write_samples(rollouts: Sequence[Rollout], folder: str | Path, tag: str, count: int) -> list[Path]:
    """MIDI, piano roll and WAV (the region and two bars around it) of the first sample of
    ``count`` prompts: the first prompt of each kind (infill, generate), then the next ones."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    first: dict[int, Rollout] = {}
    for r in rollouts:
        first.setdefault(r.prompt_index, r)
    kinds: dict[str, int] = {}
    for index, r in first.items():
        kinds.setdefault(r.result.mode, index)
    chosen = sorted(kinds.values())
    chosen += [i for i in sorted(first) if i not in chosen][: max(0, count - len(chosen))]
    written = []
    for index in sorted(chosen[:count]):
        r = first[index]
        written += write_result(r.result, folder / f"{index:02d}-{r.result.mode}-{tag}.mid", png=True, wav=True, excerpt=True)
    return written
