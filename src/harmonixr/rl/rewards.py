"""Musical rewards: small documented functions of a score, each in [0, 1] (higher is better).

Groundwork for reinforcement learning (issue 6): every term is a plain function of a
:class:`symusic.Score` so that it can be unit-tested on constructed examples and logged on its own.

- harmony: :func:`in_key` (duration share of melodic notes in the estimated key's scale),
  :func:`consonance` (share of simultaneous note pairs at consonant intervals),
  :func:`chord_tones` (share of each beat's notes that belong to its best-fitting triad);
- rhythm: :func:`on_grid` (onsets on the 16th-note grid), :func:`bar_regularity` (bars that
  repeat the rhythm of the bar before), :func:`bounded_syncopation` (syncopation up to a bound);
- smoothness: :func:`smoothness` (small melodic steps within each track), :func:`voice_leading`
  (small motion from each chord to the next);
- novelty: :class:`PhraseIndex` (interval n-grams of a corpus) with :func:`novelty` (share of the
  sample's phrases the corpus lacks) and :func:`longest_copy` (the longest passage shared with it);
- diversity: :func:`batch_diversity` (how different the pieces of a batch are);
- infill: :func:`edge_fit` (melodic continuity with the context at both edges of a region);
- learned: ``style`` (a style classifier's probability for the requested style) and ``preference``
  (a Bradley-Terry model of stored A/B choices, :mod:`harmonixr.rl.reward_model`), given to
  :func:`reward_terms` in a :class:`RewardContext`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations, pairwise
from typing import Protocol

import numpy as np
from symusic import Score

from harmonixr.generation.postprocess import estimate_key

CONSONANT = frozenset({0, 3, 4, 5, 7, 8, 9})  # interval classes: unison/octave, thirds, fourth, fifth, sixths
TRIADS = [frozenset({(root + 0) % 12, (root + third) % 12, (root + 7) % 12}) for root in range(12) for third in (3, 4)]


def _notes(score: Score, drums: bool = False) -> np.ndarray:
    """(time, duration, pitch, track) rows of the melodic notes (and drums when asked), by time."""
    rows = [(n.time, n.duration, n.pitch, k) for k, t in enumerate(score.tracks) if drums or not t.is_drum for n in t.notes]
    return np.array(sorted(rows), dtype=np.int64).reshape(-1, 4)


def in_key(score: Score) -> float:
    """Share of melodic note duration inside the scale of the estimated key."""
    notes = _notes(score)
    if not len(notes):
        return 0.0
    scale = estimate_key(score).pitch_classes
    inside = np.isin(notes[:, 2] % 12, sorted(scale))
    return float(notes[inside, 1].sum() / max(notes[:, 1].sum(), 1))


def consonance(score: Score) -> float:
    """Share of note pairs sounding together at an onset whose interval class is consonant."""
    notes = _notes(score)
    good = total = 0
    for onset in np.unique(notes[:, 0]) if len(notes) else []:
        sounding = notes[(notes[:, 0] <= onset) & (notes[:, 0] + notes[:, 1] > onset), 2]
        for a, b in combinations(sounding.tolist(), 2):
            good += abs(a - b) % 12 in CONSONANT
            total += 1
    return good / total if total else 1.0


def chord_tones(score: Score) -> float:
    """Share of note duration, beat by beat, that belongs to the beat's best-fitting triad."""
    notes = _notes(score)
    if not len(notes):
        return 0.0
    beat = score.ticks_per_quarter
    covered = weight = 0.0
    for start in range(0, int(notes[:, 0].max()) + 1, beat):
        mine = notes[(notes[:, 0] < start + beat) & (notes[:, 0] + notes[:, 1] > start)]
        if not len(mine):
            continue
        overlap = np.minimum(mine[:, 0] + mine[:, 1], start + beat) - np.maximum(mine[:, 0], start)
        profile = np.bincount(mine[:, 2] % 12, weights=overlap, minlength=12)
        covered += max(profile[sorted(t)].sum() for t in TRIADS)
        weight += profile.sum()
    return float(covered / weight) if weight else 0.0


def on_grid(score: Score, steps_per_beat: int = 4) -> float:
    """Share of onsets (all tracks) on the grid of ``steps_per_beat`` steps per quarter note."""
    notes = _notes(score, drums=True)
    if not len(notes):
        return 0.0
    step = score.ticks_per_quarter / steps_per_beat
    return float(np.mean(np.isclose(notes[:, 0] / step, np.round(notes[:, 0] / step))))


