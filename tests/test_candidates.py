"""The context match of piece-aware infill, against its definition written out note by note."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harmonixr.generation.candidates import CONTEXT_SCALES, NoteCells, context_match
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK

DRUMS = 3  # the drum slot of these notes


def random_notes(seed: int, count: int, bars: int) -> np.ndarray:
    """(count, 8) notes on few cells, so that bars share some and a cell often holds two notes
    (a doubled pitch, a drum and a moved melodic note on one cell)."""
    rng = np.random.default_rng(seed)
    notes = np.zeros((count, 8), dtype=np.int64)
    notes[:, BAR] = rng.integers(0, bars, count)
    notes[:, POS] = rng.integers(0, 4, count) * 12
    notes[:, TRACK] = rng.integers(0, DRUMS + 1, count)
    notes[:, PITCH] = rng.choice([36, 38, 40, 43, 60, 62, 64, 67], count)
    return notes


def window(notes: np.ndarray, first: int, count: int, shift: int | None) -> Counter:
    """The multiset of (bar in the window, position, pitch moved ``shift``; None: no pitch) of the
    notes starting in ``count`` bars from ``first``."""
    cells: Counter = Counter()
    for note in notes[(notes[:, BAR] >= first) & (notes[:, BAR] < first + count)]:
        moved = int(note[PITCH]) + (shift if note[TRACK] != DRUMS else 0) if shift is not None else None
        cells[(int(note[BAR]) - first, int(note[POS]), moved)] += 1
    return cells


def expected_match(notes: np.ndarray, bars: int, start: int, length: int, span: int, shift: int | None) -> float:
    """The mean over the context scales of the mean note F1, before and after, of the hole's
    surroundings (unmoved) and the span's (moved): the definition of :func:`context_match`."""
    scores = []
    for context in CONTEXT_SCALES:
        sides = []
        for offset in (-context, length):
            a0, b0 = start + offset, span + offset
            if min(a0, b0) < 0 or max(a0, b0) + context > bars:
                continue
            a = window(notes, a0, context, 0 if shift is not None else None)
            b = window(notes, b0, context, shift)
            total = sum(a.values()) + sum(b.values())
            if total:
                sides.append(2 * sum((a & b).values()) / total)
        scores.append(np.mean(sides) if sides else 0.0)
    return float(np.mean(scores))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), count=st.integers(0, 80), bars=st.integers(1, 14), start=st.integers(0, 13),
       length=st.integers(1, 3), shift=st.sampled_from([0, None, 2, -5]))
def test_the_context_match_of_every_span_is_the_multiset_f1_of_their_surroundings(seed, count, bars, start, length,
                                                                                 shift) -> None:
    start = min(start, bars - 1)
    notes = random_notes(seed, count, bars)
    visible = notes[(notes[:, BAR] < start) | (notes[:, BAR] >= start + length)]  # the hole's notes are not looked at
    matches = context_match(NoteCells(visible, bars, DRUMS), start, length, shift)
    assert matches.shape == (bars,)
    for span in range(bars):
        assert matches[span] == expected_match(visible, bars, start, length, span, shift)
