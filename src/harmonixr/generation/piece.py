"""A user's piece as the model sees it, and the way back: regions, the bar timeline, splicing.

:class:`Piece` keeps the original :class:`symusic.Score` untouched and beside it the normalized
score, its tokens and their events (:mod:`harmonixr.data.events`). Generated notes arrive as
events at ``(bar, grid position)`` in a track slot; :meth:`Piece.to_notes` turns them into notes in
the original's ticks through the bar timeline of the tokens (each bar's time signature gives its
length in quarter notes), and :meth:`Piece.splice` writes them into a copy of the original, in
place of the notes of the region. Everything outside the region (notes, tempo map, time
signatures, tracks, names, ticks per quarter) is the original's, exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from symusic import Note, Score, Tempo, TimeSignature, Track

from harmonixr.config import LimitsConfig
from harmonixr.data.events import BAR, NOTE, TEMPO, Event, Vocab, parse_body
from harmonixr.data.quantize import normalize
from harmonixr.data.safe_load import load_score_isolated
from harmonixr.data.tokenize import DRUMS, instrument_name, normalize_style, style_token

_SPAN = re.compile(r"^\s*(\d+)(?::(\d+))?\s*-\s*(\d+)(?::(\d+))?\s*$")


class GenerationError(ValueError):
    """A request that cannot be carried out on this piece (the message says why)."""


@dataclass(frozen=True)
class Region:
    """Where to write: from ``start`` to ``end`` (``(bar, grid position)``, bars counted from 0;
    ``end=None``: to the end of the piece) in ``tracks`` (indices into the original's tracks;
    empty: all tracks)."""

    start: tuple[int, int]
    end: tuple[int, int] | None
    tracks: tuple[int, ...] = ()

    @classmethod
    def parse(cls, spec: str, grid: int, tracks: tuple[int, ...] = ()) -> Region:
        """``"5-8"``: bars 5 to 8 (1-based, inclusive, as a DAW counts); ``"5:3-7:1"``: from bar 5
        beat 3 up to bar 7 beat 1 (end excluded), for beat-aligned spans."""
        match = _SPAN.match(spec)
        if not match:
            raise GenerationError(f"region {spec!r}: expected BAR-BAR (e.g. 5-8) or BAR:BEAT-BAR:BEAT (e.g. 5:3-7:1)")
        bar_a, beat_a, bar_b, beat_b = match.groups()
        if int(bar_a) < 1 or int(bar_b) < 1 or any(b is not None and int(b) < 1 for b in (beat_a, beat_b)):
            raise GenerationError(f"region {spec!r}: bars and beats count from 1")
        if beat_a is None and beat_b is None:
            start, end = (int(bar_a) - 1, 0), (int(bar_b), 0)
        else:
            start = (int(bar_a) - 1, (int(beat_a or 1) - 1) * grid)
            end = (int(bar_b) - 1, (int(beat_b or 1) - 1) * grid)
        if end <= start:
            raise GenerationError(f"region {spec!r} is empty: its end is not after its start")
        return cls(start, end, tuple(tracks))


@dataclass
class Piece:
    """An original score with its normalized tokens, events, track slots and bar timeline."""

    original: Score
    vocab: Vocab
    style: str = "unknown"
    header: list[int] = field(default_factory=list)  # BOS + style, controls, instruments
    events: list[Event] = field(default_factory=list)  # the body, bars numbered from 0
    programs: list[int] = field(default_factory=list)  # GM program per slot, slot order (-1: drums, last)
    slot_tracks: list[int] = field(default_factory=list)  # original track index per slot
    bar_timesig: list[int] = field(default_factory=list)  # TimeSig token id of each bar
    _starts: list[float] | None = field(default=None, repr=False, compare=False)  # quarters at each bar line

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_score(cls, score: Score, vocab: Vocab, style: str = "unknown", path: str = "<score>") -> Piece:
        """Normalize and tokenize ``score`` (not modified); raises RejectError/TokenizeError."""
        tokenizer = vocab.tokenizer
        normalized, _ = normalize(score, tokenizer, path)
        header, body = tokenizer.split_header(tokenizer.encode(normalized, normalize_style(style)))
        piece = cls(score, vocab, normalize_style(style), [tokenizer.bos_id, *header], parse_body(vocab, body))
        piece.programs = tokenizer.instruments(header)
        piece.slot_tracks = _slot_tracks(score, normalized)
        piece.bar_timesig = _bar_timesigs(piece.events)
        return piece

    @classmethod
    def from_file(cls, path: str, vocab: Vocab, style: str = "unknown", limits: LimitsConfig | None = None) -> Piece:
        """Parse an untrusted MIDI file in a child process (:mod:`harmonixr.data.safe_load`), then tokenize."""
        return cls.from_score(load_score_isolated(path, limits or LimitsConfig()), vocab, style, path)

    @classmethod
    def empty(cls, vocab: Vocab, programs: list[int], style: str = "unknown", tempo: float = 120.0,
              time_signature: tuple[int, int] = (4, 4), controls: Sequence[str] = (), tpq: int = 480) -> Piece:
        """A piece with no notes yet: named tracks of ``programs`` (-1: drums), one tempo, one meter;
        ``controls``: header control token names (e.g. ``CtlDensity_4``)."""
        tok = vocab.tokenizer
        if not programs:
            raise GenerationError("a new piece needs at least one instrument")
        melodic = [p for p in programs if p >= 0]
        slots = melodic + ([-1] if -1 in programs else [])
        if len(melodic) > tok.spec.max_tracks:
            raise GenerationError(f"{len(melodic)} instruments > {tok.spec.max_tracks} track slots")
        score = Score(tpq)
        score.tempos.append(Tempo(0, float(tempo)))
        score.time_signatures.append(TimeSignature(0, *time_signature))
        for program in slots:
            score.tracks.append(Track(instrument_name(program), max(program, 0), program < 0))
        if normalize_style(style) not in tok.styles:
            raise GenerationError(f"style {style!r} is not one the model knows: {', '.join(tok.styles)}")
        unknown = [c for c in controls if c not in tok.vocab]
        if unknown:
            raise GenerationError(f"unknown control tokens {unknown}")
        names = [style_token(style), *controls]
        names += [f"Instrument_{DRUMS if p < 0 else p}" for p in slots]
        timesig = tok.vocab.get(f"TimeSig_{time_signature[0]}/{time_signature[1]}")
        if timesig is None:
            raise GenerationError(f"time signature {time_signature[0]}/{time_signature[1]} is not in the vocabulary")
        return cls(score, vocab, normalize_style(style), [tok.bos_id, *(tok.vocab[n] for n in names)], [],
                   slots, list(range(len(slots))), [timesig])

    # -- slots and tracks ------------------------------------------------------------------
    def slot_of(self, track: int) -> int | None:
        """The slot of original track ``track`` (-1 for drums), or None if it has no notes."""
        if track not in self.slot_tracks:
            return None
        index = self.slot_tracks.index(track)
        return -1 if self.programs[index] < 0 else index

    def track_of(self, slot: int) -> int:
        return self.slot_tracks[-1 if slot < 0 else slot]

    def copy(self) -> Piece:
        """A copy whose slots and header can change without changing this piece (events and the
        original score are shared: nothing modifies them in place)."""
        return replace(self, header=list(self.header), programs=list(self.programs),
                       slot_tracks=list(self.slot_tracks), bar_timesig=list(self.bar_timesig))

    def add_slot(self, program: int, name: str | None = None, track: int | None = None) -> int:
        """Give a part without notes a slot, in place: the empty original track ``track``, or (by
        default) a new track appended to a copy of the original. Returns the slot."""
        if program < 0:
            raise GenerationError("a new part must be a melodic instrument (drums share one slot)")
        melodic = [p for p in self.programs if p >= 0]
        if len(melodic) >= self.vocab.tokenizer.spec.max_tracks:
            raise GenerationError(f"the piece already uses all {len(melodic)} track slots")
        if track is None:
            self.original = self.original.copy()
            self.original.tracks.append(Track(name or instrument_name(program), program, False))
            track = len(self.original.tracks) - 1
        slot = len(melodic)
        self.programs.insert(slot, program)
        self.slot_tracks.insert(slot, track)
        drums_at = [i for i, t in enumerate(self.header) if t == self.vocab.tokenizer.vocab[f"Instrument_{DRUMS}"]]
        at = drums_at[0] if drums_at else len(self.header)
        self.header.insert(at, self.vocab.tokenizer.vocab[f"Instrument_{program}"])
        return slot

    # -- timeline --------------------------------------------------------------------------
    @property
    def bars(self) -> int:
        return sum(1 for e in self.events if e.kind == BAR)

    def timesig(self, bar: int) -> int:
        """TimeSig id in force in ``bar`` (past the end: the last one)."""
        return self.bar_timesig[min(bar, len(self.bar_timesig) - 1)]

    def bar_length(self, bar: int) -> float:
        """Length of ``bar`` in quarter notes."""
        ts = self.timesig(bar)
        return float(self.vocab.beats_per_bar[ts] * self.vocab.beat_quarters[ts])

    def quarters(self, bar: int, pos: int = 0) -> float:
        """Quarter notes from the start of the piece to ``(bar, pos)``."""
        if self._starts is None or len(self._starts) != len(self.bar_timesig) + 1:  # bar starts, computed once
            self._starts = [0.0]
            for b in range(len(self.bar_timesig)):
                self._starts.append(self._starts[-1] + self.bar_length(b))
        known = len(self.bar_timesig)
        start = self._starts[bar] if bar <= known else self._starts[known] + (bar - known) * self.bar_length(known)
        return start + pos * float(self.vocab.beat_quarters[self.timesig(bar)]) / self.vocab.grid

    def tick(self, bar: int, pos: int = 0) -> int:
        return int(round(self.quarters(bar, pos) * self.original.ticks_per_quarter))

    def tempo_at(self, bar: int) -> int | None:
        """The Tempo token in force at the start of ``bar``."""
        tempos = [e for e in self.events if e.kind == TEMPO and e.time <= (bar, 0)]
        return tempos[-1].tokens[0] if tempos else None

    # -- back to notes ---------------------------------------------------------------------
    def to_notes(self, events: list[Event]) -> dict[int, list[Note]]:
        """Notes (original ticks) of note ``events``, per original track index."""
        v, tpq = self.vocab, self.original.ticks_per_quarter
        out: dict[int, list[Note]] = {}
        for e in events:
            if e.kind != NOTE:
                continue
            _, pitch, velocity, duration = e.tokens
            start = self.quarters(e.bar, e.pos)
            length = v.duration_steps[duration] * float(v.beat_quarters[self.timesig(e.bar)]) / v.grid
            note = Note(int(round(start * tpq)), max(1, int(round(length * tpq))), int(v.value[pitch]), int(v.value[velocity]))
            out.setdefault(self.track_of(e.track), []).append(note)
        return out

    def splice(self, notes: dict[int, list[Note]], start_tick: int, end_tick: int | None, tracks: list[int]) -> Score:
        """A copy of the original with the notes of ``tracks`` starting in [start, end) replaced by ``notes``."""
        out = self.original.copy()
        stop = end_tick if end_tick is not None else 1 << 62
        for index in tracks:
            track = out.tracks[index]
            kept = [n for n in track.notes if not start_tick <= n.time < stop]
            track.notes.clear()
            track.notes.extend(kept)
        for index, new in notes.items():
            out.tracks[index].notes.extend(new)
            out.tracks[index].notes.sort()
        return out


def _slot_tracks(original: Score, normalized: Score) -> list[int]:
    """Original track index of each slot (melodic slots in order, then the drum slot)."""
    melodic = [i for i, t in enumerate(original.tracks) if not t.is_drum and t.note_num() > 0]
    drums = [i for i, t in enumerate(original.tracks) if t.is_drum and t.note_num() > 0]
    slots_melodic = [t for t in normalized.tracks if not t.is_drum]
    if len(melodic) != len(slots_melodic):  # same-program tracks were merged: the first of each program
        melodic = [next(i for i in melodic if original.tracks[i].program == t.program) for t in slots_melodic]
    has_drums = any(t.is_drum for t in normalized.tracks)
    return melodic + (drums[:1] if has_drums else [])


def _bar_timesigs(events: list[Event]) -> list[int]:
    out: list[int] = []
    for e in events:
        if e.kind == BAR:
            out.append(e.tokens[1] if len(e.tokens) > 1 else (out[-1] if out else 0))
    return out
