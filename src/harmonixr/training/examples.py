"""Training examples: windows of a prepared piece, plain or with a hole, built by the prompt format.

A window starts at a bar line (the bar of a note drawn at random, so dense music is seen as often
as it sounds) and holds as many whole bars as fit the block; it carries the piece's header and
controls measured on the window. With probability ``infill_rate`` a hole is cut in it and the
example is laid out by :func:`harmonixr.tokens.prompt.infill`, with the per-track controls of
what the hole holds (dropped at random, so each is optional). Holes are whole bars, beat-aligned
spans, or some tracks inside a span of bars (the other tracks stay in the context).

Training pieces are augmented on the rows themselves: melodic tracks transposed, velocities
scaled, the tempo feature shifted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harmonixr.data.corpus import CorpusPiece
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK, VEL
from harmonixr.tokens.prompt import (
    CONTROL_KINDS,
    Bars,
    Header,
    Hole,
    Rows,
    TrackControls,
    gap_free_end,
    header_controls,
    infill,
    measure_controls,
    measure_header_controls,
    plain,
    time_key,
)
from harmonixr.tokens.vocab import NoteVocab
from harmonixr.training.config import ObjectiveConfig

HOLE_KINDS = ("bars", "span", "tracks")
MARKERS = 3  # PAST, FILL, END besides the hole's own rows
CONTROL_ROWS = len(CONTROL_KINDS)


@dataclass(frozen=True)
class Window:
    """Notes of bars ``bar0`` to ``bar1 - 1``; ``at_end``: nothing of the piece follows."""

    notes: np.ndarray
    bar0: int
    bar1: int
    at_end: bool


class ExampleMaker:
    """Cuts windows of at most ``block_size`` rows from pieces and applies the objective."""

    def __init__(self, vocab: NoteVocab, block_size: int, objective: ObjectiveConfig) -> None:
        self.vocab, self.block_size, self.objective = vocab, block_size, objective

    # -- header ----------------------------------------------------------------------------
    def header(self, piece: CorpusPiece, window: Window, rng: np.random.Generator | None) -> Header:
        """Style, the window's controls and every slot's program; style and controls dropped at random."""
        v, obj = self.vocab, self.objective
        style = v.style_value("unknown") if rng is not None and rng.random() < obj.drop_style else v.style_value(piece.style)
        qpm = v.tempo_of_bin(int(piece.bars.tempo[min(window.bar0, piece.bar_count - 1)]) - 1)
        measured = measure_header_controls(v, window.notes, window.bar1 - window.bar0, qpm)
        controls = header_controls(v, **measured)
        if rng is not None:
            controls = tuple(c for c in controls if rng.random() >= obj.drop_control)
        slots = piece.tracks.slots(v)
        return Header(style, controls, tuple(slots), tuple(piece.tracks.program(s, v) for s in slots))

    # -- windows ---------------------------------------------------------------------------
    def window(self, piece: CorpusPiece, bar0: int, budget: int) -> Window:
        """Whole bars from ``bar0`` whose notes fit ``budget`` rows (a bar longer than the budget
        alone is cut), stopping before a silence the relative bar count cannot span."""
        notes = piece.notes[piece.notes[:, BAR] >= bar0]
        fits = gap_free_end(notes, bar0, self.vocab)
        gap = fits < len(notes)
        notes = notes[:fits]
        if len(notes) > budget:
            last = int(notes[budget, BAR])  # the bar the budget cuts is left out whole
            whole = notes[:budget][notes[:budget, BAR] < last]
            notes = whole if len(whole) else notes[:budget]
            return Window(notes, bar0, int(notes[-1, BAR]) + (len(whole) > 0), False)
        end = int(notes[-1, BAR]) + 1 if gap else piece.bar_count
        return Window(notes, bar0, max(end, bar0 + 1), not gap)

    def plain(self, piece: CorpusPiece, bar0: int, rng: np.random.Generator | None = None) -> Rows:
        """The window at ``bar0`` as a plain example (EOS kept if the piece ends in it)."""
        header_len = 2 + len(self.vocab.spec.tempo_edges) + len(piece.tracks.slots(self.vocab))  # an upper bound
        window = self.window(piece, bar0, self.block_size - header_len - 1)
        return plain(self.vocab, self.header(piece, window, rng), window.notes, window.bar0, piece.bars, window.at_end)

    def sample(self, piece: CorpusPiece, rng: np.random.Generator, augment: bool = True) -> Rows:
        """A random window of ``piece``, plain or infill according to the objective."""
        obj = self.objective
        if augment and rng.random() < obj.augment:
            piece = self.augmented(piece, rng)
        bar0 = int(piece.notes[int(rng.integers(len(piece.notes))), BAR])
        if rng.random() >= obj.infill_rate:
            return self.plain(piece, bar0, rng)
        slots = piece.tracks.slots(self.vocab)
        reserve = 2 + len(self.vocab.spec.tempo_edges) + len(slots) + MARKERS + 2 + len(slots) * (1 + CONTROL_ROWS)
        window = self.window(piece, bar0, self.block_size - reserve)
        kind = HOLE_KINDS[int(rng.choice(len(HOLE_KINDS), p=obj.hole_weights()))]
        hole = self.choose_hole(window, kind, rng, piece.bars)
        if hole is None:
            return self.plain(piece, bar0, rng)
        controls = self.hole_controls(window, hole, slots, rng)
        return infill(self.vocab, self.header(piece, window, rng), window.notes, window.bar0, piece.bars, hole,
                      controls, kind=kind)

    # -- holes -----------------------------------------------------------------------------
    def choose_hole(self, window: Window, kind: str, rng: np.random.Generator, bars_meta: Bars | None = None) -> Hole | None:
        """A random hole of ``kind`` in the window's bars (None if the window is one bar)."""
        v, obj = self.vocab, self.objective
        bars = window.bar1 - window.bar0
        if bars < 2:
            return None
        if kind == "span" and bars_meta is not None:
            lengths = v.meter_positions(bars_meta.at(np.arange(window.bar0, window.bar1))[0])
            beats = [(window.bar0 + b, p) for b, n in enumerate(lengths) for p in range(0, int(n), v.grid)]
            beats.append((window.bar1, 0))
            first = int(rng.integers(len(beats) - 1))
            stop = min(len(beats) - 1, first + 1 + int(rng.integers(obj.max_hole_bars * 4)))
            return Hole(beats[first], beats[stop])
        length = 1 + int(rng.integers(min(obj.max_hole_bars, bars - 1)))
        first = window.bar0 + int(rng.integers(bars - length + 1))
        end: tuple[int, int] | None = (first + length, 0)
        if first + length == window.bar1 and window.at_end and rng.random() < obj.open_end_rate:
            end = None
        if kind == "bars":
            return Hole((first, 0), end)
        tracks = np.unique(window.notes[:, TRACK])
        if len(tracks) < 2:
            return Hole((first, 0), end)
        chosen = rng.choice(tracks, size=1 + int(rng.integers(len(tracks) - 1)), replace=False)
        return Hole((first, 0), end, tuple(sorted(int(t) for t in chosen)))

    def hole_controls(self, window: Window, hole: Hole, slots: list[int],
                      rng: np.random.Generator) -> dict[int, TrackControls]:
        """The measured controls of what the hole holds, on each of its tracks, dropped at random."""
        obj = self.objective
        if rng.random() < obj.drop_track_controls:
            return {}
        inside = window.notes[hole.contains(window.notes, self.vocab)]
        span = span_bars(hole, window.bar1, self.vocab)
        out = {}
        for slot in hole.tracks or slots:
            measured = measure_controls(inside[inside[:, TRACK] == slot], span, self.vocab)
            dropped = [k for k in CONTROL_KINDS if rng.random() < obj.drop_track_control]
            out[slot] = measured.without(dropped)
        return out

    # -- augmentation ------------------------------------------------------------------------
    def augmented(self, piece: CorpusPiece, rng: np.random.Generator) -> CorpusPiece:
        """``piece`` transposed (melodic tracks, staying in the pitch range), velocities scaled
        and the tempo feature shifted."""
        v, obj = self.vocab, self.objective
        notes = piece.notes.copy()
        melodic = notes[:, TRACK] != v.drum_slot
        if melodic.any():
            low, high = v.spec.pitch_range
            lowest, highest = int(notes[melodic, PITCH].min()), int(notes[melodic, PITCH].max())
            shifts = [k for k in range(obj.transpose[0], obj.transpose[1] + 1) if low <= lowest + k and highest + k <= high]
            if shifts:
                notes[melodic, PITCH] += int(rng.choice(shifts))
        scale = rng.uniform(*obj.velocity_scale)
        notes[:, VEL] = np.clip(np.rint(notes[:, VEL] * scale), 1, 127)
        shift = int(rng.integers(obj.tempo_shift[0], obj.tempo_shift[1] + 1))
        tempo = np.clip(piece.bars.tempo + shift, 1, v.spec.tempo_bins)
        return CorpusPiece(notes, Bars(piece.bars.meter, tempo), piece.tracks, piece.style, piece.source,
                           piece.path, piece.split)


def span_bars(hole: Hole, bar1: int, vocab: NoteVocab) -> float:
    """How many bars the hole spans (fractions for beat spans, counted on a 4/4 bar of positions)."""
    end = hole.end if hole.end is not None else (bar1, 0)
    per_bar = 4 * vocab.grid
    length = (end[0] - hole.start[0]) + (end[1] - hole.start[1]) / per_bar
    return max(float(length), 1.0 / 4)


def note_order_ok(notes: np.ndarray, vocab: NoteVocab) -> bool:
    """Whether ``notes`` are in reading order (used by tests and assertions)."""
    key = time_key(notes[:, BAR], notes[:, POS], vocab) * (vocab.sizes["track"] * 128) + notes[:, TRACK] * 128 + notes[:, PITCH]
    return bool(np.all(np.diff(key) > 0))