def bar_regularity(score: Score) -> float:
    """Mean overlap of each bar's onset pattern (16th grid, 4/4 or the first meter) with the bar before."""
    notes = _notes(score, drums=True)
    ts = score.time_signatures[0] if len(score.time_signatures) else None
    bar = int(score.ticks_per_quarter * (ts.numerator * 4 / ts.denominator if ts else 4))
    step = max(score.ticks_per_quarter // 4, 1)
    if not len(notes) or bar <= 0:
        return 0.0
    patterns: dict[int, set[int]] = {}
    for time in notes[:, 0]:
        patterns.setdefault(int(time) // bar, set()).add((int(time) % bar) // step)
    pairs = [(patterns[b - 1], patterns[b]) for b in sorted(patterns) if b - 1 in patterns]
    return float(np.mean([len(a & b) / len(a | b) for a, b in pairs])) if pairs else 0.0


def bounded_syncopation(score: Score, bound: float = 0.25) -> float:
    """1 while at most ``bound`` of the onsets are syncopated (start off the beat and sound across
    the next beat), then falling linearly to 0 when all of them are: some syncopation is style,
    too much is noise."""
    notes = _notes(score, drums=True)
    if not len(notes):
        return 0.0
    beat = score.ticks_per_quarter
    off = notes[:, 0] % beat != 0
    across = (notes[:, 0] // beat + 1) * beat < notes[:, 0] + notes[:, 1]
    share = float(np.mean(off & across))
    return 1.0 if share <= bound else 1.0 - (share - bound) / (1.0 - bound)


def voice_leading(score: Score, scale: float = 5.0) -> float:
    """exp(-d / scale), d the mean distance in semitones from each note of a chord (the melodic
    notes starting at one onset) to the nearest note of the chord before."""
    notes = _notes(score)
    onsets = np.unique(notes[:, 0]) if len(notes) else np.empty(0, np.int64)
    moves = []
    for before, after in pairwise(onsets):
        prev, cur = notes[notes[:, 0] == before, 2], notes[notes[:, 0] == after, 2]
        moves += np.abs(cur[:, None] - prev[None, :]).min(axis=1).tolist()
    return float(np.exp(-np.mean(moves) / scale)) if moves else 0.0


def _lines(score: Score) -> list[list[int]]:
    """Per melodic track, the highest pitch at each onset, in time order (its melodic line)."""
    out = []
    for track in score.tracks:
        if track.is_drum:
            continue
        tops: dict[int, int] = {}
        for n in track.notes:
            tops[n.time] = max(tops.get(n.time, 0), n.pitch)
        out.append([tops[t] for t in sorted(tops)])
    return out


def _intervals(score: Score) -> list[tuple[int, ...]]:
    """Per melodic track, the intervals between consecutive notes of its line."""
    return [tuple(b - a for a, b in pairwise(line)) for line in _lines(score)]


def smoothness(score: Score, scale: float = 7.0) -> float:
    """exp(-mean |interval| / scale) over the melodic line of every track."""
    steps = [abs(step) for seq in _intervals(score) for step in seq]
    return float(np.exp(-np.mean(steps) / scale)) if steps else 0.0


class PhraseIndex:
    """The melodic interval n-grams of a corpus (transposition-invariant), for n up to ``max_n``."""

    def __init__(self, scores: Sequence[Score], n: int = 6, max_n: int = 32) -> None:
        self.n, self.max_n = n, max_n
        self.grams: dict[int, set[tuple[int, ...]]] = {k: set() for k in range(n, max_n + 1)}
        for score in scores:
            for seq in _intervals(score):
                for k in range(n, max_n + 1):
                    self.grams[k].update(seq[i : i + k] for i in range(len(seq) - k + 1))


def novelty(score: Score, index: PhraseIndex) -> float:
    """Share of the sample's interval n-grams (n = ``index.n``) that the corpus does not contain."""
    grams = [seq[i : i + index.n] for seq in _intervals(score) for i in range(len(seq) - index.n + 1)]
    return float(np.mean([g not in index.grams[index.n] for g in grams])) if grams else 1.0


def longest_copy(score: Score, index: PhraseIndex) -> int:
    """The longest run of intervals (up to ``index.max_n``) the sample shares with the corpus."""
    best = 0
    for seq in _intervals(score):
        for k in range(max(index.n, best + 1), min(len(seq), index.max_n) + 1):
            if any(seq[i : i + k] in index.grams[k] for i in range(len(seq) - k + 1)):
                best = k
            else:
                break
    return best


def batch_diversity(scores: Sequence[Score]) -> float:
    """Mean pairwise L1 distance / 2 of the pieces' pitch-class histograms (0: all alike, 1: disjoint)."""
    hists = []
    for score in scores:
        notes = _notes(score)
        counts = np.bincount(notes[:, 2] % 12, minlength=12).astype(float) if len(notes) else np.zeros(12)
        hists.append(counts / max(counts.sum(), 1))
    pairs = list(combinations(range(len(hists)), 2))
    return float(np.mean([np.abs(hists[a] - hists[b]).sum() / 2 for a, b in pairs])) if pairs else 0.0


def edge_fit(score: Score, start: int, end: int | None, scale: float = 12.0) -> float:
    """exp(-d / scale), d the mean pitch jump, per track, from the last note before ``start`` to the
    first one in the region, and from the last one in the region to the first one after ``end``."""
    jumps = []
    stop = end if end is not None else 1 << 62
    for track in score.tracks:
        if track.is_drum:
            continue
        times = sorted((n.time, n.pitch) for n in track.notes)
        before = [p for t, p in times if t < start]
        inside = [p for t, p in times if start <= t < stop]
        after = [p for t, p in times if t >= stop]
        if inside and before:
            jumps.append(abs(inside[0] - before[-1]))
        if inside and after:
            jumps.append(abs(after[0] - inside[-1]))
    return float(np.exp(-np.mean(jumps) / scale)) if jumps else 0.0


SCORE_TERMS = {"in_key": in_key, "consonance": consonance, "chord_tones": chord_tones, "on_grid": on_grid,
               "bar_regularity": bar_regularity, "syncopation": bounded_syncopation, "smoothness": smoothness,
               "voice_leading": voice_leading}  # terms of the score alone


@dataclass(frozen=True)
class RewardWeights:
    """Weight of each term in the total reward (YAML: the ``rewards`` section of the RL config)."""

    in_key: float = 1.0
    consonance: float = 1.0
    chord_tones: float = 0.5
    on_grid: float = 0.5
    bar_regularity: float = 0.5
    syncopation: float = 0.25
    smoothness: float = 0.5
    voice_leading: float = 0.25
    novelty: float = 0.5  # needs a PhraseIndex
    edge_fit: float = 1.0  # infill only
    style: float = 0.0  # needs a style classifier and the requested style
    preference: float = 0.0  # needs a Bradley-Terry preference model


class ScoreModel(Protocol):
    """A learned term: a probability-like number in [0, 1] for a score (and the style asked for)."""

    def __call__(self, score: Score, style: str) -> float: ...


@dataclass(frozen=True)
class RewardContext:
    """What the learned and corpus terms need; a term whose part is missing is left out."""

    index: PhraseIndex | None = None  # for novelty
    style_model: ScoreModel | None = None  # for style: P(requested style | score)
    preference_model: ScoreModel | None = None  # for preference: sigmoid of the Bradley-Terry score


def reward_terms(score: Score, weights: RewardWeights, context: RewardContext = RewardContext(),
                 region: tuple[int, int | None] | None = None, style: str = "unknown",
                 whole: Score | None = None) -> dict[str, float]:
    """Every term with a non-zero weight whose inputs are there, and ``total``, their weighted mean;
    each term is kept so that it can be logged on its own.

    ``score`` is what is judged (for an infill: the region alone); ``whole`` with ``region`` (ticks)
    is the piece the region sits in, for ``edge_fit``."""
    learned = {"style": context.style_model, "preference": context.preference_model}
    terms: dict[str, float] = {}
    for name, weight in vars(weights).items():
        if not weight:
            continue
        if name == "novelty" and context.index is not None:
            terms[name] = novelty(score, context.index)
        elif name == "edge_fit" and region is not None:
            terms[name] = edge_fit(whole if whole is not None else score, *region)
        elif (term := learned.get(name)) is not None:
            terms[name] = float(term(score, style))
        elif name in SCORE_TERMS:
            terms[name] = SCORE_TERMS[name](score)
    used = {name: getattr(weights, name) for name in terms}
    terms["total"] = sum(used[n] * terms[n] for n in used) / max(sum(used.values()), 1e-9)
    return terms
