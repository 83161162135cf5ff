"""Drums: a new part's kit and backbeat, a new piece's groove; a held part's groove and accents.

The model alone gives a new drum part (``add-track --program -1``, an empty drum track filled, a new
piece's drums) whatever sounds it likes: ride bells and cowbells, a closed hi-hat on nearly every
note. A new part keeps to its style's kit in the training data and leans to the sounds played most
there (:class:`Kit`, :data:`KIT_LEAN`); where that kit has a kick and a snare (:func:`has_backbeat`),
a take that plays both in fewer than :data:`BACKBEAT_SHARE` of its spans of four beats
(:func:`backbeat_share`) is drawn again (:func:`with_backbeat` for a new piece; the infill loop for
an added part). A new piece's drums also lean, at each place of the bar, to the sounds and
velocities its style's drum parts play there (:meth:`Kit.timed`).

A song's own drums, held in a sampled fill or continuation, keep its kit (``Rules.drum_kit``) and
its groove: at each place in the bar a drum note leans to the sounds played at that place around
the hole (:func:`groove`), and its velocity to the one its sound is played with there
(:func:`accents`): a performed groove's ghost notes stay soft and its backbeat loud.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from harmonixr.generation.requests import RESAMPLE_SEED, Result
from harmonixr.tokens.notes import BAR, PITCH, POS, VEL

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
# A held drum track's sampled fill leans, at each place in the bar, to the sounds the drums play
# at that place around the hole (:func:`groove`): GROOVE_LEAN x the log of each sound's count
# there; and each drum note's velocity to the one its sound is played with at its place there
# (:func:`accents`): the log of a normal density around it, times GROOVE_ACCENT. Sampled fills of
# 2 bars, 3 a hole, their drum track against the original's (python benchmarks/drum_fills.py):
# 126 validation holes of Groove (--split val --pieces 60 --holes 3), groove lean 0, 1, 2, 3 with
# the accents: drum note F1 0.386, 0.404, 0.413, 0.415, sound overlap 0.777, 0.788, 0.795, 0.797
# (copying the bars before: 0.399, 0.813); the velocity of the hits the drummer played too lies a
# mean of 24.7 from his without the accents, 14.0 at 0.5, 12.5 at 1, 11.5 at 2 (copying: 10.5),
# the fills' spread of velocities 25-26 (his: 29.8). 58 training holes of Groove and Freedoom
# (--split train --pieces 15 --holes 2): F1 0.544 -> 0.566, velocity error 15.4 -> 7.1.
GROOVE_LEAN = 2.0
GROOVE_ACCENT = 1.0
# A new piece's drum part leans, at each place of a 4/4 bar, to the sounds its style's drum parts
# play there in the training data (data.stats.drum_grooves): STYLE_GROOVE_LEAN x the log of each
# sound's share there plus STYLE_PRIOR; and its velocities to theirs there, as a held part's to its
# own (STYLE_ACCENT). New 8-bar pieces of 7 styles (python benchmarks/drum_kits.py --leans ""
# --grooves 0:0,1:0,0:1,1:1,2:1 --songs 11), groove:accent 0:0, 1:1, 2:1: bars with a kick and a
# snare 0.759, 0.757, 0.835 (the training data's parts: 0.757), mean velocity 105.8, 91.5, 90.7
# (75.9), hits at 120 or more 0.495, 0.273, 0.272 (0.160). Not a part added to a song: the drums
# of 11 Freedoom test songs added back had a kick and a snare in 0.756, 0.625, 0.574 of their bars
# (the songs': 0.739), more hi-hat (the most played sound's share 0.396, 0.492, 0.516; the songs'
# 0.434), velocities further from the songs' (9.1, 11.4, 10.4 on the hits both play); their note
# F1 against the songs' own (0.253, 0.306, 0.326) rose with the hi-hat, which a drummer plays
# on most sixteenths.
STYLE_GROOVE_LEAN = 2.0
STYLE_PRIOR = 0.02
# The notes of an onset come lowest sound first, so a hi-hat drawn first at a place where the style
# plays a snare and a hi-hat together leaves no room for the snare. The first drum note of an onset
# leans, in place of the share lean above, FIRST_LEAN x the log of each sound's share of the
# style's onsets there whose lowest sound it is (STYLE_PRIOR added). Bars with a snare on beat 2 and
# on beat 4 in new 8-bar pieces of 7 styles (python benchmarks/drum_kits.py --leans "" --seeds
# 0,1,2,3 --grooves 2:1:4:0,2:1:4:0.5,2:1:4:1,2:1:4:1.5), mean distance to the style's drummers
# over the styles at 0, 0.5, 1, 1.5: 0.207, 0.128, 0.103, 0.213 (funk 0.082, 0.340, 0.406, 0.695
# against its drummers' 0.389).
FIRST_LEAN = 1.0
# A drum part added to a song (add-track, an empty drum track filled) leans to its style's groove as
# a new piece's does, its onsets' first notes ADDED_FIRST_LEAN x the log: hearing the song's other
# parts, the model starts an onset with the hi-hat more often still. The drums of 20 Freedoom
# training songs removed and added back over 8 bars (python benchmarks/drum_kits.py --leans 0.5
# --grooves 2:1:4:0,2:1:4:1,2:1:4:1.5 --songs 20 --split train --styles game --seeds 0), with no
# groove, then the groove with a first-note lean of 0, 1, 1.5: bars with a kick and a snare 0.740,
# 0.513, 0.678, 0.776 (the songs' own 0.787), note F1 against the songs' drums 0.226, 0.278, 0.286,
# 0.290, the velocity error on the hits both play 13.1, 9.3, 8.7, 9.3.
ADDED_FIRST_LEAN = 1.5
# Most POP909 files are notated in 2/4 or 1/4 though their songs are in four (11 of the first 12
# test songs). A 4/4 groove is laid over such bars, each its share of a 4/4 bar counted from the
# song's start (Kit.timed); they had none. Drums added under the first 12 POP909 test songs over
# bars 9-16 (python benchmarks/drum_kits.py --leans "" --grooves 2:1:4:1.5 --variations 1 --pop909
# 12), without and with it: toms 0.292 -> 0.109 of their notes, crash, china and splash cymbals
# 0.180 -> 0.104, spans of four beats with a kick and a snare 0.788 -> 0.837 (a snare on beats 2
# and 4: 0.111 -> 0.132; pop's groove is 6 Groove beats and 11 fills).
STYLE_ACCENT = 1.0
# A held drum track's sound takes at most SOUND_SHARE times its share of the drum notes around the
# hole (Rules.sound_shares): over 8 bars the model's hi-hat took 115 of 186 hits where the drummer
# (Groove funk, bars 41-48) had 70 of 181 and twice its snares. python benchmarks/drum_fills.py
# --split val --pieces 60 --settings 2:1:0,2:1:1.25,2:1:1.5, with --bars 8 (42 holes): sound
# overlap 0.787, 0.837, 0.811 (copying the bars before: 0.840), note F1 0.371, 0.361, 0.368; with
# --holes 3 (126 holes of 2 bars): overlap 0.795, 0.813, 0.803, F1 0.413, 0.409, 0.414; 58 training
# holes of Groove and Freedoom: F1 0.566, 0.556, 0.565. 1.5 keeps the note F1.
SOUND_SHARE = 1.5
ACCENT_SPREAD = 6.0  # the narrowest spread of an accent's velocities
# A drummer keeps time on the hi-hat or on the ride, seldom both in one bar. A new piece's drums
# take one, drawn from the seed in proportion to the style kit's shares of the two (TIMEKEEPERS),
# and lean TIMEKEEPER_LEAN nats away from the other's sounds.
TIMEKEEPERS = (frozenset({42, 46}), frozenset({51, 59}))  # closed and open hi-hat; ride and ride 2
TIMEKEEPER_LEAN = 4.0
TIMEKEEPER_STREAM = 7  # the seed's random stream that draws it (the chord plan draws from the seed's own)
ACCENT_NOTES = 3  # notes of a sound at a place for their own spread (fewer: the sound's over every place)


class Kit(NamedTuple):
    """A new drum part's sounds (Rules.drum_kit), its lean to them (a track_leans row) and its
    style's groove, for a new piece's (data.stats.drum_grooves: per place in a bar of ``bar`` grid
    positions, the sounds played there, (sound, share, mean velocity, spread, share of the onsets
    there whose lowest sound it is); empty: none). A checkpoint written before the last share was
    stored has none (NaN: no lean for an onset's first note; ``scripts/part_stats.py`` adds it)."""

    sounds: frozenset[int]
    lean: tuple[float, ...]  # nats added to each of the 128 drum pitches
    groove: tuple[tuple[int, tuple[tuple[int, float, float, float, float], ...]], ...] = ()
    bar: int = 0
    keepers: tuple[float, ...] = ()  # the kit's share of each of TIMEKEEPERS' sounds

    @classmethod
    def of(cls, shares: list[tuple[int, float]], weight: float, groove: Sequence = (), bar: int = 0) -> Kit:
        """The kit of (sound, share of its notes) pairs (data.stats.drum_kits), leaning ``weight`` x
        the log of each sound's share against the most played one's, with its style's ``groove``
        in bars of ``bar`` positions."""
        most = max(share for _, share in shares)
        lean = np.zeros(128)
        for sound, share in shares:
            lean[sound] = weight * np.log(share / most)
        played = tuple((int(place), tuple((int(s), float(h), float(m), float(d), float(f[0]) if f else math.nan)
                                          for s, h, m, d, *f in sounds)) for place, sounds in groove)
        keepers = tuple(sum(share for sound, share in shares if sound in family) for family in TIMEKEEPERS)
        return cls(frozenset(sound for sound, _ in shares), tuple(lean.tolist()), played, bar, keepers)

    def keeping_time(self, seed: int) -> tuple[float, ...]:
        """:attr:`lean` with :data:`TIMEKEEPER_LEAN` nats off the sounds of one of :data:`TIMEKEEPERS`:
        the other keeps time, drawn from ``seed`` in proportion to its share of the kit."""
        shares = np.array(self.keepers)
        if not TIMEKEEPER_LEAN or (shares > 0).sum() < 2:
            return self.lean
        keeper = int(np.random.default_rng((seed, TIMEKEEPER_STREAM)).choice(len(TIMEKEEPERS), p=shares / shares.sum()))
        lean = np.array(self.lean)
        for k, family in enumerate(TIMEKEEPERS):
            lean[sorted(family)] -= TIMEKEEPER_LEAN if k != keeper else 0.0
        return tuple(lean.tolist())

    def timed(self, steps: np.ndarray, bars: range, added: bool = False) -> dict[str, tuple]:
        """Rules fields for a new piece's part over ``bars`` (``steps``: the grid step at which each bar
        starts), in those of its groove's length, and in bars of one or two beats their share of it,
        counted from the song's start: at each place of the groove, ``drum_leans`` of
        :data:`STYLE_GROOVE_LEAN` x the log of each sound's share there (:data:`STYLE_PRIOR` added),
        ``drum_first_leans`` of :data:`FIRST_LEAN` (``added``, a part added to a song:
        :data:`ADDED_FIRST_LEAN`) x the log of its share as an onset's lowest sound there, and
        ``drum_velocities`` of its sounds' velocities there (:data:`STYLE_ACCENT`)."""
        first_lean = ADDED_FIRST_LEAN if added else FIRST_LEAN
        if not self.groove or not (STYLE_GROOVE_LEAN or STYLE_ACCENT or first_lean):
            return {}
        rows, placed = [], []  # (place, its lean, its first note's); (place, sound, mean velocity, spread) of its accents
        for place, sounds in self.groove:
            shares, lowest = np.zeros(128), np.zeros(128)
            for sound, share, _, _, first in sounds:
                shares[sound], lowest[sound] = share, first
            rows.append((place, tuple((STYLE_GROOVE_LEAN * np.log(shares + STYLE_PRIOR)).tolist()),
                         None if np.isnan(lowest).any() else tuple((first_lean * np.log(lowest + STYLE_PRIOR)).tolist())))
            placed += [(place, sound, mean, max(spread, ACCENT_SPREAD) / float(np.sqrt(STYLE_ACCENT)))
                       for sound, _, mean, spread, _ in sounds] if STYLE_ACCENT else []
        leans, firsts, accents = [], [], []
        for bar in bars:
            start, size = int(steps[bar]), int(steps[bar + 1] - steps[bar])
            if not size or self.bar % size:
                continue  # (a 3/4 bar holds no share of a 4/4 groove)
            low = start % self.bar if size < self.bar else 0  # a bar of 1 or 2 beats: its share, from the song's start
            origin, inside = start - low, range(low, low + size)
            leans += [(origin + place, lean) for place, lean, _ in rows if place in inside]  # (one lean object a place)
            firsts += [(origin + place, first) for place, _, first in rows if first is not None and place in inside]
            accents += [(origin + place, sound, mean, spread) for place, sound, mean, spread in placed if place in inside]
        return {"drum_leans": tuple(leans) if STYLE_GROOVE_LEAN else (),
                "drum_first_leans": tuple(firsts) if first_lean else (), "drum_velocities": tuple(accents)}


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


def groove(notes: np.ndarray, steps: np.ndarray, bars: range, weight: float,
           prior: float) -> tuple[tuple[int, tuple[float, ...]], ...]:
    """Rules.drum_leans: (grid step from bar 0, 128 nats) for each step of ``bars`` (a hole's) at
    whose place in its bar the drum ``notes`` around the hole (rows of the piece's bars) play:
    ``weight`` x the log of each sound's count at that place, over the bars around as long as the
    step's (``steps``: the grid step at which each bar starts), ``prior`` notes added to every count.
    A drummer's groove is a bar's pattern, a kick on one and a snare on the backbeat: the sounds
    played around the hole in all (``Rules.track_leans``) are not what any one place plays."""
    def places(mine: np.ndarray, size: int) -> list[tuple]:
        counts = np.zeros((size, 128))
        np.add.at(counts, (mine[:, POS], mine[:, PITCH]), 1)
        return [(pos, tuple((weight * np.log(counts[pos] + prior)).tolist()))
                for pos in np.flatnonzero(counts.sum(axis=1)).tolist()]

    return _bar_by_bar(notes, steps, bars, places)


def accents(notes: np.ndarray, steps: np.ndarray, bars: range, weight: float) -> tuple[tuple[int, int, float, float], ...]:
    """Rules.drum_velocities: (grid step from bar 0, sound, mean velocity, spread) for each step of
    ``bars`` and each sound of the drum ``notes`` around the hole: the mean velocity of that sound
    at that place in the bars around as long as the step's (over every place where it never plays
    there), and its spread (over every place where it plays there fewer than :data:`ACCENT_NOTES`
    times; at least :data:`ACCENT_SPREAD`), over the square root of ``weight`` (the lean's weight).
    A drummer's ghost notes and backbeats are the same sound at other places."""
    sounds = {int(s): notes[notes[:, PITCH] == s, VEL].astype(np.float64) for s in np.unique(notes[:, PITCH])}
    overall = {s: (float(v.mean()), max(float(v.std()), ACCENT_SPREAD)) for s, v in sounds.items()}

    def places(mine: np.ndarray, size: int) -> list[tuple]:
        out = []
        for pos in range(size):
            for sound, (mean, spread) in overall.items():
                here = mine[(mine[:, POS] == pos) & (mine[:, PITCH] == sound), VEL].astype(np.float64)
                if len(here):
                    mean = float(here.mean())
                    spread = max(float(here.std()), ACCENT_SPREAD) if len(here) >= ACCENT_NOTES else spread
                out.append((pos, sound, mean, spread / np.sqrt(weight)))
        return out

    return _bar_by_bar(notes, steps, bars, places)


def _bar_by_bar(notes: np.ndarray, steps: np.ndarray, bars: range,
                places: Callable[[np.ndarray, int], list[tuple]]) -> tuple:
    """``places(the notes in bars of a length, that length)``'s rows (position in the bar, ...) for
    each bar of ``bars``, the position made its grid step from bar 0 (``steps``: where each bar
    starts); worked out once per bar length."""
    lengths = np.diff(steps)  # (bars,) grid positions of each bar
    sizes = lengths[notes[:, BAR]]
    made: dict[int, list[tuple]] = {}
    out: list[tuple] = []
    for bar in bars:
        size = int(lengths[bar])
        if size not in made:
            made[size] = places(notes[sizes == size], size)
        out += [(int(steps[bar]) + pos, *rest) for pos, *rest in made[size]]
    return tuple(out)
