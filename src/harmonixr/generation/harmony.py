"""The harmony a new note leans to: the song's around a hole, a chord plan in a new piece.

Leans, not masks, so passing notes stay. Around a hole, a new melodic note leans to the pitch
classes the kept tracks sound at its onset (:func:`sounding`; a bass, to the lowest one's most:
:data:`BASS_ROOT_LEAN`), and a sampled fill to those of the song's best-matching span
(:func:`harmony_of`, :data:`COPY_LEAN` x its context match): the model hears the music after a
hole barely, so the sampler is told it. A new piece has no song: written from nothing, the model
settles on one chord (in 64-bar pieces the most played pitch of a part took 40% of its notes in
the first 16 bars and 60% in the last, a rock bass on one pitch from bar 4, where real parts hold
it level: Freedoom 0.31-0.39, POP909 0.23; ``benchmarks/long_pieces.py``). It gets a plan: one of
a few common progressions of its mode, a chord a bar, repeated, in the key asked (else one drawn
from the seed). Each melodic note starting in a bar leans :data:`CHORD_LEAN` nats to the bar's
chord tones, and a bass's (GM 32-39) :data:`BASS_ROOT_LEAN` more to its root. A producer may give
the chords (``generate --chords "Am F C G"``, :func:`parse_chords`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from harmonixr.errors import HarmonixrError
from harmonixr.generation.postprocess import NOTE_NAMES, SCALES, Key
from harmonixr.tokens.notes import DUR, PITCH, TRACK

if TYPE_CHECKING:  # imported for types only: surroundings imports this module
    from harmonixr.generation.surroundings import Surroundings

TimeLeans = tuple[tuple[int, tuple[float, ...]], ...]  # Rules.time_leans: (grid step from bar 0, 12 nats)
# Nats on the pitch classes the kept tracks sound at a new melodic note's onset (:func:`sounding`;
# a hole of some tracks under the others). One track rewritten, 3 sampled fills a hole
# (benchmarks/track_fills.py): on the validation split (89 holes) 0, 0.5, 1, 1.5 and 2 gave note F1
# 0.129, 0.138, 0.134, 0.149, 0.149 and pitch-class overlap 0.431, 0.429, 0.442, 0.445, 0.450; on the
# training split (119 holes) 0, 1, 1.5, 2 and 3: F1 +0.021, +0.018, +0.022, +0.022 over no lean.
SOUNDING_LEAN = 2.0
# Where the tracks rewritten are all basses (GM programs BASS_PROGRAMS), BASS_ROOT_LEAN more nats on the
# pitch class of the lowest kept note sounding at the onset: a bass plays the harmony's bottom, and
# the model alone droned on one pitch (an electric bass added under 16 bars of a POP909 song: 66 of
# its 74 notes on G). The lowest part of 20 pieces a family removed and added back with its own
# program over 8 bars (python benchmarks/new_parts.py --split train --pieces 20): Freedoom's basses
# at 0, 1, 2, 3, 4, 6 and 8 nats: note F1 0.065, 0.090, 0.115, 0.143, 0.156, 0.169, 0.170, pitch-class
# overlap 0.458, 0.515, 0.553, 0.619, 0.666, 0.699, 0.705; 4, where the gain flattens, leaves room
# for passing notes.
BASS_ROOT_LEAN = 4.0
# A sampled fill's melodic notes lean COPY_LEAN x the context match of the song's best-matching span
# (generation/candidates.py) to each pitch class that span sounds at their onsets
# (:func:`harmony_of`): where the song repeats, a new take keeps its harmony. Sampled
# all-track fills of 2 bars, 3 a hole (python benchmarks/sampled_fills.py --split val --pieces 30
# --copy-leans 0,2,3,4,6,8,12): note F1 0.198, 0.232, 0.247, 0.258, 0.269, 0.280, 0.278, pitch-class
# overlap 0.623, 0.648, 0.653, 0.654, 0.661, 0.663, 0.669; 6 keeps it a lean, short of a mask. A
# continuation leans the same way to the harmony that followed the passage likest the bars before
# the cut (python benchmarks/continuation.py --split val: 0, 3, 6, 10 nats, note F1 0.175, 0.208,
# 0.226, 0.228).
COPY_LEAN = 6.0
BASS_PROGRAMS = range(32, 40)
NO_PITCH = 128  # above every MIDI pitch: nothing sounds

# Progressions as scale degrees (0: the tonic), a chord a bar, each chord the triad of its mode's
# scale on that degree, each starting on the tonic. Major: I-V-vi-IV, I-IV-V-IV, I-vi-IV-V; minor:
# i-VI-III-VII, i-VI-iv-v, i-VII-VI-VII; the 12-bar blues for the styles that play it. A new
# piece asked in a key is heard in it as often as without a plan (benchmarks/keys.py, 48 of 48);
# with i-iv-i-v among the minor ones 46, with a major dominant (i-iv-V-i; the scale's mask keeps
# its leading tone out) 44: minor pieces heard in the parallel major.
PROGRESSIONS = {"major": ((0, 4, 5, 3), (0, 3, 4, 3), (0, 5, 3, 4)),
                "minor": ((0, 5, 2, 6), (0, 5, 3, 4), (0, 6, 5, 6))}
BLUES = (0, 0, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4)
BLUES_STYLES = frozenset({"blues", "jazz", "funk", "neworleans", "soul", "rock"})
CHORD_LEAN = 1.5  # nats on each chord tone for a melodic note starting in the chord's bar (see docs/generation.md)


class Plan(NamedTuple):
    """A new piece's key (None: chords given) and chords (each its pitch classes, root first), a
    chord a bar, repeated."""

    key: Key | None
    chords: tuple[tuple[int, ...], ...]

    def describe(self) -> str:
        """``C major: C-G-Am-F`` (``C-G-Am-F`` for chords given)."""
        names = "-".join(name(chord) for chord in self.chords)
        return f"{self.key}: {names}" if self.key is not None else names


# Chord symbols: a root (C, F#, Bb), then a kind: intervals above the root.
KINDS = {"": (4, 7), "m": (3, 7), "dim": (3, 6), "aug": (4, 8), "7": (4, 7, 10), "maj7": (4, 7, 11),
         "m7": (3, 7, 10), "sus2": (2, 7), "sus4": (5, 7)}
SYMBOL = re.compile(r"^([A-Ga-g])([#b]?)(.*)$")


def name(chord: tuple[int, ...]) -> str:
    """A chord's symbol (``F#m``, ``G7``) from its pitch classes, root first."""
    steps = tuple((pc - chord[0]) % 12 for pc in chord[1:])
    kind = next((k for k, v in KINDS.items() if v == steps), "?")
    return NOTE_NAMES[chord[0]] + kind


