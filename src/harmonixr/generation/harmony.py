"""A new piece's chords: a progression its parts lean to, so that a long piece keeps moving.

Written from nothing, the model settles on one chord: in 64-bar pieces the most played pitch of a
part took 40% of its notes in the first 16 bars and 60% in the last (a rock bass on one pitch from
bar 4), where real parts hold it level (Freedoom 0.31-0.39, POP909 0.23;
``benchmarks/long_pieces.py``). An infill has the song's harmony to lean to
(:meth:`~harmonixr.generation.surroundings.Surroundings.harmony_of`); a new piece gets a plan: one
of a few common progressions of its mode, a chord a bar, repeated, in the key asked (else one
drawn from the seed). Each melodic note starting in a bar leans :data:`CHORD_LEAN` nats to the
bar's chord tones, and a bass's (GM 32-39) :data:`~harmonixr.generation.surroundings.BASS_ROOT_LEAN`
more to its root: leans, not masks, so passing notes stay. A producer may give the chords
(``generate --chords "Am F C G"``, :func:`parse_chords`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from harmonixr.errors import HarmonixrError
from harmonixr.generation.postprocess import NOTE_NAMES, SCALES, Key
from harmonixr.generation.surroundings import BASS_PROGRAMS, BASS_ROOT_LEAN, TimeLeans

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
CHORD_LEAN = 1.0  # nats on each chord tone for a melodic note starting in the chord's bar (see docs/generation.md)


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
