"""The prompt format's one home: header, windows, holes, per-track controls and the infill layout.

Pure functions over note arrays (:mod:`harmonixr.tokens.notes`) that build the rows the model reads
(:mod:`harmonixr.tokens.vocab`). Training examples, generation and refine all build their
sequences here, so what the model is asked at generation is what it learned from.

A **plain** sequence (training, continuation, a new piece)::

    BOS STYLE CONTROL* INSTRUMENT* | notes of the window ... | EOS (if the piece ends there)

An **infill** sequence puts the music after the hole first, then the music before it, and the fill
straight after the bars before the hole, as a continuation would have it ("spm": suffix, prefix,
middle)::

    header | HOLE HOLE_END? HOLE_TRACK* TRACK_CONTROL* | the context from the hole's start on |
             PAST | the context before the hole | FILL | the hole's notes | END

``HOLE`` sits at the hole's start and ``HOLE_END`` at its end (none: the hole runs to the end of
the piece); ``HOLE_TRACK`` rows name the tracks of a hole that leaves the others in place (none:
every track). ``TRACK_CONTROL`` rows give, per track, what the fill should be like: onsets per bar
(bin 0: silent), mean velocity, chord size, lowest and highest pitch. Each is optional; training
drops them at random, and generation infers them from the bars around the hole unless the user
sets them.

Time is written relative: a note's ``dbar`` counts the bars since the previous position's, and the
markers ``HOLE``, ``PAST`` and ``FILL`` restart the count at their own time (the hole's start, the
window's first bar, the hole's start). Every other feature is absolute: the ``bar`` feature counts
bars from the window's first bar, so the notes after the hole and the fill line up. Every
sequence built here gets its notes' echoes (:func:`~harmonixr.tokens.echo.add_echoes`): a fill's
note hears what its track played at its place in the bars before and after the hole.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, overload

import numpy as np

from harmonixr.tokens.echo import add_echoes
from harmonixr.tokens.notes import BAR, DUR, MICRO, PITCH, POS, TRACK, VEL
from harmonixr.tokens.vocab import (
    AFTER_HOLE,
    BEFORE_HOLE,
    BODY,
    BOS,
    COL,
    COLUMNS,
    CONTROL,
    DRUM_PROGRAM,
    ECHO_COLUMNS,
    END,
    EOS,
    FIELD_COLUMNS,
    FIELDS,
    FILL,
    FILLED,
    FUTURE,
    HEADER,
    HOLE,
    HOLE_END,
    HOLE_TRACK,
    IN_HOLE,
    INSTRUMENT,
    MAX_WINDOW_BARS,
    NOTE,
    PAST,
    STYLE,
    TRACK_CONTROL,
    NoteVocab,
)

CONTROL_KINDS = ("density", "loudness", "chord", "low", "high")  # learned: each a TRACK_CONTROL row
# and the velocity range and the rhythm, masks at sampling only
TRACK_CONTROL_KEYS = (*CONTROL_KINDS, "vel_low", "vel_high", "rhythm")


@dataclass(frozen=True)
class Hole:
    """A region of a piece: from ``start`` to ``end`` (``(bar, grid position)``, end excluded;
    ``end=None``: to the end of the piece) in ``tracks`` (slots; empty: every track)."""

    start: tuple[int, int]
    end: tuple[int, int] | None
    tracks: tuple[int, ...] = ()

    def in_span(self, notes: np.ndarray, vocab: NoteVocab) -> np.ndarray:
        """(N,) bool: the notes whose onset lies in the hole's time span (any track)."""
        key = time_key(notes[:, BAR], notes[:, POS], vocab)
        inside = key >= time_key(*self.start, vocab)
        if self.end is not None:
            inside &= key < time_key(*self.end, vocab)
        return inside

    def contains(self, notes: np.ndarray, vocab: NoteVocab) -> np.ndarray:
        """(N,) bool: the notes the hole removes (in its span and on its tracks)."""
        inside = self.in_span(notes, vocab)
        if self.tracks:
            inside &= np.isin(notes[:, TRACK], self.tracks)
        return inside

    def relation(self, bar: np.ndarray | int, pos: np.ndarray | int, vocab: NoteVocab) -> np.ndarray | int:
        """The ``hole`` feature of positions at (bar, pos): before, inside or after the span (an
        int for ints: the sampler asks one note at a time)."""
        if isinstance(bar, int) and isinstance(pos, int):
            key = bar * (vocab.max_positions + 1) + pos
            if key < self.start[0] * (vocab.max_positions + 1) + self.start[1]:
                return BEFORE_HOLE
            if self.end is not None and key >= self.end[0] * (vocab.max_positions + 1) + self.end[1]:
                return AFTER_HOLE
            return IN_HOLE
        keys = time_key(bar, pos, vocab)
        out = np.where(keys < time_key(*self.start, vocab), BEFORE_HOLE, IN_HOLE)
        if self.end is not None:
            out = np.where(keys >= time_key(*self.end, vocab), AFTER_HOLE, out)
        return out

    def bars(self, last_bar: int) -> list[int]:
        """The bars the hole touches (``last_bar``: the piece's last bar, for an open end)."""
        last = last_bar if self.end is None else self.end[0] - (self.end[1] == 0)
        return list(range(self.start[0], last + 1))


