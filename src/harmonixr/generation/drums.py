"""A new drum part: the kit its style plays, and a kick and a snare in most spans of four beats.

The model alone gives a new drum part (``add-track --program -1``, an empty drum track filled, a new
piece's drums) whatever sounds it likes: ride bells and cowbells, a closed hi-hat on nearly every
note. A new part keeps to its style's kit in the training data and leans to the sounds played most
there (:class:`Kit`, :data:`KIT_LEAN`); where that kit has a kick and a snare (:func:`has_backbeat`),
a take that plays both in fewer than :data:`BACKBEAT_SHARE` of its spans of four beats
(:func:`backbeat_share`) is drawn again (:func:`with_backbeat` for a new piece; the infill loop for
an added part).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from harmonixr.generation.requests import RESAMPLE_SEED, Result

# A new drum part (a new piece's, an added one) keeps to its style's kit in the training data
# (data.stats.drum_kits) and leans to the sounds played most there: KIT_LEAN x the log of a sound's
# share against the most played one's. New 8-bar pieces of 7 styles with drums, bass and keys or
# band (python benchmarks/drum_kits.py, 112 pieces each, seeds 0,1 then 2,3): free, 34% and 32% of
# their drum notes outside the style's kit (ride bells, cowbells, maracas), 52% and 64% of their
# drum bars with a kick and a snare (76% in the training data's drum parts); the kit with a lean of
# 0, 0.5, 1, 1.5: 60%, 66%, 64%, 58% (seeds 0,1); 0.5 and 1: 68%, 66% (seeds 2,3).
KIT_LEAN = 0.5
# A new drum part (an added one, an empty drum track filled; a new piece's: the whole take) of a
# style whose kit has a kick and a snare, that plays both in fewer than BACKBEAT_SHARE of the spans
# of four beats it plays in, is drawn again, at most BACKBEAT_TRIES times: the model alone added a
# closed hi-hat on 94% of the drum notes under a Freedoom song. The drums of 40 Freedoom training
# songs removed and added back over 8 bars (python benchmarks/drum_kits.py --songs 40 --split
# train): bars with a kick and a snare 0.451 with no redraw, 0.607, 0.712 and 0.721 with 2, 4 and
# 6 tries counted by bars, 0.709 with 4 by spans of four beats (the songs' own: 0.828); note F1
# against the songs' own drums 0.229 and 0.218 (0 and 4 tries).
KICKS, SNARES = frozenset({35, 36}), frozenset({37, 38, 39, 40})  # GM drum sounds
BACKBEAT_SHARE = 0.5
BACKBEAT_BEATS = 4  # quarter notes in a span that backbeat_share counts
BACKBEAT_TRIES = 4


class Kit(NamedTuple):
    """A new drum part's sounds (Rules.drum_kit) and its lean to them (a track_leans row)."""

    sounds: frozenset[int]
    lean: tuple[float, ...]  # nats added to each of the 128 drum pitches

    @classmethod
    def of(cls, shares: list[tuple[int, float]], weight: float) -> Kit:
        """The kit of (sound, share of its notes) pairs (data.stats.drum_kits), leaning ``weight`` x
        the log of each sound's share against the most played one's."""
        most = max(share for _, share in shares)
        lean = np.zeros(128)
        for sound, share in shares:
            lean[sound] = weight * np.log(share / most)
        return cls(frozenset(sound for sound, _ in shares), tuple(lean.tolist()))


def has_backbeat(sounds: frozenset[int]) -> bool:
    """Whether a kit of drum ``sounds`` has a kick and a snare (then a new part of it plays them)."""
    return bool(sounds & KICKS) and bool(sounds & SNARES)


def backbeat_share(spans: np.ndarray, sounds: np.ndarray) -> float:
    """The share of the spans of four beats (:data:`BACKBEAT_BEATS`) where drum notes (the span of
    each, and its GM sound) play that hold a kick and a snare (1 where none plays: nothing to draw
    again). Four beats, not a bar: a POP909 file's bars are one beat long."""
    played = np.unique(spans)
    if not len(played):
        return 1.0
    return float(np.mean([np.isin(sounds[spans == span], sorted(KICKS)).any()
                          and np.isin(sounds[spans == span], sorted(SNARES)).any() for span in played]))


def with_backbeat(draw: Callable[[int, int], list[Result]], count: int, seed: int, span_ticks: int) -> list[Result]:
    """``count`` takes of ``draw(count, seed)`` (a new piece), those whose drums play a kick and a
    snare in fewer than :data:`BACKBEAT_SHARE` of their spans of four beats (``span_ticks``) drawn
    again up to :data:`BACKBEAT_TRIES` times (the last draw kept; the result says how many)."""
    def share(take: Result) -> float:
        drums = [(n.time // span_ticks, n.pitch) for t in take.score.tracks if t.is_drum for n in t.notes]
        return backbeat_share(*np.array(drums, dtype=np.int64).reshape(-1, 2).T)

    made = draw(count, seed)
    redrawn = [0] * count
    for attempt in range(1, BACKBEAT_TRIES + 1):
        thin = [k for k, take in enumerate(made) if share(take) < BACKBEAT_SHARE]
        if not thin:
            break
        for k, take in zip(thin, draw(len(thin), seed + RESAMPLE_SEED * attempt)):
            made[k], redrawn[k] = take, redrawn[k] + 1
    for take, again in zip(made, redrawn):
        take.details["backbeat_redrawn"] = again
    return made
