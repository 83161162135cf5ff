"""Constrained decoding: what the next row may be, field by field, as boolean masks over each field.

The sampler writes a note as its fields in order (:data:`~harmonixr.tokens.vocab.FIELDS`): type,
bars since the previous position, position, track, pitch, duration, velocity, micro-timing. Before
each field is drawn, :meth:`NoteGrammar.mask` says which of its values may come, given the fields
already chosen for this note and the row's :class:`NoteState`. Always:

- time never goes back, positions lie inside their bar (the piece's timeline gives each bar's length);
- notes at one onset come in reading order (track, then pitch, rising), so no note is written twice;
- a note's track is one :class:`Rules` allows; a drum track takes drum pitches, a melodic track the
  vocabulary's pitch range (what the corpus was folded into);
- the type is a note or the request's end (``EOS``, or ``END`` after a fill).

:class:`Rules` adds what a request needs: the region's first and last position (a fill stays in its
hole), a pitch range, a scale (and a lean to its tonic chord's pitches, :data:`ROOT_LEAN` to the
root's and :data:`CHORD_LEAN` to the others', a weight, not a mask: the scale of A minor is C
major's, its tonic is what tells them apart; per
track, ``track_leans`` are weights on the pitch logits too), a maximum polyphony, a maximum of
notes per bar and in all, a minimum of notes and the tracks that must play before the end may come, and per track a pitch
range, a velocity range, the most notes at one onset, a window of onsets (how an asked density
is met), and the drum kit (the
drum pitches the drum track may take, as an infill keeps the kit played around it): the most onsets it
may start (by the end of each bar no more than an even spread of them), and the fewest before the
end may come, paced through the region at the middle of the window (a track behind an even spread
of it by half a bar's share, or :data:`PACE_SLACK` onsets, must play at the next onset it can), so
a part keeps its rate through the region instead of playing in bursts (and a track may be told the
step by which its first onset comes, ``track_first``, and the longest it may wait between two
onsets, ``track_waits``); for a new piece, whose
density is notes per bar, the window counts notes instead (``count_notes``); and per track
a rhythm (the positions in a bar where its onsets may fall, as an infill keeps the rhythm played
around it: a position is offered only where a track that may still play has it in its rhythm, a
bar whose rest holds none of them takes no new onset, and a track behind its pace is made to play
at its next one, or off them when nothing else would meet its fewest). Every mask
leaves at least one value, so a row never gets stuck: a note is only offered where one can be
completed. In the last bar a region may have, the probability the model gives to a note past it
goes to the end type (:meth:`NoteGrammar.end_mass`): for the model a later bar is where the music
goes on, for the request it is where it ends.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field, replace

import numpy as np

from harmonixr.errors import HarmonixrError
from harmonixr.tokens.vocab import END, EOS, FIELDS, NOTE, NoteVocab

UNLIMITED = 1 << 30
MAX_CHORD = 12  # notes of one track at one onset at most (ten fingers and a thumb's reach; a drum kit's limbs)
# Nats added to the pitch logits of a key's tonic root and of the rest of its tonic chord
# (Rules.tonic); chosen with benchmarks/keys.py. A minor and C major share a scale and two notes of
# their tonic chords: the root is what tells them apart (1 nat on the whole chord: 35 of 60 prompt
# pieces in the mode asked, 1.5 on the root and 0.25 on the rest: 54 of 60; docs/evaluation.md).
ROOT_LEAN = 1.5
CHORD_LEAN = 0.25
PACE_SLACK = 1.0  # onsets a track with a window may fall behind an even pace through the region, at least
TYPE, DBAR, POS, TRACK, PITCH, DUR, VEL, MICRO = range(len(FIELDS))


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
    track_least_chords: tuple[tuple[int, int], ...] = ()  # (slot, fewest notes of the track at each of its onsets)
    track_leans: tuple[tuple[int, tuple[float, ...]], ...] = ()  # (slot, nats added to each of the 128 pitches)
    # (grid step from bar 0, nats added to each of the 12 pitch classes of a melodic note starting then)
    time_leans: tuple[tuple[int, tuple[float, ...]], ...] = ()
    bass_slots: tuple[int, ...] = ()  # tracks whose notes also take bass_leans
    bass_leans: tuple[tuple[int, tuple[float, ...]], ...] = ()  # (grid step, 12 nats) more for their notes starting then
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
    last: dict[int, int] = field(default_factory=dict)  # grid step of each track's last onset written
    # what the grammar worked out for the next note (open bars, positions, tracks): a step's masks
    # ask for each many times; emptied when a note is written, never copied
    seen: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def copy(self) -> NoteState:
        return NoteState(self.bar, self.pos, self.track, self.pitch, self.notes, self.written, self.chord,
                         dict(self.bar_notes), list(self.ends), dict(self.onsets), dict(self.last))


def tonic_lean(tonic: tuple[int, ...], pitches: np.ndarray) -> np.ndarray:
    """Nats added to the logits of ``pitches`` for a key's tonic chord ``tonic`` (root first):
    :data:`ROOT_LEAN` on the root's pitch class, :data:`CHORD_LEAN` on the others'."""
    classes = pitches % 12
    root = classes == tonic[0] if tonic else np.zeros(len(pitches), dtype=bool)
    return np.where(root, ROOT_LEAN, np.where(np.isin(classes, list(tonic[1:])), CHORD_LEAN, 0.0))


class NoteGrammar:
    """Masks (numpy bool, one per field) for rows under ``rules``."""

    def __init__(self, vocab: NoteVocab, rules: Rules) -> None:
        if not rules.tracks:
            raise HarmonixrError("a request needs at least one track that may play")
        self.vocab, self.rules = vocab, rules
        sizes = [vocab.sizes[name] for name in FIELDS]
        self.sizes = sizes
        low, high = max(rules.pitch_range[0], vocab.spec.pitch_range[0]), min(rules.pitch_range[1], vocab.spec.pitch_range[1])
        pitches = np.arange(128)
        melodic = (pitches >= low) & (pitches <= high)
        if rules.scale is not None:
            melodic &= np.isin(pitches % 12, sorted(rules.scale))
        drums = (pitches >= max(rules.drum_range[0], vocab.spec.drums_pitch_range[0])) & \
                (pitches <= min(rules.drum_range[1], vocab.spec.drums_pitch_range[1]))
        kit = drums & np.isin(pitches, sorted(rules.drum_kit))
        if kit.any():  # an empty kit, or one outside the drum range, leaves the range
            drums = kit
        if not melodic.any():
            raise HarmonixrError(f"no pitch satisfies range {rules.pitch_range} and scale {sorted(rules.scale or [])}")
        ranges = {slot: (pitches >= low) & (pitches <= high) for slot, low, high in rules.track_ranges}
        for slot, inside in ranges.items():
            if not (melodic & inside).any():
                raise HarmonixrError(f"no pitch of track slot {slot} satisfies its range and the scale")
        self.pitch_masks = {slot: self._stored(drums if slot == vocab.drum_slot else melodic & ranges.get(slot, True), PITCH)
                            for slot in rules.tracks}
        lean = tonic_lean(rules.tonic, pitches)
        leans = {slot: lean for slot in rules.tracks if slot != vocab.drum_slot} if rules.tonic else {}
        for slot, nats in rules.track_leans:
            if slot in rules.tracks:
                leans[slot] = leans.get(slot, np.zeros(128)) + np.asarray(nats, dtype=np.float64)
        self.pitch_lean = {slot: self._stored(nats, PITCH) for slot, nats in leans.items()}
        self.time_leans = self._step_leans(rules.time_leans)
        self.bass_leans = self._step_leans(rules.bass_leans) if rules.bass_slots else {}
        self.tracks = sorted(int(s) for s in rules.tracks)  # ints: the masks look them up at every note
        self.types = np.zeros(sizes[TYPE], dtype=bool)
        self.types[[NOTE, rules.end_type]] = True
        self.all = [np.arange(size) > 0 for size in sizes]  # every stored value but "not applicable"
        velocities = np.arange(sizes[VEL])  # the stored velocity is the MIDI velocity
        self.velocities = {slot: self.all[VEL] & (velocities >= low) & (velocities <= high)
                           for slot, low, high in rules.track_velocities}
        for slot, inside in self.velocities.items():
            if not inside.any():
                raise HarmonixrError(f"track slot {slot}: no velocity in its range (velocities are 1-127)")
        steps = vocab.durations
        self.lengths = {}  # slot -> the duration bins of its window (at least the one nearest to it)
        for slot, shortest, longest in rules.track_durations:
            inside = (steps >= shortest) & (steps <= longest)
            if not inside.any():
                inside[int(np.argmin(np.abs(np.log(steps / max(shortest, 1e-9)))))] = True
            self.lengths[slot] = self.all[DUR] & self._stored(inside, DUR)
        self.rhythms = {slot: tuple(sorted(set(positions))) for slot, positions in rules.track_rhythms if positions}
        self.on_rhythm = {slot: self._stored(np.isin(np.arange(sizes[POS] - 1), positions), POS)
                          for slot, positions in self.rhythms.items()}
        self._unions: dict[tuple[int, ...], np.ndarray | None] = {}
        self._latest_seen: dict[tuple[int, int, int], int] = {}
        self._plans: dict[tuple[int, int], tuple[int, int] | None] = {}  # (slot, onsets done) -> (paced step, latest)
        self._timely: dict[tuple[int, int], int] = {}  # (slot, grid step) -> _on_time
        self._caps: dict[tuple[int, int], int] = {}
        self.chords = {slot: max(min(most, MAX_CHORD), 1) for slot, most in rules.track_chords}
        self.least = {slot: min(least, self.chords.get(slot, MAX_CHORD)) for slot, least in rules.track_least_chords}
        self.fewest = {slot: low for slot, low, _ in rules.track_onsets if low > 0}
        self.first = dict(rules.track_first)
        self.waits = dict(rules.track_waits)
        self.most = {slot: high for slot, _, high in rules.track_onsets}
        self.pace_step = max(vocab.grid // 2, 1)  # a track behind its pace plays by the next eighth note
        self.bar_starts = [0, *itertools.accumulate(rules.bar_positions)]  # grid steps to each known bar's start
        self.region = (self._step(*rules.first), self._step(rules.last_bar, rules.last_pos) if rules.last_pos
                       else self._step(rules.last_bar + 1, 0)) if rules.last_bar < UNLIMITED else None

    @property
    def leans(self) -> bool:
        """Whether some note's pitch logits get a lean (:meth:`lean`)."""
        return bool(self.pitch_lean or self.time_leans or self.bass_leans)

    def lean(self, track: int, bar: int, pos: int) -> np.ndarray | None:
        """(V_pitch,) nats added to the pitch logits of a note on stored ``track`` starting at
        (``bar``, ``pos``): its track's lean and, for a melodic note, the lean of its time (a bass's
        with its own; None: nothing)."""
        slot = track - 1
        leans = [self.pitch_lean.get(slot)]
        if slot != self.vocab.drum_slot and (self.time_leans or self.bass_leans):
            step = self._step(bar, pos)
            leans += [self.time_leans.get(step), self.bass_leans.get(step) if slot in self.rules.bass_slots else None]
        present = [lean for lean in leans if lean is not None]
        return None if not present else present[0] if len(present) == 1 else np.sum(present, axis=0)

    def _step_leans(self, leans: tuple[tuple[int, tuple[float, ...]], ...]) -> dict[int, np.ndarray]:
        """(grid step, 12 nats) rows as stored pitch leans by step, each distinct row made once (a
        chord plan repeats one row through each bar)."""
        made: dict[tuple[float, ...], np.ndarray] = {}
        out = {}
        for step, nats in leans:
            if nats not in made:
                made[nats] = self._stored(np.asarray(nats, dtype=np.float64)[np.arange(128) % 12], PITCH)
            out[step] = made[nats]
        return out

    def _stored(self, values: np.ndarray, k: int) -> np.ndarray:
        """A mask over field ``k``'s stored values from one over its 0-based values."""
        mask = np.zeros(self.sizes[k], dtype=values.dtype)
        mask[1 : 1 + len(values)] = values
        return mask

    # -- what may come ----------------------------------------------------------------------
    def open_bars(self, state: NoteState) -> np.ndarray:
        """(dbar values,) bool: bars (as stored ``dbar``) in which a note may still start."""
        seen = self._seen(state)
        if "bars" not in seen:
            seen["bars"] = _frozen(self._work_out_open_bars(state))
        return seen["bars"]

    def _work_out_open_bars(self, state: NoteState) -> np.ndarray:
        r = self.rules
        mask = np.zeros(self.sizes[DBAR], dtype=bool)
        if state.notes >= r.max_notes:
            return mask
        if self._owes_chord(state):  # the last onset's chord is not full yet: it grows first
            mask[1] = True
            return mask
        if not self._open_tracks(state):  # every track has all its onsets: only the last chord may grow
            mask[1] = self._chord_grows(state)
            return mask
        top = self.vocab.spec.max_dbar
        if r.last_bar < UNLIMITED:
            top = min(top, r.last_bar - state.bar)
        low = max(0, r.first[0] - state.bar)
        while low <= top and not self._open_tracks(state, state.bar + low) and not (low == 0 and self._chord_grows(state)):
            low += 1  # every track is ahead of its pace in this bar
        due = self._due(state)
        if due is not None:
            top = min(top, self._bar_of(due[0]) - state.bar)
        if top < low:
            return mask
        mask[low + 1 : top + 2] = True
        if low == 0 and not self._open_tracks(state, state.bar):  # only the last chord grows in this bar:
            for d in range(1, top + 1):  # no new onset before a track's pace lets one come
                if self._open_tracks(state, state.bar + d):
                    break
                mask[d + 1] = False
        for bar, count in state.bar_notes.items():  # bars that have all the notes they may have
            if count >= r.max_notes_per_bar and low <= bar - state.bar <= top:
                mask[bar - state.bar + 1] = False
        # Only some bars can have no free position: the current one, the region's first and last,
        # and, under a polyphony cap, those before the sounding notes end.
        check = {0, r.first[0] - state.bar, r.last_bar - state.bar} if r.last_bar < UNLIMITED else {0, r.first[0] - state.bar}
        if due is not None:
            check.add(top)
        if r.max_polyphony < UNLIMITED and state.ends:
            latest = max(end for *_, end in state.ends)
            check |= {d for d in range(low, top + 1) if self._step(state.bar + d, 0) < latest}
        for d in check:
            if low <= d <= top and mask[d + 1]:
                mask[d + 1] = bool(self.positions(state, state.bar + d).any())
        return mask

    def positions(self, state: NoteState, bar: int) -> np.ndarray:
        """(pos values,) bool: positions of ``bar`` where a note may start."""
        seen = self._seen(state)
        if ("positions", bar) not in seen:
            seen[("positions", bar)] = _frozen(self._work_out_positions(state, bar))
        return seen[("positions", bar)]

    def _work_out_positions(self, state: NoteState, bar: int) -> np.ndarray:
        r = self.rules
        if self._owes_chord(state):
            mask = np.zeros(self.sizes[POS], dtype=bool)
            mask[state.pos + 1] = bar == state.bar
            return mask
        stop = r.positions(bar)
        if bar == r.last_bar and r.last_pos:
            stop = min(stop, r.last_pos)
        start = 0
        if bar == state.bar:
            start = state.pos if self._room_at_onset(state) else state.pos + 1
        if bar == r.first[0]:
            start = max(start, r.first[1])
        opened = self._open_tracks(state, bar)
        if not opened:
            stop = min(stop, state.pos + 1) if bar == state.bar else 0
        due, due_pos = self._due(state), None
        if due is not None and bar == self._bar_of(due[0]):
            due_pos = due[0] - self._step(bar, 0)
            stop = min(stop, due_pos + 1)
        mask = np.zeros(self.sizes[POS], dtype=bool)
        if start < stop:
            mask[start + 1 : stop + 1] = True
            if r.max_polyphony < UNLIMITED and state.ends:
                for p in range(start, stop):
                    if not self._room(state, bar, p):
                        mask[p + 1] = False
            if self.rhythms:
                union = self._rhythm_of(opened)
                on_rhythm = mask & union if union is not None else mask.copy()
                if bar == state.bar and start == state.pos:  # the last onset: its chord, or a later track on its rhythm
                    on_rhythm[start + 1] = mask[start + 1] and (self._chord_grows(state) or any(
                        slot > state.track and (slot not in self.on_rhythm or self.on_rhythm[slot][start + 1])
                        for slot in opened))
                if due_pos is not None and start <= due_pos < stop:  # a late track plays when due, rhythm or not
                    on_rhythm[due_pos + 1] = mask[due_pos + 1]
                if on_rhythm.any() or bar == state.bar:  # the rest of this bar may hold none; another
                    mask = on_rhythm  # bar yields where it has none (open_bars checks this one)
        return mask

    def _rhythm_of(self, tracks: list[int]) -> np.ndarray | None:
        """(pos values,) bool: the positions where one of ``tracks`` may start an onset under its
        rhythm (None: one of them has none, so any position)."""
        key = tuple(tracks)
        if key not in self._unions:
            masks = [self.on_rhythm[slot] for slot in tracks if slot in self.on_rhythm]
            self._unions[key] = None if len(masks) < len(tracks) or not masks else np.logical_or.reduce(masks)
        return self._unions[key]

    def _room_at_onset(self, state: NoteState) -> bool:
        """Whether another note may join the last note's onset (a later track, or a higher pitch on
        its track while its chord is below :data:`MAX_CHORD`)."""
        if state.track < 0:
            return True
        if any(slot > state.track for slot in self._open_tracks(state, state.bar)):
            return True
        return self._chord_grows(state)

    def _owes_chord(self, state: NoteState) -> bool:
        """Whether the last note's track has fewer notes at its onset than its fewest
        (``track_least_chords``) while a higher one may still join them: then the next note does."""
        if state.track < 0 or state.chord >= self.least.get(state.track, 0) or not self._chord_grows(state):
            return False
        return self.rules.max_polyphony >= UNLIMITED or self._room(state, state.bar, state.pos)

    def _chord_grows(self, state: NoteState) -> bool:
        """Whether the last note's track may add a higher note at its onset."""
        if self.rules.count_notes and state.onsets.get(state.track, 0) >= self._cap(state.track, state.bar):
            return False  # its notes so far are all written
        return (state.track >= 0 and self._higher(state.track, state.pitch)
                and state.chord < self.chords.get(state.track, MAX_CHORD))

    def _open_tracks(self, state: NoteState, bar: int | None = None) -> list[int]:
        """The tracks that may start a new onset (those below their most onsets; in ``bar``, when
        given, below what :meth:`_cap` allows by its end, a track that its pace says must play in it apart)."""
        seen = self._seen(state)
        if ("open", bar) in seen:
            return seen[("open", bar)]
        if bar is None:
            opened = [s for s in self.tracks if state.onsets.get(s, 0) < self.most.get(s, UNLIMITED)]
        else:
            due = self._due(state)
            late = due[1] if due is not None and bar >= self._bar_of(due[0]) else None  # must play in this bar
            opened = [s for s in self.tracks if state.onsets.get(s, 0) <
                      (self.most.get(s, UNLIMITED) if s == late else self._cap(s, bar))]
        seen[("open", bar)] = opened
        return opened

    def _cap(self, slot: int, bar: int) -> int:
        """The most onsets (notes, under ``count_notes``) ``slot`` may have by the end of ``bar``:
        its most spread evenly over the region's time, so that they are not all spent in its first
        bars."""
        most = self.most.get(slot, UNLIMITED)
        if most >= UNLIMITED or self.region is None:
            return most
        if (slot, bar) not in self._caps:
            start, stop = self.region
            self._caps[(slot, bar)] = min(most, -(-most * (min(self._step(bar + 1, 0), stop) - start)
                                                  // max(stop - start, 1)))
        return self._caps[(slot, bar)]

    def _room(self, state: NoteState, bar: int, pos: int) -> bool:
        now = self._step(bar, pos)
        return sum(end > now for *_, end in state.ends) < self.rules.max_polyphony

    def _due(self, state: NoteState) -> tuple[int, int] | None:
        """(grid step, slot): the latest step the next note may start at, and the track that must
        play there, for the track most behind its pace (None: none is behind, or nothing is paced).
        Worked out once per state: a step's masks ask for it many times."""
        if not self.fewest or self.region is None:
            return None
        seen = self._seen(state)
        if "due" not in seen:
            seen["due"] = self._work_out_due(state)
        return seen["due"]

    def _seen(self, state: NoteState) -> dict:
        """What this grammar worked out for ``state``'s next note so far (emptied for another grammar)."""
        if state.seen.get("grammar") is not self:
            state.seen.clear()
            state.seen["grammar"] = self
        return state.seen

    def _work_out_due(self, state: NoteState) -> tuple[int, int] | None:
        assert self.region is not None
        start, stop = self.region
        now = self._step(state.bar, state.pos)
        best = None
        for slot, fewest in self.fewest.items():
            done = state.onsets.get(slot, 0)
            if (slot, done) not in self._plans:  # its pace's step for the next onset, and the latest one
                pace, slack = self._pace(slot, fewest, stop - start)
                paced = start + int((stop - start) * (done + 1 + slack) / (pace + slack))
                if done == 0 and slot in self.first:  # its first onset by the step it asks, if sooner
                    paced = min(paced, max(self.first[slot], start))
                self._plans[(slot, done)] = None if done >= pace else (
                    paced, self._latest(slot, stop, fewest - done))  # the rest still fit on its rhythm
            plan = self._plans[(slot, done)]
            if plan is None:
                continue
            due, latest = plan
            if slot in self.waits and slot in state.last:  # its next onset no later than its longest wait from its last
                due = min(due, state.last[slot] + self.waits[slot])
            earliest = now if state.track < 0 or slot > state.track else now + 1  # the reading order at an onset
            due = max(due, earliest)
            if (slot, due) not in self._timely:  # on the next eighth note, or the track's next position of its rhythm
                self._timely[(slot, due)] = self._on_time(slot, due)
            due = self._timely[(slot, due)]
            due = min(due, latest if latest >= earliest else stop - (fewest - done))  # or a grid step each
            due = self._free_from(state, due, stop)
            if best is None or (due, slot) < best:
                best = (due, slot)
        return best

    def _on_time(self, slot: int, step: int) -> int:
        """The first grid step from ``step`` where ``slot`` may be made to play: its rhythm's next
        position (in this bar or the next), else the next eighth note."""
        bar = self._bar_of(step)
        pos = step - self._step(bar, 0)
        rhythm = self.rhythms.get(slot)
        if rhythm is not None:
            later = rhythm[bisect.bisect_left(rhythm, pos):]
            if later and later[0] < self.rules.positions(bar):
                return self._step(bar, later[0])
            if rhythm[0] < self.rules.positions(bar + 1):
                return self._step(bar + 1, rhythm[0])
        return step + (-pos % self.pace_step)

    def _latest(self, slot: int, stop: int, count: int) -> int:
        """The latest grid step from which ``count`` onsets of ``slot`` still fit before ``stop``: a
        grid step each, or on its rhythm's positions while they are enough."""
        rhythm = self.rhythms.get(slot)
        if rhythm is None or count <= 0 or self.region is None:
            return stop - count
        if (slot, stop, count) not in self._latest_seen:
            bar = self._bar_of(stop - 1)
            steps: list[int] = []
            while len(steps) < count and bar >= 0 and self._step(bar + 1, 0) > self.region[0]:
                steps += [step for pos in reversed(rhythm) if pos < self.rules.positions(bar)
                          and self.region[0] <= (step := self._step(bar, pos)) < stop]
                bar -= 1
            self._latest_seen[(slot, stop, count)] = steps[count - 1] if len(steps) >= count else stop - count
        return self._latest_seen[(slot, stop, count)]

    def _pace(self, slot: int, fewest: int, steps: int) -> tuple[float, float]:
        """(onsets, slack) of ``slot``'s pace through the region's ``steps`` grid steps: the middle
        of its window, half a bar's share (at least :data:`PACE_SLACK`) behind at most; its fewest
        when it has no most. A pace at the fewest let parts play in bursts: a fill of a drum song
        drummed at half its rate in the bars after a busy first one, and every part went silent
        in the hole's last bar once its fewest were in."""
        most = self.most.get(slot, UNLIMITED)
        if most >= UNLIMITED:
            return fewest, PACE_SLACK
        pace = (fewest + most) / 2
        return pace, max(PACE_SLACK, pace * self.rules.positions(self.rules.first[0]) / max(steps, 1) / 2)

    def _free_from(self, state: NoteState, step: int, stop: int) -> int:
        """The first grid step from ``step`` (before ``stop``) where a note may start under the
        polyphony cap: a pace never asks for a note where the sounding ones leave no room."""
        if self.rules.max_polyphony >= UNLIMITED:
            return step
        while step < stop - 1 and sum(end > step for *_, end in state.ends) >= self.rules.max_polyphony:
            step = min(end for *_, end in state.ends if end > step)
        return step

    def _bar_of(self, step: int) -> int:
        """The bar grid step ``step`` lies in (bars after the known ones as long as the last)."""
        known, end = len(self.rules.bar_positions), self.bar_starts[-1]
        if step < end:
            return bisect.bisect_right(self.bar_starts, step) - 1
        return known + (step - end) // self.rules.bar_positions[-1]

    def _step(self, bar: int, pos: int) -> int:
        """Grid steps from the start of bar 0 to (bar, pos): integers, so ends and onsets compare exactly."""
        known = len(self.rules.bar_positions)
        if bar <= known:
            return int(self.bar_starts[bar] + pos)
        return int(self.bar_starts[-1] + (bar - known) * self.rules.bar_positions[-1] + pos)

    def mask(self, k: int, state: NoteState, chosen: list[int]) -> np.ndarray:
        """(V_k,) bool: the stored values field ``k`` may take after ``chosen`` (stored values of
        fields 0..k-1 of this note)."""
        if k == TYPE:
            return self._types(state, self.open_bars(state))
        if k == DBAR:
            return self.open_bars(state)
        bar = state.bar + chosen[DBAR] - 1
        if k == POS:
            return self.positions(state, bar)
        same_onset = bar == state.bar and chosen[POS] - 1 == state.pos and state.track >= 0
        if k == TRACK:
            if self.rhythms:  # the tracks whose rhythm has the onset's position (a chord may grow)
                mask = self._track_mask(state, bar, chosen, same_onset, chosen[POS] - 1)
                if mask.any():
                    return mask
            return self._track_mask(state, bar, chosen, same_onset, None)
        if k == PITCH:
            mask = self.pitch_masks[chosen[TRACK] - 1].copy()
            if same_onset and chosen[TRACK] - 1 == state.track:
                mask[: state.pitch + 2] = False
            return mask
        if k == VEL:
            return self.velocities.get(chosen[TRACK] - 1, self.all[VEL])
        if k == DUR:
            return self._durations(state, bar, chosen[POS] - 1, chosen[TRACK] - 1)
        return self.all[k]

    def _track_mask(self, state: NoteState, bar: int, chosen: list[int], same_onset: bool, pos: int | None) -> np.ndarray:
        """The track field's mask (``pos``: the new onset's position, which a track's rhythm must
        hold; None: rhythms aside)."""
        missing = set(self.rules.required) - state.written if bar >= self.rules.required_by else set()
        due = self._due(state)
        paced = due is not None and self._step(bar, chosen[POS] - 1) >= due[0]
        mask = self._tracks(state, bar, same_onset, missing, due[1] if due is not None and paced else None, pos)
        if paced and not mask.any():  # the late track cannot come at this onset: it comes at the next
            mask = self._tracks(state, bar, same_onset, missing, None, pos)
        if missing and not mask.any():  # at this onset the reading order allows no silent track: any then
            return self._track_mask(replace(state, written=state.written | missing), bar, chosen, same_onset, pos)
        return mask

    def opening(self, state: NoteState) -> tuple[np.ndarray, np.ndarray]:
        """The masks a step starts from: the type's and the open bars' (what :meth:`mask` gives for
        ``TYPE`` and ``DBAR``), the bars worked out once."""
        bars = self.open_bars(state)
        return self._types(state, bars), bars

    def _types(self, state: NoteState, bars: np.ndarray) -> np.ndarray:
        """(type values,) bool: a note while a bar is open (``bars``), the end once the rules allow it."""
        types = self.types.copy()
        types[NOTE] = bool(bars.any())
        done = (state.notes >= self.rules.min_notes and set(self.rules.required) <= state.written and not self._owes_chord(state)
                and (state.bar >= self.rules.min_bar and state.track >= 0 or self.rules.min_bar == 0)
                and all(state.onsets.get(s, 0) >= low for s, low in self.fewest.items()))
        types[self.rules.end_type] = done or not types[NOTE]
        return types

    def _durations(self, state: NoteState, bar: int, pos: int, track: int) -> np.ndarray:
        """(dur values,) bool: the track's durations (``track_durations``) where they agree with
        the polyphony cap: under it, with onsets still owed, durations short enough that the owed
        ones still fit after this note, an eighth note each; the shortest always."""
        fitting = self._fitting_durations(state, bar, pos, track)
        own = self.lengths.get(track)
        if own is None:
            return fitting
        both = fitting & own
        return both if both.any() else fitting

    def _fitting_durations(self, state: NoteState, bar: int, pos: int, track: int) -> np.ndarray:
        if self.rules.max_polyphony >= UNLIMITED or not self.fewest or self.region is None:
            return self.all[DUR]
        owed = sum(max(f - state.onsets.get(s, 0) - (s == track), 0) for s, f in self.fewest.items())
        if not owed:
            return self.all[DUR]
        now = self._step(bar, pos)
        longest = (self.region[1] - now) * self.rules.max_polyphony - owed * self.pace_step  # an eighth note each
        mask = self.all[DUR].copy()
        mask[1:] &= self.vocab.durations <= max(longest, 1)  # the shortest bin is one grid step
        return mask

    def _tracks(self, state: NoteState, bar: int, same_onset: bool, missing: set[int], late: int | None,
                pos: int | None = None) -> np.ndarray:
        """(track values,) bool: the tracks the next note in ``bar`` may take (``missing``: only those;
        ``late``: a track behind its pace, which no later track may come before; ``pos``: only a track
        whose rhythm, if it has one, holds that position)."""
        mask = np.zeros(self.sizes[TRACK], dtype=bool)
        if self._owes_chord(state):
            mask[state.track + 1] = same_onset
            return mask
        opened = set(self._open_tracks(state, bar))
        for slot in self.tracks:
            if missing and slot not in missing:
                continue
            if same_onset and (slot < state.track or (slot == state.track and not self._chord_grows(state))):
                continue
            if slot not in opened and not (same_onset and slot == state.track):
                continue  # it has all its onsets (a chord at its last onset may still grow)
            if late is not None and slot > late:
                continue
            if pos is not None and slot in self.on_rhythm and not self.on_rhythm[slot][pos + 1] \
                    and not (same_onset and slot == state.track) and slot != late:
                continue
            mask[slot + 1] = True
        return mask

    def _higher(self, slot: int, pitch: int) -> bool:
        return slot in self.pitch_masks and bool(self.pitch_masks[slot][pitch + 2 :].any())

    def end_mass(self, state: NoteState) -> np.ndarray:
        """(dbar values,) bool: the bars past the request's last one (their probability, given a
        note, goes to the end type); empty when the request has no last bar."""
        mask = np.zeros(self.sizes[DBAR], dtype=bool)
        if self.rules.last_bar < UNLIMITED:
            first_past = self.rules.last_bar - state.bar + 1
            mask[max(first_past, 0) + 1 :] = True
        return mask

    # -- advancing -----------------------------------------------------------------------------
    def advance(self, state: NoteState, note: list[int]) -> tuple[int, int, int, int]:
        """Record the note of stored fields ``note`` (type first); return its (bar, pos, track, pitch)."""
        bar, pos = state.bar + note[DBAR] - 1, note[POS] - 1
        track, pitch = note[TRACK] - 1, note[PITCH] - 1
        same = (bar, pos, track) == (state.bar, state.pos, state.track)
        state.chord = state.chord + 1 if same else 1
        if not same or self.rules.count_notes:
            state.onsets[track] = state.onsets.get(track, 0) + 1
        if not same:
            state.last[track] = self._step(bar, pos)
        state.bar, state.pos, state.track, state.pitch = bar, pos, track, pitch
        state.seen.clear()
        state.notes += 1
        state.written = state.written | {track}
        state.bar_notes[bar] = state.bar_notes.get(bar, 0) + 1
        if self.rules.max_polyphony < UNLIMITED:
            now = self._step(bar, pos)
            end = now + int(self.vocab.durations[note[DUR] - 1])
            state.ends = [e for e in state.ends if e[2] > now] + [(bar, pos, end)]
        return bar, pos, track, pitch

    @property
    def end_type(self) -> int:
        return self.rules.end_type


def _frozen(mask: np.ndarray) -> np.ndarray:
    """``mask``, read-only: a memoized mask is handed out many times, and nobody may change it."""
    mask.flags.writeable = False
    return mask


def is_end(type_value: int) -> bool:
    return type_value in (EOS, END)