@dataclass(frozen=True)
class TrackControls:
    """What a fill should be like on one track (None: left to the model).

    The kinds of :data:`CONTROL_KINDS` are prompt rows the model learned; when a caller sets them,
    sampling also enforces them (density as a window of onsets, chord as a cap on notes at one
    onset, the pitch range, the velocity range and the rhythm as masks, loudness by scaling the
    fill's velocities)."""

    density: float | None = None  # onsets per bar; 0: silent
    loudness: float | None = None  # mean velocity
    chord: int | None = None  # most notes starting together
    low: int | None = None  # lowest pitch
    high: int | None = None  # highest pitch
    vel_low: int | None = None  # lowest velocity (never inferred: a request's own)
    vel_high: int | None = None  # highest velocity
    # keep the rhythm: onsets only at the positions in a bar where the track starts notes in the
    # bars around the hole (None: as inferred, on for a track that plays on either side of it)
    rhythm: bool | None = None

    def without(self, kinds: Sequence[str]) -> TrackControls:
        return replace(self, **{k: None for k in kinds})

    def problem(self) -> str | None:
        """Why no fill can meet these controls, or None."""
        for key in ("loudness", "vel_low", "vel_high", "low", "high"):
            value = getattr(self, key)
            if value is not None and not (1 if key != "low" and key != "high" else 0) <= value <= 127:
                return f"{key} {value:g} is outside the MIDI range {'0' if key in ('low', 'high') else '1'}-127"
        low, high = self.vel_low or 1, self.vel_high or 127
        if low > high:
            return f"vel_low {low} is above vel_high {high}"
        if self.loudness is not None and not low <= self.loudness <= high:
            return f"loudness {self.loudness:g} is outside its velocity range {low}-{high}"
        if self.density is not None and self.density < 0:
            return f"density {self.density:g} must be 0 (silent) or more"
        if self.chord is not None and self.chord < 1:
            return f"chord {self.chord} must be 1 or more"
        if self.low is not None and self.high is not None and self.low > self.high:
            return f"low {self.low} is above high {self.high}"
        if self.rhythm not in (None, True, False):
            return f"rhythm {self.rhythm:g} is neither 1 (keep the rhythm played around the region) nor 0 (any)"
        return None


@dataclass(frozen=True)
class Header:
    """What a sequence starts with: the style, piece-level control value ids, and each slot's program."""

    style: int  # value id of the Style token
    controls: tuple[int, ...] = ()  # value ids (Tempo_i, Density_i, Low_o, High_o, Loud_i)
    slots: tuple[int, ...] = ()  # track slots, melodic first, the drum slot last
    programs: tuple[int, ...] = ()  # GM program of each slot (-1: drums)

    def program_of(self, vocab: NoteVocab) -> np.ndarray:
        """(track slots + 1,) the ``program`` feature of each slot (0 where the slot is unused);
        read-only, worked out once per header (the sampler asks for it at every note)."""
        return _program_table(tuple(self.slots), tuple(self.programs), vocab.sizes["track"])


@functools.lru_cache(maxsize=64)
def _program_table(slots: tuple[int, ...], programs: tuple[int, ...], size: int) -> np.ndarray:
    table = np.zeros(size, dtype=np.int64)
    for slot, program in zip(slots, programs):
        table[slot] = DRUM_PROGRAM + 1 if program < 0 else program + 1
    table.flags.writeable = False
    return table


