"""The music around a hole, and what a fill keeps of it.

A fill should sound like the song around it. :class:`Surroundings` reads the ``CONTEXT_BARS``
bars on each side of a hole (before a continuation, as many as it is long: :data:`LONG_CONTEXT`)
once, per track: the controls of what each track plays there (the defaults of an infill's
per-track controls, :meth:`Surroundings.controls`), which tracks must play in the hole
(:meth:`Surroundings.must_play`), and what a sampled fill is held to beyond what the caller asked
(:meth:`Surroundings.held`):

- a track that plays on **both sides** keeps its density (within :data:`INFERRED_TOLERANCE`, less
  in a longer hole: :func:`inferred_tolerance`; and at least one onset), its pitches (within
  :data:`INFERRED_MARGIN` semitones), its biggest chord (and, where it sounds chords at
  :data:`KEEP_CHORD` of its onsets, their size at each onset), the lengths of its notes (within
  :data:`DURATION_MARGIN` of those it plays around the hole), its rhythm (the positions in a bar
  where it starts notes) and, for the drums, its kit;
- a track that plays on **one side only** (it enters or leaves in the hole) keeps the same
  pitches, chord, rhythm and kit, and at most the density it plays at in the bars where it plays
  (raised by :data:`ONE_SIDE_TOLERANCE`); it must play when it plays in a bar next to the hole
  (:meth:`Surroundings.must_play`), and stays silent when its nearest note is further off
  (:data:`FAR_ONE_SIDE_SILENT`, :meth:`Surroundings.far_one_side`);
- a track silent on both sides stays silent (a mask of the grammar, set by the caller);
- a track **rewritten whole** (all its notes lie in the region: ``infill --tracks N`` over the
  whole song) keeps its own part's density there (within :data:`WHOLE_TOLERANCE`), range,
  rhythm, chords, notes (:data:`KEEP_NOTES`) and lengths, plays no pitch much more often than its
  part does (:data:`WHOLE_PITCH_SHARE`), and must play where its part plays;
- a **new part** (a track with no note in the piece: ``add-track``) must play, to the hole's last
  bar, at the positions in a bar where the song's other tracks start notes around the hole, and
  within the pitches its GM program's parts play in the training data;
- every held track's pitch logits lean to the pitch classes it plays around the hole
  (:data:`CONTEXT_LEAN`, :meth:`Surroundings.lean`), and its velocities are scaled to the mean it
  plays there (:data:`KEEP_LOUDNESS`).

What the caller asked of a fill, met the same way by copies and sampled fills, is in
:mod:`~harmonixr.generation.asked`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from harmonixr.data.stats import TypicalPart, top_share
from harmonixr.generation import drums, harmony
from harmonixr.generation.asked import onset_windows
from harmonixr.generation.harmony import TimeLeans
from harmonixr.generation.requests import ANY_PITCH, MusicRules
from harmonixr.tokens.notes import BAR, DUR, PITCH, POS, TRACK
from harmonixr.tokens.prompt import TRACK_CONTROL_KEYS, Hole, TrackControls, measure_controls
from harmonixr.tokens.vocab import NoteVocab

if TYPE_CHECKING:  # imported for types only
    from harmonixr.generation.piece import Piece

CONTEXT_BARS = 4  # bars on each side of a hole that its controls are inferred from
# A continuation longer than CONTEXT_BARS reads as many bars before the cut as it is long
# (context_bars): a part that rests in the 4 bars before a 16-bar continuation may come back in it
# (reading 4, it was silenced for all 16). 16-bar continuations from the middle of 47 validation
# pieces, 3 each (python benchmarks/continuation.py --split val --pieces 20 --bars 16 --rule
# LONG_CONTEXT): of the 16 tracks silent in the 4 bars before the cut that enter in the song's own
# continuation, 0 -> 6 enter, note F1 0.186 -> 0.186 (+0.000 +- 0.004), a melodic track's distinct
# pitches 8.8 -> 9.6 (the songs' 9.5). An infill hole, with music on both sides, reads
# CONTEXT_BARS: 8-bar holes of 78 validation pieces reading 8 on each side (ad hoc, sampled fills,
# 3 a hole) gave note F1 -0.005 +- 0.003, pitch-class overlap +0.001 +- 0.004, and POP909 fills
# more tracks than the originals play (2.82 a hole against 2.75).
LONG_CONTEXT = True
INFERRED_TOLERANCE = 0.5  # a sampled fill keeps a density inferred from around the hole within this share
# In an infill hole longer than TOLERANCE_BARS the share narrows as 1 / sqrt(its bars) (a count over
# more bars strays less), to WHOLE_TOLERANCE at least (inferred_tolerance): the model writes to the
# top of a window. 8-bar holes of 78 validation pieces, 3 sampled fills each (python
# benchmarks/sampled_fills.py --split val --pieces 20 --bars 8 --leans "" --copy-leans ""
# --settings tolerance): the fills' notes over the original's 1.14 -> 1.09 (median 1.13 -> 1.09),
# note F1 -0.001 +- 0.003, pitch-class overlap -0.005 +- 0.004. Not a continuation's: 16-bar
# continuations of 47 validation pieces (ad hoc) lost note F1 (-0.007 +- 0.003; POP909 -0.015).
SCALE_TOLERANCE = True
TOLERANCE_BARS = 2
# A track rewritten whole keeps its part's density there within this share. Every track of 4 POP909
# test songs rewritten whole, seeds 0 and 1 (python benchmarks/whole_tracks.py --pieces 4 --seeds
# 0,1 --settings 0.25:off:off,0.25:on:off,0.1:off:off,0.1:on:off,0.1:on:1.25,0.1:on:1), the
# rewritten over the original's: at 0.25 its onsets x1.18 (the model writes to the top of the
# window), at 0.1 x1.08; with KEEP_NOTES its notes x1.24 and x1.11 (without, x1.49 and x1.38), its
# most played pitch's share +0.048 and +0.021 (without WHOLE_PITCH_SHARE).
WHOLE_TOLERANCE = 0.1
ONE_SIDE_TOLERANCE = 0.75  # a track on one side of a hole plays at most this share above its density there
# A track that plays on one side of an all-track hole only, its nearest note not in the bar next to
# the hole (a brass section entering two bars after it), is silent in the fill (density 0: a mask,
# and copies lose its notes). Of such tracks in real 2-bar holes none plays in the hole (0 of 59 in
# the training split, 0 of 10 in the validation split), of 4-bar holes 6 of 63 and 3 of 9
# (python benchmarks/inferred_controls.py --split train --pieces 60 --bars 2 --one-side; --bars 4,
# --split val); before, a fill of bars 9-10 of the Freedoom test song d_dm03 gave its two brass
# tracks, silent until bar 13, 15 and 14 notes (piece-aware) and 6 (sampled).
FAR_ONE_SIDE_SILENT = True
# Nats per nat of a held track's pitch-class (drums: pitch) log-frequency around the hole added to
# its pitch logits. On the validation split (212 holes of 2 bars, 3 sampled fills each) 0, 0.25,
# 0.5, 0.75, 1, 1.5 and 2 gave note F1 0.128, 0.143, 0.148, 0.154, 0.159, 0.160, 0.165 and
# pitch-class overlap 0.548, 0.576, 0.584, 0.586, 0.583, 0.562, 0.549: the overlap peaked at 0.75
# with the model before echoes (benchmarks/sampled_fills.py). With the shipped model and the lean
# to the best-matching span's harmony beside it, 0, 0.4, 0.75 gave F1 0.282, 0.284, 0.282 and
# overlap 0.675, 0.674, 0.666 on 235 validation holes, 0.283, 0.287, 0.286 and 0.681, 0.681,
# 0.674 on 280 training holes: 0.75 sharpened the fills' pitch classes past the song's.
CONTEXT_LEAN = 0.4
LEAN_PRIOR = 0.5  # notes added to each pitch (class) count before the lean takes its logarithm
# A sampled fill's held tracks are scaled to the mean velocity they play around the hole (an asked
# loudness is met the same way). On the validation split (212 holes of 2 bars, 3 fills each) the
# fills' mean velocity came 1.02 +- 0.24 closer to the hole's own (benchmarks/sampled_fills.py).
KEEP_LOUDNESS = True
INFERRED_MARGIN = 4  # semitones past the pitches a track plays around the hole that its sampled fill may reach
# A sampled fill starts each track that plays on both sides of the hole by its seam (:meth:`Surroundings.seam`).
# Sampled fills of 131 validation holes of 2 bars (benchmarks/sampled_fills.py): tracks entering more
# than a bar after the original's first note there 12 of 1,095 -> 5, note F1 +0.002 +- 0.003; ad hoc
# on 80 training holes of 4 bars: 13 of 663 -> 3 (Freedoom 6 -> 0), note F1 +0.006 +- 0.003.
KEEP_SEAM = True
# And, where its longest wait between two onsets is the same on both sides (:meth:`Surroundings.steady_wait`),
# it never waits longer inside the fill. Ad hoc, 4-bar holes of 15 training pieces a family, 274 tracks
# playing on both sides: the original's longest silence in the hole (its seams included) outlasts the
# track's longest wait around it in 12% of Freedoom's tracks and 33% of all, sampled fills' in 56% of
# Freedoom's (a pad that strikes every 2 bars struck once in 4) and 43% of all; with the rule, 41% and
# 36% (note F1 -0.000 +- 0.002). On 20 test pieces a family: fills 42% -> 32% of 297 tracks, originals 27%.
# The wait holds to the hole's end (sampling.pace.Pace.waits_out): 8-bar test holes (benchmarks/sampled_fills.py
# --settings waits --bars 8) whose longest all-track silence outlasts the original's by a quarter note 8.4% -> 7.2%.
KEEP_WAIT = True
# A melodic track that sounds chords at this share of its onsets around the hole or more (octave
# doublings, pads) keeps their size at each onset of a sampled fill (:meth:`Surroundings.least_chord`):
# sampled all-track fills of 2 bars in 20 training pieces a family (ad hoc) kept chords at 54% of
# such tracks' onsets, where the originals have them at 90% (89% with it); on the test split
# (benchmarks/sampled_fills.py, 105 holes) 0.38 -> 0.85 of the onsets, note F1 +0.003 +- 0.002.
KEEP_CHORD: float | None = 0.8  # None: fills keep no chord size
# A held track's sampled fill has at most its most onsets x the mean notes at its onsets around the
# hole (Rules.track_notes; spread evenly, past it a chord grows no more, a new onset still may
# come): the model, writing a part it cannot hear, fills its chords out (a POP909 piano rewritten
# over a whole song: 1,057 -> 1,748 notes on 732 -> 781 onsets). In the table of WHOLE_TOLERANCE,
# notes per onset x1.28 -> x1.03; a chord cut at its share keeps its lowest notes, so a piano's
# most played pitch's share rises by 0.049 (0.017 without; WHOLE_PITCH_SHARE holds it). A 2-bar
# fill's window is wider (INFERRED_TOLERANCE): 131 validation holes were filled the same with it or
# without (python benchmarks/sampled_fills.py --split val --pieces 30 --leans "" --copy-leans ""
# --settings notes); on the 105 test holes of benchmarks/infill_quality.py sampled fills' note F1
# 0.2879 -> 0.2882, GiantMIDI's greedy fills 2.13 -> 1.61 times the original's notes.
KEEP_NOTES = True
# No pitch of a track rewritten whole takes more than this times its part's own most played pitch's
# share of its notes (Rules.track_pitch_shares): writing a part it cannot hear, the model droned
# (POP909 song 001's melody rewritten: one pitch on 0.57 of its notes, the song's 0.28; its bridge
# 0.66 against 0.23). In the table of WHOLE_TOLERANCE (with its kept notes), off, 1.25 and 1: the
# most played pitch's share +0.021, -0.001 and -0.014 over the original's (the piano's +0.049,
# +0.028, +0.018), the median pitch of each 16 bars 4.92, 5.26 and 5.39 semitones from the
# original's. None: no cap.
WHOLE_PITCH_SHARE: float | None = 1.25
# A held melodic track's notes in a sampled fill last from its shortest note around the hole divided
# by this factor to its longest times it (:meth:`Surroundings.durations`). Ad hoc, 2-bar holes of 15
# training pieces a family, 250 tracks playing on both sides: the originals' notes in the hole lie
# inside x1 / x1.5 / x2 windows at 95.6% / 98.1% / 99.4%, sampled fills' at 92.8% / 94.8% / 97.5%
# (Freedoom's 82.9% / 85.1% / 90.6%: short stabs drawn as held notes). None: no window.
DURATION_MARGIN: float | None = 1.5
# A new part (add-track) must play to the hole's last bar, on the song's rhythm around the hole,
# within its program's range and chord size in the training data, and is not heard past the hole;
# each part of a new piece (generate) keeps its program's onsets per bar, range and chord size
# (Generator._typical_parts). The lowest part of 58 test pieces (20 a family, chorales, classical,
# POP909, Freedoom) removed and added back with its program over 8 bars, 3 variations (python
# benchmarks/new_parts.py --split test): bars it plays in 0.67 -> 0.96, notes within 4 semitones of
# the original part's range 0.55 -> 0.64 (Freedoom 0.21 -> 0.65), note F1 0.037 -> 0.055.
HOLD_NEW_PARTS = True




class Held(NamedTuple):
    """What a sampled fill is held to beyond what the caller asked (:meth:`Surroundings.held`), as
    :class:`~harmonixr.sampling.rules.Rules` fields."""

    onsets: tuple[tuple[int, int, int], ...]  # track_onsets
    ranges: tuple[tuple[int, int, int], ...]  # track_ranges
    kit: frozenset[int]  # drum_kit
    rhythms: tuple[tuple[int, tuple[int, ...]], ...]  # track_rhythms
    chords: tuple[tuple[int, int], ...]  # track_chords
    leans: tuple[tuple[int, tuple[float, ...]], ...]  # track_leans
    loudness: tuple[tuple[int, float], ...]  # (slot, the mean velocity a sampled fill is scaled to)
    sounding: TimeLeans  # time_leans
    first: tuple[tuple[int, int], ...]  # track_first
    waits: tuple[tuple[int, int], ...]  # track_waits
    least: tuple[tuple[int, int], ...]  # track_least_chords
    durations: tuple[tuple[int, float, float], ...]  # track_durations
    notes: tuple[tuple[int, int], ...]  # track_notes
    pitch_shares: tuple[tuple[int, float], ...]  # track_pitch_shares
    groove: TimeLeans  # drum_leans
    accents: tuple[tuple[int, int, float, float], ...]  # drum_velocities
    sound_shares: tuple[tuple[int, float], ...]  # sound_shares

    def rules(self) -> dict[str, Any]:
        """The :class:`~harmonixr.sampling.rules.Rules` fields that hold a fill to these (the
        loudness is met after sampling: :func:`~harmonixr.generation.asked.meet_loudness`)."""
        return {"track_onsets": self.onsets, "track_ranges": self.ranges, "drum_kit": self.kit,
                "track_rhythms": self.rhythms, "track_chords": self.chords, "track_leans": self.leans,
                "time_leans": self.sounding, "track_first": self.first, "track_waits": self.waits,
                "track_least_chords": self.least, "track_durations": self.durations, "track_notes": self.notes,
                "track_pitch_shares": self.pitch_shares, "drum_leans": self.groove, "drum_velocities": self.accents,
                "sound_shares": self.sound_shares}


def inferred_tolerance(bars: float) -> float:
    """The share of its inferred density a held track's fill of a hole of ``bars`` bars keeps
    within (:data:`INFERRED_TOLERANCE`, narrower in a longer hole: :data:`SCALE_TOLERANCE`)."""
    if not SCALE_TOLERANCE or bars <= TOLERANCE_BARS:
        return INFERRED_TOLERANCE
    return max(WHOLE_TOLERANCE, INFERRED_TOLERANCE * float(np.sqrt(TOLERANCE_BARS / bars)))


def context_bars(bars: int) -> int:
    """The bars a continuation of ``bars`` bars reads before the cut (:data:`LONG_CONTEXT`)."""
    return max(CONTEXT_BARS, bars) if LONG_CONTEXT else CONTEXT_BARS


class Surroundings:
    """The ``context`` bars on each side of ``hole`` in ``piece`` (the hole's own span left out),
    read once. ``region``: the whole region's span where the hole is a part of a region too long
    for one context (default: the hole's)."""

    def __init__(self, piece: Piece, hole: Hole, vocab: NoteVocab, region: Hole | None = None,
                 context: int = CONTEXT_BARS) -> None:
        self.piece, self.hole, self.vocab, self.context = piece, hole, vocab, context
        self.region = Hole(hole.start, hole.end) if region is None else Hole(region.start, region.end)
        hole_bars = hole.bars(max(piece.bars - 1, hole.start[0]))  # (a continuation may start past the end)
        self.first_bar, self.last_bar = hole_bars[0], hole_bars[-1]
        span = Hole((max(self.first_bar - context, 0), 0),
                    (self.last_bar + 1 + context, 0) if hole.end is not None else None)
        notes = piece.notes
        self.notes = notes[span.in_span(notes, vocab) & ~Hole(hole.start, hole.end).in_span(notes, vocab)]
        self.bars_before = self.first_bar - max(self.first_bar - context, 0)
        self.bars_after = 0 if hole.end is None else min(context, max(piece.bars - self.last_bar - 1, 0))
        self._sides: dict[int, tuple[bool, bool]] = {}
        self._whole: dict[int, bool] = {}

    def of(self, slot: int) -> np.ndarray:
        """The notes ``slot`` plays around the hole; a track rewritten whole, silent there: its part
        in the hole (the song's, that a fill rewrites)."""
        mine = self.notes[self.notes[:, TRACK] == slot]
        return self.part_in_hole(slot) if not len(mine) and self.rewritten_whole(slot) else mine

    def part_in_hole(self, slot: int) -> np.ndarray:
        """The notes of ``slot`` that the song has inside the hole (those a fill rewrites)."""
        mine = self.piece.notes[self.piece.notes[:, TRACK] == slot]
        return mine[Hole(self.hole.start, self.hole.end).in_span(mine, self.vocab)]

    def sides(self, slot: int) -> tuple[bool, bool]:
        """Whether ``slot`` has notes in the bars just before the hole, and just after it (a hole
        that runs to the end of the piece: as if it did)."""
        if slot not in self._sides:
            bars = self.piece.notes[self.piece.notes[:, TRACK] == slot, BAR]
            before = bool(((bars >= self.first_bar - self.context) & (bars < self.first_bar)).any())
            after = before if self.hole.end is None else \
                bool(((bars > self.last_bar) & (bars <= self.last_bar + self.context)).any())
            self._sides[slot] = (before, after)
        return self._sides[slot]

    def controls(self, given: Mapping[int, TrackControls] | None = None) -> dict[int, TrackControls]:
        """Per slot of the hole: the controls of its notes around the hole (silent there, or
        :meth:`far_one_side`: density 0), with any control the user gave (``given``, per slot) in
        their place. A part with no notes anywhere (a new part) gets none: the model writes it as
        it sees fit."""
        piece = self.piece
        out = {}
        for slot in self.hole.tracks or tuple(piece.slots):
            if not (piece.notes[:, TRACK] == slot).any():
                measured = TrackControls()
            elif self.rewritten_whole(slot):  # its part as the song has it here, rewritten: as dense, as loud
                measured = measure_controls(self.part_in_hole(slot), self.last_bar - self.first_bar + 1, self.vocab)
            else:
                measured = measure_controls(self.of(slot), max(self.bars_before + self.bars_after, 1), self.vocab)
            if self.far_one_side(slot):
                measured = replace(measured, density=0)
            user = (given or {}).get(slot)
            if user is not None:
                measured = replace(measured, **{k: getattr(user, k) for k in TRACK_CONTROL_KEYS
                                                if getattr(user, k) is not None})
            out[slot] = measured
        return out

    def next_to(self, slot: int) -> bool:
        """Whether ``slot`` plays in the bar just before the hole or just after it."""
        bars = self.of(slot)[:, BAR]
        return bool(((bars == self.first_bar - 1) | ((bars == self.last_bar + 1) & (self.hole.end is not None))).any())

    def far_one_side(self, slot: int) -> bool:
        """Whether ``slot`` plays on one side of an all-track hole only (with bars on both sides),
        not in the bar next to it, and :data:`FAR_ONE_SIDE_SILENT`: its part enters or leaves
        further off, so a fill leaves it silent unless told otherwise."""
        return FAR_ONE_SIDE_SILENT and not self.hole.tracks and bool(self.bars_before and self.bars_after) \
            and sum(self.sides(slot)) == 1 and not self.next_to(slot)

    def both_sides(self, slot: int, controls: TrackControls) -> bool:
        """Whether ``slot`` plays on both sides of the hole and is not told to be silent."""
        return bool(controls.density) and all(self.sides(slot))

    def must_play(self, slot: int, controls: TrackControls) -> bool:
        """Whether ``slot`` must play in an all-track fill: it is not told to be silent and it
        plays on both sides of the hole, or on one side in the bar next to it. Of the tracks on
        one side of real holes (2 and 4 bars, training and validation splits), 72-83% of those
        that play next to the hole play in it, 0-33% of those whose nearest note is further off
        (``benchmarks/inferred_controls.py --one-side``): those are silent (:meth:`far_one_side`)."""
        return self.both_sides(slot, controls) or (self.held_to(slot, controls) and self.next_to(slot)) \
            or ((self.new_part(slot) or self.rewritten_whole(slot)) and controls.density != 0)

    def rewritten_whole(self, slot: int) -> bool:
        """Whether ``slot`` plays only inside the region: its whole part is rewritten (nothing of it
        around the hole says whether it plays; it was silenced, 0 notes written), and it keeps the
        pace its part has in the hole (its notes just past a first half's end are rewritten too: a
        sparse bridge silent there was silenced in the whole first half of the song)."""
        if slot not in self._whole:
            mine = self.piece.notes[self.piece.notes[:, TRACK] == slot]
            self._whole[slot] = bool(len(mine)) and bool(self.region.in_span(mine, self.vocab).all())
        return self._whole[slot]

    def new_part(self, slot: int) -> bool:
        """Whether ``slot`` is held as a new part: it has no note anywhere in the piece (a part
        added to it), and :data:`HOLD_NEW_PARTS`."""
        return HOLD_NEW_PARTS and not (self.piece.notes[:, TRACK] == slot).any()

    def held_to(self, slot: int, controls: TrackControls) -> bool:
        """Whether a sampled fill holds ``slot`` to what it plays around the hole (its pitches,
        chord, rhythm, kit, density): it is not told to be silent and it plays on either side."""
        return bool(controls.density) and any(self.sides(slot))

    def playing_density(self, slot: int) -> float:
        """Onsets per bar of ``slot`` in the bars around the hole where it plays (0: none)."""
        mine = self.of(slot)
        if not len(mine):
            return 0.0
        return len(np.unique(mine[:, [BAR, POS]], axis=0)) / len(np.unique(mine[:, BAR]))

    def most_onsets(self, slot: int, length: float) -> int:
        """The most onsets a sampled fill of ``length`` bars gives ``slot`` when it plays on one
        side of the hole only: its :meth:`playing_density`, raised by :data:`ONE_SIDE_TOLERANCE`."""
        return int(np.ceil(self.playing_density(slot) * length * (1 + ONE_SIDE_TOLERANCE)))

    def held(self, wanted: Mapping[int, TrackControls], asked: Mapping[int, TrackControls], length: float,
             rules: MusicRules, new_parts: Mapping[int, TypicalPart] | None = None) -> Held:
        """What a sampled fill of ``length`` bars keeps, unasked, of each track it holds
        (:meth:`held_to`; ``wanted``: every slot's controls, ``asked``: the caller's own): its onset
        window (:data:`INFERRED_TOLERANCE`, at least one onset; a track on one side only at most
        :meth:`most_onsets`), its pitch window (:data:`INFERRED_MARGIN`; none
        where a pitch range is asked of it or of the piece, or the window holds no pitch of the
        scale), the drums' kit, the most notes it starts at one onset there and the fewest of a
        chordal track (:meth:`least_chord`; unless a chord is asked of it), a melodic track's
        durations (:data:`DURATION_MARGIN`), its rhythm (none where
        a density is asked of it; ``rhythm`` asks for it on any track that plays around the hole,
        or turns it off), a lean to its pitch classes (:meth:`lean`) and its loudness (unless a
        loudness is asked of it). A new part (:meth:`new_part`) keeps to the song's rhythm around
        the hole (unless a density or ``rhythm`` 0 is asked of it), and to its program's range,
        chord size and most played pitch's share in ``new_parts`` (unless a pitch range or a chord
        is asked of it). A track rewritten whole plays no pitch more often than
        :data:`WHOLE_PITCH_SHARE` times its part does."""
        both = [s for s, c in wanted.items() if self.both_sides(s, c)]
        one = [s for s, c in wanted.items() if s not in both and self.held_to(s, c)]
        whole = [s for s in wanted if self.rewritten_whole(s)]
        kept_pace = [s for s in both + one + whole if s not in asked or asked[s].density is None]
        tolerance = inferred_tolerance(length) if self.hole.end is not None else INFERRED_TOLERANCE  # (a continuation)
        kept = onset_windows({s: wanted[s] for s in kept_pace if s in both}, length, tolerance)
        kept += onset_windows({s: wanted[s] for s in kept_pace if s in whole and s not in both}, length, WHOLE_TOLERANCE)
        kept += tuple((s, 0, self.most_onsets(s, length)) for s in kept_pace if s in one and s not in whole)
        held = sorted({*both, *one, *whole})  # a track rewritten whole: held to its own part (of)
        new = {s: part for s, part in (new_parts or {}).items() if s in wanted and self.new_part(s)}  # its program's
        within = []
        if rules.pitch_range == ANY_PITCH:
            for s in held:
                own = asked.get(s)
                if s == self.vocab.drum_slot or len(self.of(s)) == 0 or \
                        (own is not None and (own.low is not None or own.high is not None)):
                    continue
                pitches = self.of(s)[:, PITCH]
                low, high = max(int(pitches.min()) - INFERRED_MARGIN, 0), min(int(pitches.max()) + INFERRED_MARGIN, 127)
                if rules.scale is None or any(p % 12 in rules.scale for p in range(low, high + 1)):
                    within.append((s, low, high))
            for s, part in new.items():
                own = asked.get(s, TrackControls())
                if own.low is None and own.high is None:
                    within.append((s, part.low, part.high))
        kit: frozenset[int] = frozenset()
        if self.vocab.drum_slot in held:
            kit = frozenset(self.of(self.vocab.drum_slot)[:, PITCH].tolist())
        rhythms = []
        for s in wanted:
            own = asked.get(s, TrackControls())
            if own.rhythm is None and own.density is None and self.new_part(s):  # the song's
                positions = np.unique(self.notes[:, POS])
            elif own.rhythm or (own.rhythm is None and s in held and own.density is None):
                positions = np.unique(self.of(s)[:, POS])
            else:
                continue
            if len(positions):
                rhythms.append((s, tuple(positions.tolist())))
        chords = tuple((s, most) for s in held
                       if (most := wanted[s].chord) is not None and asked.get(s, TrackControls()).chord is None)
        chords += tuple((s, part.chord) for s, part in new.items() if asked.get(s, TrackControls()).chord is None)
        # (not a track rewritten whole: its part's pitch classes over a whole song are no harmony
        # of any bar; leaning to them, a POP909 melody rewritten droned on one pitch, 0.86-0.95)
        leans = tuple((s, self.lean(s)) for s in held if s not in whole) if CONTEXT_LEAN else ()
        loudness = tuple((s, float(loud)) for s in held if (loud := wanted[s].loudness) is not None
                         and asked.get(s, TrackControls()).loudness is None) if KEEP_LOUDNESS else ()
        first = tuple((s, step) for s in kept_pace if s in both and (step := self.seam(s)) is not None) \
            if KEEP_SEAM else ()
        waits = tuple((s, wait) for s in kept_pace if s in both and (wait := self.steady_wait(s)) is not None) \
            if KEEP_WAIT else ()
        least = tuple((s, least) for s in held if asked.get(s, TrackControls()).chord is None
                      and (least := self.least_chord(s)) is not None)
        durations = tuple((s, *window) for s in held if (window := self.durations(s)) is not None)
        notes = tuple((s, int(np.ceil(most * self.notes_per_onset(s)))) for s, _, most in kept) if KEEP_NOTES else ()
        shares = tuple((s, WHOLE_PITCH_SHARE * self.most_played_share(s)) for s in whole
                       if s != self.vocab.drum_slot and len(self.of(s))) if WHOLE_PITCH_SHARE else ()
        shares += tuple((s, part.share) for s, part in new.items() if part.share is not None)
        kept_drums = self.vocab.drum_slot in held and self.vocab.drum_slot not in whole
        around, hole_bars = self.of(self.vocab.drum_slot), range(self.first_bar, self.last_bar + 1)
        groove = drums.groove(around, self.steps, hole_bars, drums.GROOVE_LEAN, LEAN_PRIOR) \
            if kept_drums and drums.GROOVE_LEAN else ()
        accents = drums.accents(around, self.steps, hole_bars, drums.GROOVE_ACCENT) if kept_drums and drums.GROOVE_ACCENT \
            else ()
        sounds = np.unique(around[:, PITCH], return_counts=True) if kept_drums and drums.SOUND_SHARE else ((), ())
        sound_shares = tuple((int(s), drums.SOUND_SHARE * int(c) / len(around)) for s, c in zip(*sounds))
        return Held(kept, tuple(within), kit, tuple(rhythms), chords, leans, loudness, harmony.sounding(self), first, waits,
                    least, durations, notes, shares, groove, accents, sound_shares)

    def most_played_share(self, slot: int) -> float:
        """The share of ``slot``'s notes around the hole on its most played pitch (0: none there)."""
        pitches = self.of(slot)[:, PITCH]
        return top_share(pitches) if len(pitches) else 0.0

    def notes_per_onset(self, slot: int) -> float:
        """The mean number of notes at each of ``slot``'s onsets around the hole (1: none there)."""
        mine = self.of(slot)
        return len(mine) / len(np.unique(mine[:, [BAR, POS]], axis=0)) if len(mine) else 1.0

    def durations(self, slot: int) -> tuple[float, float] | None:
        """(shortest, longest) duration in grid steps a sampled fill gives melodic ``slot``'s notes:
        those of its notes around the hole, widened by :data:`DURATION_MARGIN` (None for the drums,
        a track with no note there, or no margin)."""
        mine = self.of(slot)
        if DURATION_MARGIN is None or slot == self.vocab.drum_slot or not len(mine):
            return None
        steps = self.vocab.durations[mine[:, DUR]]
        return float(steps.min()) / DURATION_MARGIN, float(steps.max()) * DURATION_MARGIN

    def least_chord(self, slot: int) -> int | None:
        """The chord size (2 or more) that :data:`KEEP_CHORD` of melodic ``slot``'s onsets around
        the hole reach (an octave doubling: 2), which each onset of its sampled fill keeps; None for
        the drums and for a track that plays single notes that often."""
        mine = self.of(slot)
        if KEEP_CHORD is None or slot == self.vocab.drum_slot or not len(mine):
            return None
        _, counts = np.unique(mine[:, [BAR, POS]], axis=0, return_counts=True)
        least = int(np.quantile(counts, 1 - KEEP_CHORD, method="lower"))
        return least if least >= 2 else None

    @cached_property
    def steps(self) -> np.ndarray:
        """(bars + 1,) the grid step at which each bar of the piece starts, from bar 0 (worked out
        once: each held track's seam reads it)."""
        bars = max(self.piece.bars, self.last_bar + 1)
        return np.concatenate([[0], np.cumsum(self.piece.bar_positions(bars))])

    def step_of(self, notes: np.ndarray) -> np.ndarray:
        """(N,) grid steps from bar 0 of the onsets of ``notes`` (rows of the piece's bars)."""
        return self.steps[notes[:, BAR]] + notes[:, POS]

    def _onsets(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """``slot``'s onsets (grid steps from bar 0) before the hole, and after it."""
        onsets = np.unique(self.step_of(self.of(slot)))
        first = int(self.steps[self.hole.start[0]] + self.hole.start[1])
        return onsets[onsets < first], onsets[onsets >= first]

    def steady_wait(self, slot: int) -> int | None:
        """The longest wait (grid steps) between two of ``slot``'s onsets when it is the same on both
        sides of the hole (a part in a loop: a pad striking every 2 bars, a riff), which its sampled
        fill keeps from one onset to the next; None when it differs (a voice resting at the end of a
        phrase) or a side has fewer than two onsets."""
        before, after = self._onsets(slot)
        if len(before) < 2 or len(after) < 2:
            return None
        wait = int(np.diff(before).max())
        return wait if wait == int(np.diff(after).max()) else None

    def solo_lines(self) -> tuple[int, ...]:
        """The melodic tracks that play one note at a time around the hole: no note of theirs
        sounds past the track's next onset there (a chorale voice, a bass line)."""
        out = []
        for slot in np.unique(self.notes[:, TRACK]).tolist():
            mine = self.of(slot)
            if slot == self.vocab.drum_slot or len(mine) < 2:
                continue
            onsets = self.step_of(mine)
            order = np.argsort(onsets, kind="stable")
            onsets, ends = onsets[order], onsets[order] + self.vocab.durations[mine[order, DUR]]
            if (np.diff(onsets) > 0).all() and (ends[:-1] <= onsets[1:]).all():
                out.append(int(slot))
        return tuple(out)

    def end_at_next(self, notes: np.ndarray, slots: tuple[int, ...]) -> np.ndarray:
        """``notes`` (a fill) with each note of a track of ``slots`` (:meth:`solo_lines`) cut to end
        by that track's next onset in the fill, to the longest duration bin that fits: a voice
        sung one note at a time stays one."""
        out = notes.copy()
        for slot in slots:
            rows = np.flatnonzero(out[:, TRACK] == slot)
            if len(rows) < 2:
                continue
            onsets = self.step_of(out[rows])
            rows, onsets = rows[np.argsort(onsets, kind="stable")], np.sort(onsets, kind="stable")
            self._cut(out, rows[:-1], np.diff(onsets))
        return out

    def end_by_hole_end(self, notes: np.ndarray) -> np.ndarray:
        """``notes`` (a fill) with each note of a new part (:meth:`new_part`) cut to end by the
        hole's end: a part added over bars 9-16 is not heard in bar 17."""
        out = notes.copy()
        if self.hole.end is None:
            return out
        rows = np.flatnonzero(np.isin(out[:, TRACK], [s for s in np.unique(out[:, TRACK]).tolist() if self.new_part(s)]))
        end = int(self.steps[self.hole.end[0]] + self.hole.end[1])
        self._cut(out, rows, end - self.step_of(out[rows]))
        return out

    def _cut(self, out: np.ndarray, rows: np.ndarray, room: np.ndarray) -> None:
        """Shorten the notes ``out[rows]`` that last longer than ``room`` grid steps (each > 0) to
        the longest duration bin that fits, in place."""
        fits = np.searchsorted(self.vocab.durations, room, side="right") - 1  # the longest bin within each room
        longer = (room > 0) & (self.vocab.durations[out[rows, DUR]] > room)
        out[rows[longer], DUR] = np.maximum(fits[longer], 0)

    def seam(self, slot: int) -> int | None:
        """The grid step by which a sampled fill starts ``slot``'s first note: its last onset
        before the hole plus the longest wait between two of its onsets around the hole, so that the
        fill leaves no longer silence at its start than the track does anywhere around it (a pad
        that strikes a chord every 2 bars strikes one at the hole's start). None when it has no
        onset before the hole or never two on one side."""
        before, after = self._onsets(slot)
        waits = np.concatenate([np.diff(before), np.diff(after)])
        if not len(before) or not len(waits):
            return None
        return int(before[-1] + waits.max())

    def lean(self, slot: int) -> tuple[float, ...]:
        """(128,) nats added to ``slot``'s pitch logits: :data:`CONTEXT_LEAN` x the log-frequency
        of each pitch class among its notes around the hole (of each drum pitch, for the drums),
        :data:`LEAN_PRIOR` notes added to every count. A cache of the song's harmony beside the
        model: its own pitch distribution, sharpened toward what the track plays here."""
        pitches = self.of(slot)[:, PITCH]
        if slot == self.vocab.drum_slot:
            counts = np.bincount(pitches, minlength=128)[:128].astype(np.float64)
        else:
            counts = np.bincount(pitches % 12, minlength=12)[np.arange(128) % 12].astype(np.float64)
        return tuple((CONTEXT_LEAN * np.log(counts + LEAN_PRIOR)).tolist())
