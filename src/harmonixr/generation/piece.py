"""A user's piece as the model sees it, and the way back: regions, the bar timeline, splicing.

:class:`Piece` keeps the original :class:`symusic.Score` untouched and beside it the normalized
notes (:mod:`harmonixr.tokens.notes`), their track slots and the bar timeline of the file.
Generated notes arrive as rows at (bar, grid position, micro-timing) in a track slot;
:meth:`Piece.to_notes` turns them into notes in the original's ticks through the timeline, and
:meth:`Piece.splice` writes them into a copy of the original, in place of the notes of the region.
Everything outside the region (notes, tempo map, time signatures, tracks, names, ticks per
quarter) is the original's, exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
from symusic import Note, Pedal, PitchBend, Score, Tempo, TimeSignature, Track

from harmonixr.config import LimitsConfig
from harmonixr.data.normalize import gm_drums, normalize
from harmonixr.data.safe_load import load_score_isolated
from harmonixr.errors import HarmonixrError
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK, Tracks, encode_score, to_symusic
from harmonixr.tokens.prompt import Bars, Header, Hole, time_key
from harmonixr.tokens.timeline import Timeline, regular_timeline
from harmonixr.tokens.vocab import NoteVocab, instrument_name, normalize_style

_SPAN = re.compile(r"^\s*(\d+)(?::(\d+))?\s*-\s*(\d+)(?::(\d+))?\s*$")
# A slot that holds several original tracks shares its new notes out among them (_shared_out):
PITCH_PRIOR = 0.5  # notes added to each pitch's count of a track before its log share
MIN_VELOCITY_SPREAD = 4.0  # the least standard deviation of a track's velocities (one velocity: not 0)
ECHO_SHARE = 0.8  # a track echoes another where this share of its notes repeat that one's at one delay
ECHO_SLACK = 24  # a new note repeats another within a quarter note / this many ticks of the delay


class GenerationError(HarmonixrError):
    """A request that cannot be carried out on this piece (the message says why)."""


@dataclass(frozen=True)
class Region:
    """Where to write: from ``start`` to ``end`` (``(bar, grid position)``, bars counted from 0;
    ``end=None``: to the end of the piece) in ``tracks`` (indices into the original's tracks, from
    0; empty: all tracks)."""

    start: tuple[int, int]
    end: tuple[int, int] | None
    tracks: tuple[int, ...] = ()

    @classmethod
    def parse(cls, spec: str, grid: int, tracks: tuple[int, ...] = (), beat_quarters: float = 1.0) -> Region:
        """``"5-8"``: bars 5 to 8 (1-based, inclusive, as a DAW counts); ``"5:3-7:1"``: from bar 5
        beat 3 up to bar 7 beat 1 (end excluded). A beat is ``beat_quarters`` quarter notes
        (:meth:`Piece.region` uses the meter's: an eighth in 6/8)."""
        match = _SPAN.match(spec)
        if not match:
            raise GenerationError(f"region {spec!r}: expected BAR-BAR (e.g. 5-8) or BAR:BEAT-BAR:BEAT (e.g. 5:3-7:1)")
        bar_a, beat_a, bar_b, beat_b = match.groups()
        if int(bar_a) < 1 or int(bar_b) < 1 or any(b is not None and int(b) < 1 for b in (beat_a, beat_b)):
            raise GenerationError(f"region {spec!r}: bars and beats count from 1")
        if beat_a is None and beat_b is None:
            start, end = (int(bar_a) - 1, 0), (int(bar_b), 0)
        else:
            step = int(round(grid * beat_quarters))
            start = (int(bar_a) - 1, (int(beat_a or 1) - 1) * step)
            end = (int(bar_b) - 1, (int(beat_b or 1) - 1) * step)
        if end <= start:
            raise GenerationError(f"region {spec!r} is empty: its end is not after its start")
        return cls(start, end, tuple(tracks))


@dataclass
class Piece:
    """An original score with its normalized notes, track slots and bar timeline."""

    original: Score
    vocab: NoteVocab
    style: str
    notes: np.ndarray  # (N, 7) note rows, slots as tracks
    tracks: Tracks
    slot_tracks: list[int]  # original track index of each slot, in Tracks.slots order
    timeline: Timeline
    repairs: tuple[str, ...] = ()  # what the MIDI parser repaired as the file was read (said to the user)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_score(cls, score: Score, vocab: NoteVocab, style: str = "unknown", path: str = "<score>") -> Piece:
        """Normalize and encode ``score`` (not modified); raises RejectError/GenerationError."""
        style = normalize_style(style)
        if style not in vocab.styles:
            raise GenerationError(f"style {style!r} is not one the model knows: {', '.join(vocab.styles)}")
        normalized, _ = normalize(score, vocab, path)
        notes, tracks, timeline = encode_score(normalized, vocab)
        return cls(score, vocab, style, notes, tracks, _slot_tracks(score, normalized), timeline)

    @classmethod
    def from_file(cls, path: str, vocab: NoteVocab, style: str = "unknown", limits: LimitsConfig | None = None) -> Piece:
        """Parse an untrusted MIDI file in a child process (:mod:`harmonixr.data.safe_load`), then
        encode; :attr:`repairs` says what the parser repaired on the way in."""
        repairs: list[str] = []
        score = load_score_isolated(path, limits or LimitsConfig(), repairs)
        return replace(cls.from_score(score, vocab, style, path), repairs=tuple(repairs))

    @classmethod
    def empty(cls, vocab: NoteVocab, programs: list[int], style: str = "unknown", tempo: float = 120.0,
              time_signature: tuple[int, int] = (4, 4), bars: int = 8, tpq: int = 480) -> Piece:
        """A piece with no notes yet: named tracks of ``programs`` (-1: drums), one tempo, one meter."""
        if not programs:
            raise GenerationError("a new piece needs at least one instrument")
        melodic = [p for p in programs if p >= 0]
        if len(melodic) > vocab.spec.max_tracks:
            raise GenerationError(f"{len(melodic)} instruments > {vocab.spec.max_tracks} track slots")
        if normalize_style(style) not in vocab.styles:
            raise GenerationError(f"style {style!r} is not one the model knows: {', '.join(vocab.styles)}")
        score = Score(tpq)
        score.tempos.append(Tempo(0, float(tempo)))
        score.time_signatures.append(TimeSignature(0, *time_signature))
        drums = -1 in programs
        for program in melodic + ([-1] if drums else []):
            score.tracks.append(Track(instrument_name(program), max(program, 0), program < 0))
        tracks = Tracks(melodic, [instrument_name(p) for p in melodic], drums)
        timeline = regular_timeline(vocab, bars, time_signature, tempo, tpq)
        return cls(score, vocab, normalize_style(style), np.zeros((0, 7), dtype=np.int64), tracks,
                   list(range(len(melodic) + drums)), timeline)

    # -- slots and tracks ------------------------------------------------------------------
    @property
    def slots(self) -> list[int]:
        return self.tracks.slots(self.vocab)

    def slot_of(self, track: int) -> int | None:
        """The slot of original track ``track`` (a track merged into another's: that one's), or None
        if it has no notes."""
        if track not in self.slot_tracks:
            return next((slot for slot in self.slots if track in self.tracks_of(slot)), None)
        return self.slots[self.slot_tracks.index(track)]

    def track_of(self, slot: int) -> int:
        return self.slot_tracks[self.slots.index(slot)]

    def tracks_of(self, slot: int) -> list[int]:
        """The original tracks whose notes ``slot`` holds, :meth:`track_of` first: more than one
        where the normalizer merged them (every drum track into one, as a drum kit split into a
        track per sound; same-program tracks where a file has more melodic tracks than slots)."""
        first = self.track_of(slot)
        lead = self.original.tracks[first]
        if lead.note_num() == 0:  # an empty track given a slot: a new part
            return [first]
        return [first] + [i for i, t in enumerate(self.original.tracks) if i not in self.slot_tracks
                          and t.note_num() > 0 and t.is_drum == lead.is_drum and (lead.is_drum or t.program == lead.program)]

    def rewritten_by(self, region: Region) -> list[int]:
        """The original tracks a fill of ``region`` writes: its tracks (and those the model hears as
        one part with them, :meth:`tracks_of`), or every track with notes."""
        if not region.tracks:
            return [k for k in range(len(self.original.tracks)) if self.slot_of(k) is not None]
        slots = {k: self.slot_of(k) for k in region.tracks}
        return sorted({t for k, slot in slots.items() for t in ([k] if slot is None else self.tracks_of(slot))})

    def copy(self) -> Piece:
        """A copy whose slots can change without changing this piece (the notes and the original
        score are shared: nothing modifies them in place)."""
        return replace(self, tracks=self.tracks.copy(), slot_tracks=list(self.slot_tracks))

    def add_slot(self, program: int, name: str | None = None, track: int | None = None) -> int:
        """Give a part without notes a slot, in place: the empty original track ``track``, or (by
        default) a new track appended to a copy of the original; ``program`` -1: the drums, whose
        slot a piece has one of. Returns the slot."""
        if not -1 <= program <= 127:
            raise GenerationError(f"program {program}: a new part needs a General MIDI program 0-127, or -1 for drums")
        if program < 0:
            if self.tracks.drums:
                raise GenerationError("the piece has drums already: rewrite its drum track instead (infill, its track)")
            if track is None:
                self.original = self.original.copy()
                self.original.tracks.append(Track(name or self.tracks.drum_name, 0, True))
                track = len(self.original.tracks) - 1
            self.tracks.drums = True
            self.slot_tracks.append(track)  # the drum slot comes last
            return self.vocab.drum_slot
        if len(self.tracks.programs) >= self.vocab.spec.max_tracks:
            raise GenerationError(f"the piece already uses all {len(self.tracks.programs)} track slots")
        if track is None:
            self.original = self.original.copy()
            self.original.tracks.append(Track(name or instrument_name(program), program, False))
            track = len(self.original.tracks) - 1
        slot = len(self.tracks.programs)
        self.tracks.programs.append(program)
        self.tracks.names.append(name or instrument_name(program))
        self.slot_tracks.insert(slot, track)
        return slot

    # -- the model's view --------------------------------------------------------------------
    def header(self, style: str | None = None, controls: tuple[int, ...] = ()) -> Header:
        slots = self.slots
        value = self.vocab.style_value(style or self.style)
        return Header(value, tuple(controls), tuple(slots), tuple(self.tracks.program(s, self.vocab) for s in slots))

    def bars_meta(self, bars: int | None = None) -> Bars:
        """Each bar's meter and tempo features (``bars``: extend the timeline to that many first)."""
        timeline = self.timeline.extended(bars) if bars else self.timeline
        return Bars(timeline.meter_values(self.vocab), timeline.tempo_values(self.vocab))

    def bar_positions(self, bars: int | None = None) -> tuple[int, ...]:
        timeline = self.timeline.extended(bars) if bars else self.timeline
        return tuple(int(p) for p in timeline.positions(self.vocab))

    def region(self, spec: str, tracks: tuple[int, ...] = ()) -> Region:
        """:meth:`Region.parse` with a beat of the meter of the region's first bar; a beat past
        its bar's last (``5:5`` in 4/4) is refused."""
        first = int(spec.split("-")[0].split(":")[0]) - 1 if spec.split("-")[0].split(":")[0].strip().isdigit() else 0
        meter = self.timeline.meters[min(max(first, 0), self.bars - 1)]
        region = Region.parse(spec, self.vocab.grid, tracks, 4.0 / meter[1])
        ends = [region.start] if region.end is None else [region.start, region.end]
        positions = self.bar_positions(max(bar for bar, _ in ends) + 1)
        for bar, pos in ends:
            if pos >= positions[bar]:
                beats = self.timeline.meters[min(bar, self.bars - 1)][0]
                raise GenerationError(f"region {spec!r}: bar {bar + 1} has {beats} beats")
        return region

    def hole(self, region: Region, slots: tuple[int, ...]) -> Hole:
        return Hole(region.start, region.end, slots)

    # -- timeline --------------------------------------------------------------------------
    @property
    def bars(self) -> int:
        return self.timeline.bars

    def tick(self, bar: int, pos: int = 0) -> int:
        return self.timeline.tick(bar, pos)

    def notes_in(self, hole: Hole) -> np.ndarray:
        return self.notes[hole.contains(self.notes, self.vocab)]

    def before(self, time: tuple[int, int]) -> np.ndarray:
        """The notes starting before (bar, pos)."""
        return self.notes[time_key(self.notes[:, BAR], self.notes[:, POS], self.vocab) < time_key(*time, self.vocab)]

    # -- back to notes ---------------------------------------------------------------------
    def to_notes(self, rows: np.ndarray, timeline: Timeline | None = None) -> dict[int, list[Note]]:
        """Notes (original ticks) of note rows, per original track index; drum sounds General MIDI
        lacks, which the model learned from Roland kits, written as their GM sound (:func:`gm_drums`)."""
        timeline = timeline or self.timeline
        out: dict[int, list[Note]] = {}
        for slot in np.unique(rows[:, TRACK]) if len(rows) else []:
            mine = rows[rows[:, TRACK] == slot]
            if slot == self.vocab.drum_slot:
                mine = mine.copy()
                mine[:, PITCH] = gm_drums(mine[:, PITCH])
            owners = self.tracks_of(int(slot))
            notes = to_symusic(mine, timeline, self.vocab)
            parts = _shared_out(notes, [self.original.tracks[t].notes.numpy() for t in owners],
                                self.original.ticks_per_quarter) if len(owners) > 1 else [notes]
            out.update(zip(owners, parts))
        return out

    def splice(self, notes: dict[int, list[Note]], start_tick: int, end_tick: int | None, tracks: list[int]) -> Score:
        """A copy of the original with the notes of ``tracks`` starting in [start, end) replaced by
        ``notes``. A MIDI file cannot hold two sounding notes of one pitch on one track, so a new
        note never cuts a kept one short: one that would start while a kept note of its pitch still
        sounds starts when it ends (or is dropped when that is past the region), and one that would
        still sound when a kept note of its pitch starts ends there. A new note played early (its
        micro-timing before the region's first grid cell) starts at the region's start."""
        out = self.original.copy()
        stop = end_tick if end_tick is not None else 1 << 62
        for index in tracks:
            track = out.tracks[index]
            kept = [n for n in track.notes if not start_tick <= n.time < stop]
            track.notes.clear()
            track.notes.extend(kept)
        for index, new in notes.items():
            track = out.tracks[index]
            new = _inside(new, start_tick, stop)
            track.notes.extend(_around_kept(list(track.notes), new, stop))
            track.notes.sort()
        return out


def drop_after(score: Score, tick: int) -> None:
    """Remove from ``score``, in place, what the original holds after ``tick`` besides its notes
    (a continuation's :meth:`Piece.splice` replaces those): tempo, meter and key changes, markers,
    and each track's controller changes, pitch bends, pedals and lyrics. They belonged to the
    music dropped there: left in, they act on the new notes (a bend detunes them) and keep the
    file as long as the original (a Freedoom song continued for 8 bars after bar 16 ended at bar
    121, its last controller change). Events at ``tick`` stay (they set the state the new music
    starts in), but a pitch bend in force there is reset to 0 and a pedal held across it is let up."""
    def keep(events, before: int) -> None:  # noqa: ANN001 - any of symusic's event lists
        kept = [e for e in events if e.time < before]
        events.clear()
        events.extend(kept)

    for events in (score.tempos, score.time_signatures, score.key_signatures, score.markers):
        keep(events, tick + 1)
    for track in score.tracks:
        keep(track.controls, tick + 1)
        keep(track.lyrics, tick + 1)
        keep(track.pitch_bends, tick)
        bends = sorted(track.pitch_bends, key=lambda b: b.time)
        if bends and bends[-1].value != 0:
            track.pitch_bends.append(PitchBend(tick, 0))
        pedals = [Pedal(p.time, max(min(p.duration, tick - p.time), 1)) for p in track.pedals if p.time < tick]
        track.pedals.clear()
        track.pedals.extend(pedals)


def written(score: Score, start_tick: int, end_tick: int | None, tracks: list[int]) -> int:
    """The notes of ``tracks`` in ``score`` starting in [start, end): after :meth:`Piece.splice`, the
    new notes it wrote (one that would have sounded over a kept note of its pitch past the region is
    not among them)."""
    stop = end_tick if end_tick is not None else 1 << 62
    return sum(1 for index in tracks for n in score.tracks[index].notes if start_tick <= n.time < stop)


def _inside(notes: list[Note], start: int, stop: int) -> list[Note]:
    """``notes`` that start in [start, stop), those before ``start`` moved to it (ending where they ended)."""
    out = []
    for n in notes:
        if n.time >= stop:
            continue
        if n.time < start:
            n = Note(start, max(n.time + n.duration - start, 1), n.pitch, n.velocity)
        out.append(n)
    return out


def _around_kept(kept: list[Note], new: list[Note], stop: int) -> list[Note]:
    """``new`` notes moved or shortened so that none overlaps a ``kept`` note of the same pitch."""
    if not new:
        return []
    first, last = min(n.time for n in new), max(n.time + n.duration for n in new)
    by_pitch: dict[int, list[tuple[int, int]]] = {}
    for n in kept:  # only a kept note sounding while some new note may can move or cut one
        if n.time < last and n.time + n.duration > first or n.time == first:
            by_pitch.setdefault(n.pitch, []).append((n.time, n.time + n.duration))
    out = []
    for n in sorted(new, key=lambda x: x.time):
        spans = by_pitch.get(n.pitch, [])
        time, end = n.time, n.time + n.duration
        for a, b in spans:
            if a < time < b or a == time:  # a kept note of this pitch still sounds: start after it
                time = b
        if time >= stop or time >= end:
            continue
        for a, _ in spans:
            if time < a < end:  # a kept note of this pitch starts while this one sounds: end there
                end = a
        out.append(Note(time, end - time, n.pitch, n.velocity))
    return out


def _shared_out(notes: list[Note], owners: list[dict[str, np.ndarray]], tpq: int) -> list[list[Note]]:
    """``notes`` of a slot that holds several original tracks (``owners``: their notes' arrays)
    shared out among them, each to the track likeliest to play it as the tracks play in the song
    (its share of the slot's notes, how often it plays the pitch, and its velocities as a normal
    distribution): a drum kit split into a track per sound gets each sound back on its own track
    (all went to the first). Then a track that echoes another (:func:`_echo_delay`) takes the
    notes that repeat one of that track's at its delay: a lead and its echo, alike in every note,
    come back as two tracks (the echo was left silent)."""
    counts = np.array([len(o["pitch"]) for o in owners], dtype=np.float64)
    pitch = np.stack([np.log((np.bincount(o["pitch"], minlength=128) + PITCH_PRIOR) / (len(o["pitch"]) + 128 * PITCH_PRIOR))
                      for o in owners])  # (T, 128)
    mean = np.array([o["velocity"].mean() for o in owners])
    spread = np.maximum(np.array([o["velocity"].std() for o in owners]), MIN_VELOCITY_SPREAD)
    out: list[list[Note]] = [[] for _ in owners]
    for n in notes:
        score = np.log(counts / counts.sum()) + pitch[:, n.pitch] - 0.5 * ((n.velocity - mean) / spread) ** 2 \
            - np.log(spread)
        out[int(np.argmax(score))].append(n)  # (ties: the first)
    for k, owner in enumerate(owners):
        for j, lead in enumerate(owners[:k]):
            if (delay := _echo_delay(lead, owner, tpq)) is None:
                continue
            heard = {(n.time, n.pitch, n.velocity) for n in out[j]}
            slack = max(tpq // ECHO_SLACK, 1)
            echoes = [n for n in out[j] if any((n.time - delay + e, n.pitch, n.velocity) in heard
                                                for e in range(-slack, slack + 1))]
            moved = {id(n) for n in echoes}
            out[j] = [n for n in out[j] if id(n) not in moved]
            out[k] += echoes
    return out


def _echo_delay(lead: dict[str, np.ndarray], other: dict[str, np.ndarray], tpq: int) -> int | None:
    """The delay in ticks (up to two quarter notes) at which ``other`` plays ``lead``'s notes again,
    the same pitch and velocity, where :data:`ECHO_SHARE` of its notes do; None otherwise."""
    if not len(other["time"]) or not len(lead["time"]):
        return None
    keys = lead["pitch"].astype(np.int64) * 128 + lead["velocity"]
    delays = []
    for time, key in zip(other["time"], other["pitch"].astype(np.int64) * 128 + other["velocity"]):
        gaps = time - lead["time"][keys == key]
        delays += gaps[(gaps > 0) & (gaps <= 2 * tpq)].tolist()
    if not delays:
        return None
    values, hits = np.unique(delays, return_counts=True)
    best = int(np.argmax(hits))
    return int(values[best]) if hits[best] >= ECHO_SHARE * len(other["time"]) else None


def _slot_tracks(original: Score, normalized: Score) -> list[int]:
    """Original track index of each slot (melodic slots in order, then the drum slot)."""
    melodic = [i for i, t in enumerate(original.tracks) if not t.is_drum and t.note_num() > 0]
    drums = [i for i, t in enumerate(original.tracks) if t.is_drum and t.note_num() > 0]
    slots_melodic = [t for t in normalized.tracks if not t.is_drum]
    if len(melodic) != len(slots_melodic):  # same-program tracks were merged: the first of each program
        melodic = [next(i for i in melodic if original.tracks[i].program == t.program) for t in slots_melodic]
    has_drums = any(t.is_drum for t in normalized.tracks)
    return melodic + (drums[:1] if has_drums else [])


def family(row: dict) -> str:
    """What a piece is, for per-source tables: its source, the bundled corpus split into folk
    tunes, chorales and the rest ("classical": renaissance to modern)."""
    if row["source"] != "music21":
        return row["source"]
    return "folk" if row["style"].startswith("folk") else "chorale" if row["style"] == "chorale" else "classical"


def split_pieces(corpus, split: str, per_group: int, vocab: NoteVocab, rng: np.random.Generator,  # noqa: ANN001 - Corpus
                 by: str = "style", min_bars: int = 0) -> list[tuple[Piece, str, str]]:
    """Up to ``per_group`` pieces of ``split`` of at least ``min_bars`` bars per style (or per
    ``source``, or per :func:`family`), read from their MIDI files (which ``harmonixr prepare`` has
    parsed safely already): (piece, style, source or family)."""
    groups: dict[str, list[dict]] = {}
    for _, row in corpus.rows(split):
        if row["bars"] >= min_bars:
            groups.setdefault(family(row) if by == "family" else row[by], []).append(row)
    out = []
    for _, rows in sorted(groups.items()):
        for k in rng.permutation(len(rows))[:per_group]:
            row = rows[int(k)]
            try:
                out.append((Piece.from_score(Score(row["path"]), vocab, row["style"], row["path"]), row["style"],
                            family(row) if by == "family" else row["source"]))
            except (HarmonixrError, OSError, RuntimeError):  # a file that moved or no longer parses is left out
                continue
    return out