def parse_chords(text: str) -> tuple[tuple[int, ...], ...]:
    """``"Am F C G"`` (a chord a bar; spaces, commas or dashes between them) -> their pitch
    classes, root first; a symbol not understood is named."""
    symbols = [s for s in re.split(r"[\s,\-]+", text.strip()) if s]
    if not symbols:
        raise HarmonixrError("chords: none given (e.g. 'Am F C G', a chord a bar)")
    out = []
    for symbol in symbols:
        found = SYMBOL.match(symbol)
        kind = found.group(3) if found else None
        if found is None or kind not in KINDS:
            raise HarmonixrError(f"chord {symbol!r}: expected a root A-G (with # or b) and one of "
                                 f"{', '.join(repr(k) for k in KINDS)} (e.g. Am, F#, Bb7)")
        root = (NOTE_NAMES.index(found.group(1).upper()) + {"#": 1, "b": -1, "": 0}[found.group(2)]) % 12
        out.append((root, *((root + step) % 12 for step in KINDS[kind])))
    return tuple(out)


def triad(key: Key, degree: int) -> tuple[int, int, int]:
    """The pitch classes of the triad on scale ``degree`` (0-6) of ``key``, root first."""
    scale = SCALES[key.mode]
    steps = [scale[(degree + k) % 7] for k in (0, 2, 4)]
    root, third, fifth = ((key.tonic + s) % 12 for s in steps)
    return root, third, fifth


def plan(style: str, key: Key | None, rng: np.random.Generator) -> Plan:
    """A progression for a new piece in ``style``: in ``key``, else in one drawn from ``rng``
    (any tonic, major or minor); the 12-bar blues among the major ones of :data:`BLUES_STYLES`."""
    if key is None:
        key = Key(int(rng.integers(12)), ("major", "minor")[int(rng.integers(2))])
    choices = list(PROGRESSIONS[key.mode]) + ([BLUES] if key.mode == "major" and style in BLUES_STYLES else [])
    degrees = choices[int(rng.integers(len(choices)))]
    return Plan(key, tuple(triad(key, d) for d in degrees))


def plan_leans(chords: tuple[tuple[int, ...], ...], bar_starts: np.ndarray, bass: bool) -> TimeLeans:
    """``Rules.time_leans`` of a plan over the bars that start at grid steps ``bar_starts`` (and end
    at the next): :data:`CHORD_LEAN` on each chord tone; with ``bass``, ``BASS_ROOT_LEAN`` on the
    root alone (``Rules.bass_leans``, which a bass's notes take on top of the chord tones')."""
    out = []
    for bar in range(len(bar_starts) - 1):
        chord = chords[bar % len(chords)]
        nats = np.zeros(12)
        if bass:
            nats[chord[0]] = BASS_ROOT_LEAN
        else:
            nats[list(chord)] = CHORD_LEAN
        row = tuple(nats.tolist())
        out += [(step, row) for step in range(int(bar_starts[bar]), int(bar_starts[bar + 1]))]
    return tuple(out)


