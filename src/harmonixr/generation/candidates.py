"""Piece-aware infill: the song's own bars as candidate fills, ranked beside sampled ones.

Music repeats, and a producer expects a fill that fits the song. :func:`piece_candidates` takes
spans of the hole's length elsewhere in the piece (before it and after it, whole bars apart, on
the hole's tracks) and moves their notes into the hole. Each is scored two ways:

- its **context match**: how alike the bars around the span are to the bars around the hole
  (note F1 of onset and pitch over 1, 2 and 4 bars before and after, :data:`CONTEXT_SCALES`, the
  hole's own notes never looked at): where the song repeats a passage, the bars around it repeat
  too; where it repeats it in another key (a last chorus a step up), the span is transposed
  (melodic notes only) when that matches clearly better (:data:`TRANSPOSE_MARGIN`);
- its **bits** under the model with the music on both sides (:func:`fill_bits`: its rows and its
  end after the infill prompt, which holds the music after the hole and the per-track controls).

``source="piece"`` (the default) returns the copies by context match (bits break ties);
``"best"`` puts the copies that match well (at least :data:`GOOD_MATCH`) first and ranks the
rest, copies and sampled fills together, by bits per note; ``"sampled"`` samples only. On 105
held-out holes the context match chose better fills than the model's bits did (note F1 0.320
against 0.244; docs/evaluation.md, ``benchmarks/infill_quality.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from harmonixr.models.transformer import NoteTransformer, padded_field_nll
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK, sort_notes
from harmonixr.tokens.prompt import Bars, Header, Hole, end_row, note_rows, time_key
from harmonixr.tokens.vocab import END, FILLED, NoteVocab

SOURCES = ("piece", "best", "sampled")
# Copies kept per hole at most: every span of the piece is matched, the best-matching kept (ties:
# the nearest). On the validation split (2-bar holes) the 24 nearest spans alone gave POP909 note
# F1 0.343 (a chorus comes back 30 or more bars later) where the best of all gives 0.646.
MAX_CANDIDATES = 24
SCORE_BATCH = 8
CONTEXT_SCALES = (1, 2, 4)  # bars on each side compared by the context match, averaged over these spans
GOOD_MATCH = 0.5  # "best": a copy whose context matches this well goes before any sampled fill
TRANSPOSITIONS = range(-6, 7)  # semitones a copy's melodic notes may move (drums stay)
# A transposed copy's context must match this much better than the copy in its own key, and it
# ranks by its match less this: on the validation split (165 holes of 2 bars) 0.1, 0.15 and 0.25
# gave note F1 +0.005, +0.007 and +0.004 over no transposition (POP909 +0.042, +0.039, +0.012:
# songs that repeat a chorus a step up); with no margin, -0.017 (spurious matches).
TRANSPOSE_MARGIN = 0.15


@dataclass(frozen=True)
class Candidate:
    """A fill: its notes (piece bars, slots), where it came from, and its bits under the model."""

    notes: np.ndarray
    label: str  # "sampled", or "from bars 17-18"
    bits: float = math.nan
    match: float = math.nan  # context match of a copy (0-1)

    @property
    def match_or_0(self) -> float:
        return 0.0 if math.isnan(self.match) else self.match  # a sampled fill matches nothing

    @property
    def bits_per_note(self) -> float:
        return self.bits / (len(self.notes) + 1)  # with the end: a total would favour the sparsest span


def rank(pool: list[Candidate], source: str) -> list[Candidate]:
    """``pool`` in the order ``source`` keeps (see the module's text)."""
    if source == "piece":
        return sorted(pool, key=lambda c: (-c.match_or_0, c.bits_per_note))
    good = sorted((c for c in pool if c.match >= GOOD_MATCH), key=lambda c: -c.match)
    rest = sorted((c for c in pool if not c.match >= GOOD_MATCH), key=lambda c: c.bits_per_note)
    return good + rest


class NoteCells:
    """Notes as integer cells (bar from a window's first, position, pitch), by bar, so that the
    multiset F1s of the context match are a few numpy calls each (a hole tries every span in 13
    keys). Melodic pitches may be moved ``shift`` semitones; drums never."""

    PITCHES = 512  # a cell's room for a pitch (moved as far as TRANSPOSITIONS go): never the next position's
    OFFSET = 256  # added to every pitch, so a moved one stays inside its position's room

    def __init__(self, notes: np.ndarray, bars: int, positions: int, drum_slot: int) -> None:
        ordered = notes[np.argsort(notes[:, BAR], kind="stable")]
        self.bar = ordered[:, BAR]
        self.onset = ordered[:, POS] * self.PITCHES
        self.cell = self.onset + ordered[:, PITCH] + self.OFFSET
        self.melodic = (ordered[:, TRACK] != drum_slot).astype(np.int64)
        self.starts = np.searchsorted(self.bar, np.arange(bars + 1), side="left")
        self.bar_size = positions * self.PITCHES
        self.bars = bars
        self._seen: dict[tuple[int, int, int | None], tuple[np.ndarray, np.ndarray]] = {}

    def window(self, first: int, count: int, shift: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
        """(distinct cells, how many notes each) of the notes starting in ``count`` bars from
        ``first``; ``shift`` None: onsets only, pitch left out."""
        key = (first, count, shift)
        if key not in self._seen:
            lo, hi = self.starts[first], self.starts[min(first + count, self.bars)]
            within = self.onset[lo:hi] if shift is None else self.cell[lo:hi] + shift * self.melodic[lo:hi]
            self._seen[key] = np.unique((self.bar[lo:hi] - first) * self.bar_size + within, return_counts=True)
        return self._seen[key]


def _f1(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float | None:
    """Note F1 of two multisets of cells ((distinct, counts) each); None when both are empty."""
    total = int(a[1].sum() + b[1].sum())
    if not total:
        return None  # nothing on either side says nothing
    _, ia, ib = np.intersect1d(a[0], b[0], assume_unique=True, return_indices=True)
    return 2 * int(np.minimum(a[1][ia], b[1][ib]).sum()) / total


def context_match(cells: NoteCells, start: int, length: int, d: int, shift: int | None = 0) -> float:
    """How alike the bars around the hole (bars ``start`` to ``start + length``) are to those around
    the span ``d`` bars away (its melodic pitches moved ``shift`` semitones; None: onsets alone,
    which bounds the match in every key from above): for each of
    :data:`CONTEXT_SCALES`, the mean note F1 of that many bars before and after (a side outside the
    piece left out; 0 when neither can be compared), averaged over the scales. ``cells`` holds no
    note of the hole. On the validation split (131 holes of 2 bars) the three scales together chose
    better copies than 2 bars alone: note F1 0.325 against 0.302."""
    scores = []
    for context in CONTEXT_SCALES:
        sides = []
        for offset in (-context, length):
            a0, b0 = start + offset, start + offset + d
            if min(a0, b0) < 0 or max(a0, b0) + context > cells.bars:
                continue
            f1 = _f1(cells.window(a0, context, 0 if shift is not None else None), cells.window(b0, context, shift))
            if f1 is not None:
                sides.append(f1)
        scores.append(float(np.mean(sides)) if sides else 0.0)
    return float(np.mean(scores))


def piece_candidates(notes: np.ndarray, meters: np.ndarray, hole: Hole, bars: int, vocab: NoteVocab,
                     limit: int = MAX_CANDIDATES) -> list[Candidate]:
    """Copies of the hole's span from ``d`` bars away (the same meters there), on the hole's tracks:
    every span of the piece is matched and the ``limit`` best-matching are returned, best first
    (equal matches: the nearest first); a span that overlaps the hole, or holds no note, is not offered."""
    start, end = hole.start, hole.end if hole.end is not None else (bars, 0)
    length = end[0] - start[0] + (end[1] > 0)
    own = meters[start[0] : start[0] + length]
    tracks = hole.tracks or tuple(np.unique(notes[:, TRACK]).tolist())
    mine = notes[np.isin(notes[:, TRACK], tracks)]
    key = time_key(mine[:, BAR], mine[:, POS], vocab)
    visible = mine[~hole.in_span(mine, vocab)]  # the context match never looks inside the hole
    cells = NoteCells(visible, bars, vocab.max_positions, vocab.drum_slot)
    out: list[Candidate] = []
    for d in sorted(range(-start[0], bars - start[0]), key=lambda d: (abs(d), d)):
        if -length < d < length or not np.array_equal(meters[start[0] + d : start[0] + d + length], own):
            continue
        inside = (key >= time_key(start[0] + d, start[1], vocab)) & (key < time_key(end[0] + d, end[1], vocab))
        if not inside.any():
            continue
        moved = mine[inside].copy()
        moved[:, BAR] -= d
        first, last = start[0] + d + 1, start[0] + d + length
        label = f"from bars {first}-{last}" if last > first else f"from bar {first}"
        match = context_match(cells, start[0], length, d)
        shift, moved_match = best_transposition(cells, start[0], length, d, match)
        if moved_match - TRANSPOSE_MARGIN > match:  # the song repeats it in another key
            melodic = moved[:, TRACK] != vocab.drum_slot
            moved[melodic, PITCH] = np.clip(moved[melodic, PITCH] + shift, *vocab.spec.pitch_range)
            label, match = f"{label}, {'up' if shift > 0 else 'down'} {abs(shift)}", moved_match - TRANSPOSE_MARGIN
        out.append(Candidate(sort_notes(moved), label, match=match))
    return sorted(out, key=lambda c: -c.match)[:limit]  # a stable sort: equal matches stay nearest first


def best_transposition(cells: NoteCells, start: int, length: int, d: int, own: float) -> tuple[int, float]:
    """(semitones, context match) of the best of :data:`TRANSPOSITIONS` but none for the span ``d``
    bars away, whose match in its own key is ``own``; (0, 0.0) when the onsets alone cannot match
    better than ``own`` by :data:`TRANSPOSE_MARGIN` (no key can then)."""
    if context_match(cells, start, length, d, None) - TRANSPOSE_MARGIN <= own:
        return 0, 0.0
    return max(((k, context_match(cells, start, length, d, k)) for k in TRANSPOSITIONS if k),
               key=lambda found: (found[1], -abs(found[0])))


@torch.inference_mode()
def fill_bits(model: NoteTransformer, vocab: NoteVocab, prompt: np.ndarray, fills: list[np.ndarray], hole: Hole,
              bar0: int, bars: Bars, header: Header) -> list[float]:
    """Bits of each fill's rows and its END after ``prompt`` (the infill prompt, ending with FILL)."""
    out: list[float] = []
    for k in range(0, len(fills), SCORE_BATCH):
        seqs = [np.concatenate([prompt, note_rows(vocab, f, hole.start[0], bar0, bars, header, FILLED, hole),
                                end_row(END, FILLED)]) for f in fills[k : k + SCORE_BATCH]]
        targets = [np.arange(len(seq)) >= len(prompt) for seq in seqs]
        out += [float(part.sum()) / math.log(2) for part in padded_field_nll(model, seqs, targets)]
    return out
