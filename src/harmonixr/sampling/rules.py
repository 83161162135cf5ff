"""What a request asks of the notes it gets, beyond the grammar: :class:`Rules`, and where a row stands (:class:`NoteState`).

:class:`Rules` holds the region's first and last position (a fill stays in its hole), a pitch
range, a scale (and a lean to its tonic chord's pitches, :data:`ROOT_LEAN` to the root's and
:data:`CHORD_LEAN` to the others', a weight, not a mask: the scale of A minor is C major's, its
tonic is what tells them apart; per track, ``track_leans`` are weights on the pitch logits too), a
maximum polyphony, a maximum of notes per bar and in all, a minimum of notes and the tracks that
must play before the end may come, and per track a pitch range, a velocity range, the most notes at
one onset, a window of onsets (how an asked density is met: :mod:`harmonixr.sampling.pace`), a
most of notes (past an even share of it a chord grows no more), the most share of its notes one
pitch may take, a
rhythm (the positions in a bar where its onsets may fall, as an infill keeps the rhythm played
around it) and the drum kit (the drum pitches the drum track may take, as an infill keeps the kit
played around it). :class:`~harmonixr.sampling.grammar.NoteGrammar` turns them into masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harmonixr.tokens.vocab import EOS

UNLIMITED = 1 << 30
MAX_CHORD = 12  # notes of one track at one onset at most (ten fingers and a thumb's reach; a drum kit's limbs)
TRACK_LAST = -1  # NoteState.velocities' key of a track's last note, whatever its pitch
LEAST_CAP = 1e-3  # the least share cap_lean leaves (a share of 0 would be a mask: a lean of -inf)
PITCH_SLACK = 1  # notes a pitch may take past its track's share (track_pitch_shares): its first ones are free
# Nats added to the pitch logits of a key's tonic root and of the rest of its tonic chord
# (Rules.tonic); chosen with benchmarks/keys.py. A minor and C major share a scale and two notes of
# their tonic chords: the root is what tells them apart (1 nat on the whole chord: 35 of 60 prompt
# pieces in the mode asked, 1.5 on the root and 0.25 on the rest: 54 of 60; docs/evaluation.md).
ROOT_LEAN = 1.5
CHORD_LEAN = 0.25


@dataclass(frozen=True)
class Rules:
    """What generated notes must respect beyond the grammar (defaults: nothing more)."""

    tracks: tuple[int, ...]  # track slots that may play
    bar_positions: tuple[int, ...]  # grid positions of each bar of the timeline (later bars: the last)
    first: tuple[int, int] = (0, 0)  # earliest (bar, position) of a new note
    last_bar: int = UNLIMITED  # last bar a new note may start in
    last_pos: int = 0  # in last_bar, positions below this (0: the whole bar)
    end_type: int = EOS  # EOS, or END after a fill
    pitch_range: tuple[int, int] = (0, 127)
    scale: frozenset[int] | None = None  # allowed pitch classes of melodic notes
    tonic: tuple[int, ...] = ()  # pitch classes of a key's tonic chord, root first: melodic pitches lean to them
    drum_range: tuple[int, int] = (0, 127)
    drum_kit: frozenset[int] = frozenset()  # the drum pitches the drum track may take (empty: any in drum_range)
    max_polyphony: int = UNLIMITED  # sounding notes at once, all tracks
    max_notes_per_bar: int = UNLIMITED
    max_notes: int = UNLIMITED
    min_notes: int = 0  # the end is allowed only after this many notes (or when no note fits any more)
    required: tuple[int, ...] = ()  # tracks that must get a note before the end (while one fits)
    min_bar: int = 0  # the end is allowed only once a note starts in this bar or later (or none fits)
    required_by: int = UNLIMITED  # from this bar on, a note goes to a required track still silent, until none is
    track_ranges: tuple[tuple[int, int, int], ...] = ()  # (slot, lowest, highest pitch) of melodic tracks
    track_velocities: tuple[tuple[int, int, int], ...] = ()  # (slot, lowest, highest velocity)
    track_durations: tuple[tuple[int, float, float], ...] = ()  # (slot, shortest, longest duration in grid steps)
    track_onsets: tuple[tuple[int, int, int], ...] = ()  # (slot, fewest, most onsets of the track)
    track_first: tuple[tuple[int, int], ...] = ()  # (slot with a fewest, the grid step by which its first onset comes)
    track_waits: tuple[tuple[int, int], ...] = ()  # (slot with a fewest, the most grid steps from one onset to the next)
    track_rhythms: tuple[tuple[int, tuple[int, ...]], ...] = ()  # (slot, the positions in a bar its onsets take)
    track_chords: tuple[tuple[int, int], ...] = ()  # (slot, most notes of the track at one onset)
    track_notes: tuple[tuple[int, int], ...] = ()  # (slot, most notes of the track: past them its chords grow no more)
    # (slot, the most share of its notes one pitch may take: past it, and past PITCH_SLACK notes, the pitch waits)
    track_pitch_shares: tuple[tuple[int, float], ...] = ()
    # (drum sound, the most share of the drum track's notes it may take: past it, and past PITCH_SLACK notes, it waits)
    sound_shares: tuple[tuple[int, float], ...] = ()
    track_least_chords: tuple[tuple[int, int], ...] = ()  # (slot, fewest notes of the track at each of its onsets)
    track_leans: tuple[tuple[int, tuple[float, ...]], ...] = ()  # (slot, nats added to each of the 128 pitches)
    # (grid step from bar 0, nats added to each of the 12 pitch classes of a melodic note starting then)
    time_leans: tuple[tuple[int, tuple[float, ...]], ...] = ()
    bass_slots: tuple[int, ...] = ()  # tracks whose notes also take bass_leans
    bass_leans: tuple[tuple[int, tuple[float, ...]], ...] = ()  # (grid step, 12 nats) more for their notes starting then
    drum_leans: tuple[tuple[int, tuple[float, ...]], ...] = ()  # (grid step, 128 nats) for a drum note starting then
    # (grid step, 128 nats) in place of drum_leans' for the first drum note of an onset then (its lowest sound)
    drum_first_leans: tuple[tuple[int, tuple[float, ...]], ...] = ()
    # (grid step, drum sound, mean velocity, spread): a drum note of that sound starting then leans
    # to velocities near the mean (the log of a normal density of that spread)
    drum_velocities: tuple[tuple[int, int, float, float], ...] = ()
    # (slot, the most probability a note of the track may give to the velocity of the track's last
    # note, and to that of its last note of the same pitch, a drum's of the same sound): the model,
    # once a part has played a few notes at one velocity, plays every later one at it
    velocity_repeats: tuple[tuple[int, float, float], ...] = ()
    # (slot, a velocity, the most probability a note of the track may give to it and those above it
    # together): a loud note as rare as in its style's parts
    velocity_caps: tuple[tuple[int, int, float], ...] = ()
    count_notes: bool = False  # track_onsets counts notes (each of a chord), not onsets: a new piece's notes per bar

    def positions(self, bar: int) -> int:
        return self.bar_positions[min(bar, len(self.bar_positions) - 1)]


@dataclass
class NoteState:
    """Where a row stands: the time and ordering key of its last position, and what it wrote."""

    bar: int  # bar of the last position (a note or the prompt's last marker)
    pos: int  # its grid position
    track: int = -1  # its track and pitch (-1: the last position was not a note)
    pitch: int = -1
    notes: int = 0
    written: frozenset[int] = frozenset()  # the tracks that got a note
    chord: int = 0  # notes of the last note's track at its onset
    bar_notes: dict[int, int] = field(default_factory=dict)
    ends: list[tuple[int, int, int]] = field(default_factory=list)  # (bar, pos, end in grid steps) of notes sounding
    onsets: dict[int, int] = field(default_factory=dict)  # onsets written, by track
    sounded: dict[int, int] = field(default_factory=dict)  # notes written, by track
    pitches: dict[tuple[int, int], int] = field(default_factory=dict)  # notes written, by (track, pitch)
    last: dict[int, int] = field(default_factory=dict)  # grid step of each track's last onset written
    # the velocity of the last note of each (track, pitch), and of each track's last note at (track, TRACK_LAST)
    velocities: dict[tuple[int, int], int] = field(default_factory=dict)
    # what the grammar worked out for the next note (open bars, positions, tracks): a step's masks
    # ask for each many times; emptied when a note is written, never copied
    seen: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def copy(self) -> NoteState:
        return NoteState(self.bar, self.pos, self.track, self.pitch, self.notes, self.written, self.chord,
                         dict(self.bar_notes), list(self.ends), dict(self.onsets), dict(self.sounded),
                         dict(self.pitches), dict(self.last), dict(self.velocities))


def tonic_lean(tonic: tuple[int, ...], pitches: np.ndarray) -> np.ndarray:
    """Nats added to the logits of ``pitches`` for a key's tonic chord ``tonic`` (root first):
    :data:`ROOT_LEAN` on the root's pitch class, :data:`CHORD_LEAN` on the others'."""
    classes = pitches % 12
    root = classes == tonic[0] if tonic else np.zeros(len(pitches), dtype=bool)
    return np.where(root, ROOT_LEAN, np.where(np.isin(classes, list(tonic[1:])), CHORD_LEAN, 0.0))


def cap_lean(logits: np.ndarray, mask: np.ndarray, lean: np.ndarray | None, values: int | np.ndarray, most: float,
             temperature: float) -> np.ndarray:
    """``lean`` (nats on a field's logits, None: none) with ``values`` (a value, or a bool mask of
    them) pushed down together so that they take at most ``most`` of the probability (of ``logits``
    + ``lean`` where ``mask`` is set, at ``temperature``), the other values keeping their ratios,
    and theirs; as it is where they take no more (or nothing else may come). ``most`` is at least
    :data:`LEAST_CAP`."""
    lean = np.zeros(len(logits)) if lean is None else lean.copy()
    most = max(most, LEAST_CAP)
    chosen = np.zeros(len(logits), dtype=bool)
    chosen[values] = True
    z = np.where(mask, (logits + lean) / temperature, -np.inf)
    p = np.exp(z - z.max())
    mass, rest = p[chosen].sum(), p[~chosen].sum()
    if mass > 0 and rest > 0 and mass > most * (mass + rest):
        lean[chosen] += temperature * np.log(most * rest / (mass * (1.0 - most)))
    return lean
