"""A normalized score as an array of notes against its bar timeline, and back.

:func:`encode_score` gives one row per note, columns :data:`NOTE_COLUMNS`, every value 0-based
(micro-timing signed, -8..8), sorted by bar, position, track slot and pitch: the order in which the
model reads and writes notes. :func:`decode_notes` writes such rows back into tracks, in the
timeline's ticks. ``decode_notes(encode_score(s))`` gives every note of a normalized score back
with its pitch, velocity and track exactly, its onset to within 1/32 of a grid step and its
duration at the resolution of the duration bins (``tests/test_notes.py`` checks it on every
source).

Track slots: melodic tracks take slots 0, 1, ... in score order; the (single, merged) drum track
takes the vocabulary's drum slot. :class:`Tracks` keeps each slot's program and name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from symusic import Note, Score, Track

from harmonixr.tokens.timeline import Timeline, timeline_of
from harmonixr.tokens.vocab import NoteVocab, VocabError, instrument_name

NOTE_COLUMNS = ("bar", "pos", "micro", "track", "pitch", "dur", "vel")
BAR, POS, MICRO, TRACK, PITCH, DUR, VEL = range(len(NOTE_COLUMNS))
NOTE_WIDTH = len(NOTE_COLUMNS)


@dataclass
class Tracks:
    """The track slots of a piece: GM program and name of each melodic slot, and the drums."""

    programs: list[int] = field(default_factory=list)  # melodic slots 0, 1, ...
    names: list[str] = field(default_factory=list)
    drums: bool = False
    drum_name: str = "Drums"

    def slots(self, vocab: NoteVocab) -> list[int]:
        """Every slot of the piece, melodic first, the drum slot last."""
        return list(range(len(self.programs))) + ([vocab.drum_slot] if self.drums else [])

    def program(self, slot: int, vocab: NoteVocab) -> int:
        """GM program of ``slot`` (-1 for drums)."""
        return -1 if slot == vocab.drum_slot else self.programs[slot]

    def copy(self) -> Tracks:
        return Tracks(list(self.programs), list(self.names), self.drums, self.drum_name)


def empty_notes() -> np.ndarray:
    return np.zeros((0, NOTE_WIDTH), dtype=np.int64)


def sort_notes(notes: np.ndarray) -> np.ndarray:
    """Rows in reading order (bar, position, track, pitch); a second note with the same onset cell,
    track and pitch is dropped (a MIDI file cannot hold both)."""
    if len(notes) == 0:
        return notes.reshape(0, NOTE_WIDTH)
    order = np.lexsort((notes[:, PITCH], notes[:, TRACK], notes[:, POS], notes[:, BAR]))
    notes = notes[order]
    key = notes[:, [BAR, POS, TRACK, PITCH]]
    keep = np.ones(len(notes), dtype=bool)
    keep[1:] = np.any(key[1:] != key[:-1], axis=1)
    return notes[keep]


def onset_lowest(notes: np.ndarray) -> np.ndarray:
    """(N,) bool: the lowest note of each onset (bar, position) of ``notes`` (one track's): the first
    note of it the model reads and writes."""
    if len(notes) == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((notes[:, PITCH], notes[:, POS], notes[:, BAR]))
    onsets = notes[order][:, [BAR, POS]]
    firsts = np.ones(len(notes), dtype=bool)
    firsts[1:] = np.any(onsets[1:] != onsets[:-1], axis=1)
    lowest = np.zeros(len(notes), dtype=bool)
    lowest[order[firsts]] = True
    return lowest


def encode_score(score: Score, vocab: NoteVocab, timeline: Timeline | None = None) -> tuple[np.ndarray, Tracks, Timeline]:
    """Notes (N, 7), track slots and timeline of a normalized score."""
    timeline = timeline or timeline_of(score, vocab)
    melodic = [t for t in score.tracks if not t.is_drum and t.note_num()]
    drums = [t for t in score.tracks if t.is_drum and t.note_num()]
    if len(melodic) > vocab.spec.max_tracks or len(drums) > 1:
        raise VocabError(f"{len(melodic)} melodic and {len(drums)} drum tracks: normalize the score first "
                         f"({vocab.spec.max_tracks} melodic slots, one drum track)")
    tracks = Tracks([t.program for t in melodic], [t.name for t in melodic], bool(drums),
                    drums[0].name if drums else "Drums")
    step = timeline.tpq / vocab.grid
    rows = []
    for slot, track in [*enumerate(melodic), *((vocab.drum_slot, t) for t in drums)]:
        data = track.notes.numpy()
        bar, pos, micro = timeline.locate(data["time"], vocab)
        dur = vocab.duration_bin(data["duration"] / step)
        rows.append(np.stack([bar, pos, micro, np.full(len(bar), slot), data["pitch"].astype(np.int64), dur,
                              data["velocity"].astype(np.int64).clip(1, 127)], axis=1))
    notes = np.concatenate(rows) if rows else empty_notes()
    return sort_notes(notes.astype(np.int64)), tracks, timeline


def decode_notes(notes: np.ndarray, tracks: Tracks, timeline: Timeline, vocab: NoteVocab) -> Score:
    """A score (the timeline's ticks per quarter, its tempos and meters) of note rows."""
    score = Score(timeline.tpq)
    from symusic import Tempo, TimeSignature

    last_meter, last_qpm = None, None
    for bar in range(timeline.bars):
        tick = timeline.tick(bar)
        if timeline.meters[bar] != last_meter:
            score.time_signatures.append(TimeSignature(tick, *timeline.meters[bar]))
            last_meter = timeline.meters[bar]
        if timeline.qpm[bar] != last_qpm:
            score.tempos.append(Tempo(tick, float(timeline.qpm[bar])))
            last_qpm = timeline.qpm[bar]
    for slot in tracks.slots(vocab):
        is_drum = slot == vocab.drum_slot
        name = tracks.drum_name if is_drum else (tracks.names[slot] if slot < len(tracks.names) else "")
        program = 0 if is_drum else tracks.programs[slot]
        track = Track(name or instrument_name(-1 if is_drum else program), program, is_drum)
        track.notes.extend(to_symusic(notes[notes[:, TRACK] == slot], timeline, vocab))
        score.tracks.append(track)
    return score


def to_symusic(notes: np.ndarray, timeline: Timeline, vocab: NoteVocab) -> list[Note]:
    """symusic notes (the timeline's ticks) of note rows."""
    if len(notes) == 0:
        return []
    onsets = timeline.ticks(notes[:, BAR], notes[:, POS], notes[:, MICRO], vocab)
    lengths = np.maximum(np.round(vocab.durations[notes[:, DUR]] * timeline.tpq / vocab.grid), 1).astype(np.int64)
    return [Note(int(t), int(d), int(p), int(v)) for t, d, p, v in zip(onsets, lengths, notes[:, PITCH], notes[:, VEL])]