def bass_slots(programs: dict[int, int]) -> tuple[int, ...]:
    """The slots of ``programs`` (slot -> GM program) that are basses."""
    return tuple(sorted(slot for slot, program in programs.items() if program in BASS_PROGRAMS))


def sounding(near: Surroundings) -> TimeLeans:
    """(grid step from bar 0, 12 nats) for each step of ``near``'s hole at which kept melodic notes
    sound (the tracks a hole of some tracks leaves, playing in it): :data:`SOUNDING_LEAN` nats
    on each pitch class they sound, for a new melodic note starting then, and where the tracks
    rewritten are basses, :data:`BASS_ROOT_LEAN` more on the lowest one's. The model hears
    those notes barely (they sit with the music after the hole, far back in the sequence:
    docs/evaluation.md), so the sampler is told them directly."""
    piece, hole = near.piece, near.hole
    if not SOUNDING_LEAN or not hole.tracks:
        return ()
    kept = piece.notes[~np.isin(piece.notes[:, TRACK], hole.tracks)]
    classes, lowest = _sounding(near, kept)
    nats = SOUNDING_LEAN * classes.astype(np.float64)
    melodic = [piece.tracks.programs[s] for s in hole.tracks if s != near.vocab.drum_slot]
    if melodic and all(p in BASS_PROGRAMS for p in melodic):  # basses: the bottom of the harmony most
        steps = np.flatnonzero(lowest < NO_PITCH)
        nats[steps, lowest[steps] % 12] += BASS_ROOT_LEAN
    return _time_leans(near, nats)


def harmony_of(near: Surroundings, copy: np.ndarray, match: float) -> TimeLeans:
    """(grid step from bar 0, 12 nats) for each step of the hole at which the melodic notes of
    ``copy`` (the song's best-matching span, moved into the hole) sound: :data:`COPY_LEAN` x
    its context ``match`` nats on each pitch class they sound, for a new melodic note starting
    then: a sampled fill keeps to the harmony of the song where it repeats, and is free where
    it does not (a weak match)."""
    if not COPY_LEAN or not match > 0:
        return ()
    classes, _ = _sounding(near, copy)
    return _time_leans(near, COPY_LEAN * match * classes.astype(np.float64))


def _sounding(near: Surroundings, notes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(steps of the hole, 12) bool, the pitch classes the melodic ``notes`` sound at each grid
    step of the hole, and (steps,) the lowest pitch sounding (:data:`NO_PITCH`: none)."""
    first, last = _hole_steps(near)
    melodic = notes[notes[:, TRACK] != near.vocab.drum_slot]
    onsets = near.step_of(melodic)
    ends = onsets + near.vocab.durations[melodic[:, DUR]]
    heard = (onsets < last) & (ends > first)
    classes = np.zeros((last - first, 12), dtype=bool)
    lowest = np.full(last - first, NO_PITCH)
    for onset, end, pitch in zip(onsets[heard], ends[heard], melodic[heard, PITCH]):
        during = slice(max(onset - first, 0), end - first)
        classes[during, pitch % 12] = True
        lowest[during] = np.minimum(lowest[during], pitch)
    return classes, lowest


def _hole_steps(near: Surroundings) -> tuple[int, int]:
    """The grid steps from bar 0 at which the hole starts and ends (the piece's end for an open hole)."""
    hole, starts = near.hole, near.steps
    first = int(starts[hole.start[0]] + hole.start[1])
    return first, int(starts[hole.end[0]] + hole.end[1]) if hole.end is not None else int(starts[-1])


def _time_leans(near: Surroundings, nats: np.ndarray) -> TimeLeans:
    """``nats`` (steps of the hole, 12) as :class:`~harmonixr.sampling.rules.Rules`'
    ``time_leans``: the steps with a lean."""
    first, _ = _hole_steps(near)
    return tuple((first + k, tuple(row.tolist())) for k, row in enumerate(nats) if row.any())


def add_time_leans(*leans: TimeLeans) -> TimeLeans:
    """The sum of several ``time_leans`` (grid step, 12 nats), step by step."""
    total: dict[int, np.ndarray] = {}
    for lean in leans:
        for step, nats in lean:
            total[step] = total.get(step, np.zeros(12)) + np.asarray(nats)
    return tuple((step, tuple(nats.tolist())) for step, nats in sorted(total.items()))