@dataclass(frozen=True)
class Bars:
    """Per piece bar: the stored meter and tempo features (bars past the end repeat the last)."""

    meter: np.ndarray  # (B,)
    tempo: np.ndarray  # (B,)

    @overload
    def at(self, bar: int) -> tuple[int, int]: ...
    @overload
    def at(self, bar: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def at(self, bar: np.ndarray | int) -> tuple[np.ndarray, np.ndarray] | tuple[int, int]:
        """The (meter, tempo) features of piece bars ``bar`` (ints for an int: the sampler asks one at a time)."""
        if isinstance(bar, int):
            one = min(max(bar, 0), len(self.meter) - 1)
            return int(self.meter[one]), int(self.tempo[one])
        index = np.clip(np.asarray(bar, dtype=np.int64), 0, len(self.meter) - 1)
        return self.meter[index], self.tempo[index]


@dataclass
class Rows:
    """A sequence of rows and which of them the model learns (or is asked) to write."""

    rows: np.ndarray  # (T, len(COLUMNS)) int64
    target: np.ndarray  # (T,) bool: rows the model predicts
    fill_start: int = -1  # index of the FILL row (-1: a plain sequence)
    bar0: int = 0  # piece bar of the window's first bar
    kind: str = "plain"
    meta: dict = field(default_factory=dict)


def time_key(bar: np.ndarray | int, pos: np.ndarray | int, vocab: NoteVocab) -> np.ndarray:
    """One integer per (bar, position), increasing with time."""
    return np.asarray(bar, dtype=np.int64) * (vocab.max_positions + 1) + np.asarray(pos, dtype=np.int64)


# -- rows ------------------------------------------------------------------------------------
_FIELD_INDEX = np.array(FIELD_COLUMNS)  # the columns of the sampled fields, and of the echoes
_ECHO_INDEX = np.array([COL[name] for name in ECHO_COLUMNS])
_TRACK_FIELD = FIELDS.index("track")


def _rows(count: int) -> np.ndarray:
    return np.zeros((count, len(COLUMNS)), dtype=np.int64)


def header_rows(vocab: NoteVocab, header: Header) -> np.ndarray:
    """BOS, STYLE, one CONTROL per control value, one INSTRUMENT per slot."""
    rows = _rows(2 + len(header.controls) + len(header.slots))
    rows[:, COL["segment"]] = HEADER
    rows[0, COL["type"]] = BOS
    rows[1, COL["type"]], rows[1, COL["value"]] = STYLE, header.style
    k = 2
    for value in header.controls:
        rows[k, COL["type"]], rows[k, COL["value"]] = CONTROL, value
        k += 1
    programs = header.program_of(vocab)
    for slot, program in zip(header.slots, header.programs):
        rows[k, COL["type"]], rows[k, COL["value"]] = INSTRUMENT, vocab.program_value(program)
        rows[k, COL["track"]], rows[k, COL["program"]] = slot + 1, programs[slot]
        k += 1
    return rows


def note_rows(vocab: NoteVocab, notes: np.ndarray, ref_bar: int, bar0: int, bars: Bars, header: Header,
              segment: int, hole: Hole | None = None) -> np.ndarray:
    """One NOTE row per note (0-based note columns), ``dbar`` counted from ``ref_bar`` for the first."""
    rows = _rows(len(notes))
    if not len(notes):
        return rows
    previous = np.concatenate([[ref_bar], notes[:-1, BAR]])
    rows[:, COL["type"]] = NOTE
    rows[:, COL["dbar"]] = np.clip(notes[:, BAR] - previous, 0, vocab.spec.max_dbar) + 1
    rows[:, COL["pos"]] = notes[:, POS] + 1
    rows[:, COL["track"]] = notes[:, TRACK] + 1
    rows[:, COL["pitch"]] = notes[:, PITCH] + 1
    rows[:, COL["dur"]] = notes[:, DUR] + 1
    rows[:, COL["vel"]] = notes[:, VEL]
    rows[:, COL["micro"]] = notes[:, MICRO] + vocab.micro_zero
    _place(rows, vocab, notes[:, BAR], notes[:, POS], bar0, bars, segment, hole)
    rows[:, COL["program"]] = header.program_of(vocab)[notes[:, TRACK]]
    return rows


def bar_feature(bar: np.ndarray | int, bar0: int) -> np.ndarray | int:
    """The ``bar`` feature of piece bars ``bar`` in a window starting at ``bar0``: bars from the
    window's first, counted from 1, saturating at :data:`~harmonixr.tokens.vocab.MAX_WINDOW_BARS`
    (an int for an int: the sampler asks for one bar at a time)."""
    if isinstance(bar, int):
        return min(max(bar - bar0, 0), MAX_WINDOW_BARS - 1) + 1
    return np.clip(np.asarray(bar) - bar0, 0, MAX_WINDOW_BARS - 1) + 1


def _place(rows: np.ndarray, vocab: NoteVocab, bar: np.ndarray | int, pos: np.ndarray | int, bar0: int, bars: Bars,
           segment: int, hole: Hole | None) -> None:
    """Fill the time features of rows at (bar, pos): window bar, meter, tempo, segment, hole
    (arrays of the rows' times, or ints for one row: the sampler's, with no numpy call per feature)."""
    rows[..., COL["bar"]] = bar_feature(bar, bar0)
    rows[..., COL["meter"]], rows[..., COL["tempo"]] = bars.at(bar)
    rows[..., COL["segment"]] = segment
    if hole is not None:
        rows[..., COL["hole"]] = hole.relation(bar, pos, vocab)


def row_of_fields(vocab: NoteVocab, fields: np.ndarray, bar: int, pos: int, bar0: int, bars: Bars, header: Header,
                  segment: int, hole: Hole | None = None, echoes: np.ndarray | None = None) -> np.ndarray:
    """The row of a note given its stored fields (``FIELDS`` order, as the sampler drew them), its
    absolute (bar, pos) and its echoes (:class:`~harmonixr.tokens.echo.EchoIndex`; None: none):
    the same row :func:`note_rows` and :func:`~harmonixr.tokens.echo.add_echoes` write for that note."""
    row = np.zeros(len(COLUMNS), dtype=np.int64)
    row[_FIELD_INDEX] = fields
    if echoes is not None:
        row[_ECHO_INDEX] = echoes
    _place(row, vocab, int(bar), int(pos), bar0, bars, segment, hole)
    row[COL["program"]] = header.program_of(vocab)[int(fields[_TRACK_FIELD]) - 1]
    return row


def marker_row(vocab: NoteVocab, kind: int, time: tuple[int, int], ref_bar: int, bar0: int, bars: Bars,
               segment: int, hole: Hole | None = None) -> np.ndarray:
    """A HOLE, HOLE_END, PAST or FILL row at ``time`` (its ``dbar`` counted from ``ref_bar``)."""
    row = _rows(1)
    row[0, COL["type"]] = kind
    row[0, COL["dbar"]] = min(max(time[0] - ref_bar, 0), vocab.spec.max_dbar) + 1
    row[0, COL["pos"]] = time[1] + 1
    _place(row, vocab, np.array([time[0]]), np.array([time[1]]), bar0, bars, segment, hole)
    return row


def end_row(kind: int, segment: int) -> np.ndarray:
    row = _rows(1)
    row[0, COL["type"]], row[0, COL["segment"]] = kind, segment
    return row


# -- per-track controls ------------------------------------------------------------------------
def measure_controls(notes: np.ndarray, span_bars: float, vocab: NoteVocab) -> TrackControls:
    """The controls of one track's ``notes`` over ``span_bars`` bars (every control set)."""
    if not len(notes):
        return TrackControls(density=0.0)
    onsets, counts = np.unique(notes[:, BAR] * (vocab.max_positions + 1) + notes[:, POS], return_counts=True)
    drums = bool(notes[0, TRACK] == vocab.drum_slot)
    return TrackControls(density=len(onsets) / max(span_bars, 1e-9), loudness=float(notes[:, VEL].mean()),
                         chord=int(counts.max()), low=None if drums else int(notes[:, PITCH].min()),
                         high=None if drums else int(notes[:, PITCH].max()))


def control_rows(vocab: NoteVocab, controls: Mapping[int, TrackControls], header: Header,
                 segment: int = FUTURE) -> np.ndarray:
    """TRACK_CONTROL rows of the controls that are set, by slot, in :data:`CONTROL_KINDS` order."""
    spec, programs = vocab.spec, header.program_of(vocab)
    out = []
    for slot in sorted(controls):
        c = controls[slot]
        values: list[tuple[str, int]] = []
        if c.density is not None:
            values.append((f"TrackDensity_{int(np.searchsorted(spec.track_density_edges, c.density, side='right'))}", 0))
        if c.loudness is not None:
            values.append((f"TrackLoud_{int(np.searchsorted(spec.track_loudness_edges, c.loudness, side='right'))}", 0))
        if c.chord is not None:
            values.append((f"TrackPoly_{int(np.clip(c.chord, 1, spec.max_polyphony))}", 0))
        if c.low is not None:
            values.append(("TrackLow", int(c.low) + 1))
        if c.high is not None:
            values.append(("TrackHigh", int(c.high) + 1))
        for name, pitch in values:
            row = _rows(1)[0]
            row[COL["type"]], row[COL["value"]] = TRACK_CONTROL, vocab.value(name)
            row[COL["track"]], row[COL["pitch"]], row[COL["program"]] = slot + 1, pitch, programs[slot]
            row[COL["segment"]] = segment
            out.append(row)
    return np.stack(out) if out else _rows(0)


def density_bin(vocab: NoteVocab, density: float) -> int:
    """The bin of an onsets-per-bar value (0: silent)."""
    return int(np.searchsorted(vocab.spec.track_density_edges, density, side="right"))


# -- sequences ---------------------------------------------------------------------------------
def plain(vocab: NoteVocab, header: Header, notes: np.ndarray, bar0: int, bars: Bars, ends: bool) -> Rows:
    """Header, the window's notes (their first ``dbar`` from bar ``bar0``), EOS if the piece ends."""
    head = header_rows(vocab, header)
    body = note_rows(vocab, notes, bar0, bar0, bars, header, BODY)
    parts = [head, body] + ([end_row(EOS, BODY)] if ends else [])
    rows = add_echoes(np.concatenate(parts), vocab)
    target = np.arange(len(rows)) >= len(head)
    return Rows(rows, target, -1, bar0, "plain")


def infill(vocab: NoteVocab, header: Header, notes: np.ndarray, bar0: int, bars: Bars, hole: Hole,
           controls: Mapping[int, TrackControls] | None = None, fill: bool = True, kind: str = "infill") -> Rows:
    """The infill sequence of ``hole`` over the window's ``notes`` (the hole's notes among them).

    With ``fill`` the hole's notes and END follow FILL (a training example); without, the
    sequence ends with FILL (a prompt to sample the fill after).
    """
    taken = hole.contains(notes, vocab)
    context, inside = notes[~taken], notes[taken]
    after = time_key(context[:, BAR], context[:, POS], vocab) >= time_key(*hole.start, vocab)
    head = header_rows(vocab, header)
    spec_rows = [marker_row(vocab, HOLE, hole.start, bar0, bar0, bars, FUTURE, hole)]
    if hole.end is not None:
        spec_rows.append(marker_row(vocab, HOLE_END, hole.end, hole.start[0], bar0, bars, FUTURE, hole))
    if hole.tracks:
        programs = header.program_of(vocab)
        for slot in hole.tracks:
            row = _rows(1)
            row[0, COL["type"]], row[0, COL["track"]] = HOLE_TRACK, slot + 1
            row[0, COL["program"]], row[0, COL["segment"]] = programs[slot], FUTURE
            spec_rows.append(row)
    spec_rows.append(control_rows(vocab, controls or {}, header))
    parts = [head, *spec_rows,
             note_rows(vocab, context[after], hole.start[0], bar0, bars, header, FUTURE, hole),
             marker_row(vocab, PAST, (bar0, 0), bar0, bar0, bars, BODY, hole),
             note_rows(vocab, context[~after], bar0, bar0, bars, header, BODY, hole),
             marker_row(vocab, FILL, hole.start, bar0, bar0, bars, FILLED, hole)]
    fill_start = sum(len(p) for p in parts) - 1
    if fill:
        parts += [note_rows(vocab, inside, hole.start[0], bar0, bars, header, FILLED, hole), end_row(END, FILLED)]
    rows = add_echoes(np.concatenate(parts), vocab)
    types = rows[:, COL["type"]]
    target = (types == NOTE) | (types == END)
    return Rows(rows, target, fill_start, bar0, kind)


def window_notes(notes: np.ndarray, bar0: int, bar1: int) -> np.ndarray:
    """The notes of bars ``bar0`` to ``bar1 - 1``."""
    return notes[(notes[:, BAR] >= bar0) & (notes[:, BAR] < bar1)]


def gap_free_start(notes: np.ndarray, bar0: int, vocab: NoteVocab) -> int:
    """The first bar from which the window's notes have no silence longer than ``max_dbar`` bars
    before the last of them (earlier bars cannot be reached by relative bar counts)."""
    if not len(notes):
        return bar0
    bars = np.concatenate([[bar0], np.unique(notes[:, BAR])])
    gaps = np.flatnonzero(np.diff(bars) > vocab.spec.max_dbar)
    return int(bars[gaps[-1] + 1]) if len(gaps) else bar0


def gap_free_end(notes: np.ndarray, ref_bar: int, vocab: NoteVocab) -> int:
    """How many of ``notes`` (sorted) can follow ``ref_bar`` before a silence longer than ``max_dbar``."""
    if not len(notes):
        return 0
    bars = np.concatenate([[ref_bar], notes[:, BAR]])
    gaps = np.flatnonzero(np.diff(bars) > vocab.spec.max_dbar)
    return int(gaps[0]) if len(gaps) else len(notes)


def header_controls(vocab: NoteVocab, tempo: float | None = None, density: float | None = None,
                    pitch_range: tuple[int, int] | None = None, loudness: float | None = None) -> tuple[int, ...]:
    """Value ids of the piece-level controls: a tempo (bpm), a density (notes per bar), a pitch range
    and a loudness (mean velocity); the ones left out are left to the model."""
    spec, out = vocab.spec, []
    if tempo is not None:
        out.append(vocab.value(f"Tempo_{int(np.searchsorted(spec.tempo_edges, tempo, side='right'))}"))
    if density is not None:
        out.append(vocab.value(f"Density_{int(np.searchsorted(spec.density_edges, density, side='right'))}"))
    if pitch_range is not None:
        out += [vocab.value(f"Low_{min(pitch_range[0] // 12, 10)}"), vocab.value(f"High_{min(pitch_range[1] // 12, 10)}")]
    if loudness is not None:
        out.append(vocab.value(f"Loud_{int(np.searchsorted(spec.loudness_edges, loudness, side='right'))}"))
    return tuple(out)


def measure_header_controls(vocab: NoteVocab, notes: np.ndarray, bars: int, qpm: float) -> dict[str, Any]:
    """The piece-level controls of ``notes`` over ``bars`` bars at ``qpm`` (arguments of :func:`header_controls`)."""
    melodic = notes[notes[:, TRACK] != vocab.drum_slot]
    return {"tempo": qpm, "density": len(notes) / max(bars, 1),
            "pitch_range": (int(melodic[:, PITCH].min()), int(melodic[:, PITCH].max())) if len(melodic) else None,
            "loudness": float(notes[:, VEL].mean()) if len(notes) else None}


def read_notes(vocab: NoteVocab, rows: np.ndarray, bar0: int) -> dict[int, np.ndarray]:
    """The notes of a sequence's rows, per segment (FUTURE, BODY, FILLED): the inverse of the
    builders above. ``bar0``: the piece bar of the window's first bar."""
    out: dict[int, list[list[int]]] = {}
    ref = bar0
    for row in rows:
        kind = int(row[COL["type"]])
        if kind in (HOLE, PAST, FILL):
            ref = bar0 + int(row[COL["bar"]]) - 1
        elif kind == NOTE:
            ref += int(row[COL["dbar"]]) - 1
            out.setdefault(int(row[COL["segment"]]), []).append(
                [ref, int(row[COL["pos"]]) - 1, int(row[COL["micro"]]) - vocab.micro_zero, int(row[COL["track"]]) - 1,
                 int(row[COL["pitch"]]) - 1, int(row[COL["dur"]]) - 1, int(row[COL["vel"]])])
    return {segment: np.asarray(notes, dtype=np.int64) for segment, notes in out.items()}
