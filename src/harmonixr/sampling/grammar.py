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

:class:`~harmonixr.sampling.rules.Rules` adds what a request needs (the region, ranges, a scale and
leans, polyphony, counts, and per track its range, velocities, chords, kit, rhythm and window of
onsets). A track's window is paced through the region (:mod:`harmonixr.sampling.pace`); with a
rhythm, a position is offered only where a track that may still play has it in its rhythm, and a
bar whose rest holds none of them takes no new onset. Every mask
leaves at least one value, so a row never gets stuck: a note is only offered where one can be
completed. In the last bar a region may have, the probability the model gives to a note past it
goes to the end type (:meth:`NoteGrammar.end_mass`): for the model a later bar is where the music
goes on, for the request it is where it ends.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harmonixr.errors import HarmonixrError
from harmonixr.sampling.pace import Pace, Timeline
from harmonixr.sampling.rules import MAX_CHORD, PITCH_SLACK, TRACK_LAST, UNLIMITED, NoteState, Rules, tonic_lean
from harmonixr.tokens.vocab import END, EOS, FIELDS, NOTE, NoteVocab

TYPE, DBAR, POS, TRACK, PITCH, DUR, VEL, MICRO = range(len(FIELDS))


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
        self.drum_leans = self._step_leans(rules.drum_leans)
        self.drum_first_leans = self._step_leans(rules.drum_first_leans)
        self.accents = {(step, sound): (mean, spread) for step, sound, mean, spread in rules.drum_velocities}
        self.repeats = {slot: most for slot, *most in rules.velocity_repeats}  # slot -> (after its last note, its pitch's)
        self._accent_rows: dict[tuple[float, float], np.ndarray] = {}
        self.tracks = sorted(int(s) for s in rules.tracks)  # ints: the masks look them up at every note
        self.types = np.zeros(sizes[TYPE], dtype=bool)
        self.types[[NOTE, rules.end_type]] = True
        self.all = [np.arange(size) > 0 for size in sizes]  # every stored value but "not applicable"
        velocities = np.arange(sizes[VEL])  # the stored velocity is the MIDI velocity
        self.loud = {slot: (velocities >= low, most) for slot, low, most in rules.velocity_caps}  # slot -> (capped, most)
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
        self.chords = {slot: max(min(most, MAX_CHORD), 1) for slot, most in rules.track_chords}
        self.least = {slot: min(least, self.chords.get(slot, MAX_CHORD)) for slot, least in rules.track_least_chords}
        self.shares = dict(rules.track_pitch_shares)
        self.sound_shares = {sound + 1: share for sound, share in rules.sound_shares}  # stored pitch -> share
        self.timeline = Timeline(rules.bar_positions)
        self._step, self._bar_of = self.timeline.step, self.timeline.bar_of
        # a track behind its pace plays by the next eighth note
        self.pace = Pace(rules, self.timeline, self.rhythms, pace_step=max(vocab.grid // 2, 1))

    @property
    def leans(self) -> bool:
        """Whether some note's pitch logits get a lean (:meth:`lean`)."""
        return bool(self.pitch_lean or self.time_leans or self.bass_leans or self.drum_leans or self.drum_first_leans)

    def lean(self, track: int, bar: int, pos: int, state: NoteState | None = None) -> np.ndarray | None:
        """(V_pitch,) nats added to the pitch logits of a note on stored ``track`` starting at
        (``bar``, ``pos``) after ``state`` (None: the first note of its onset): its track's lean and
        the lean of its time (a melodic note's, a bass's with its own; a drum note's, the first of
        its onset's where it has one; None: nothing)."""
        slot = track - 1
        leans = [self.pitch_lean.get(slot)]
        if slot == self.vocab.drum_slot:
            step = self._step(bar, pos)
            first = state is None or (bar, pos, slot) != (state.bar, state.pos, state.track)
            if first and step in self.drum_first_leans:
                leans.append(self.drum_first_leans[step])
            elif self.drum_leans:
                leans.append(self.drum_leans.get(step))
        elif self.time_leans or self.bass_leans:
            step = self._step(bar, pos)
            leans += [self.time_leans.get(step), self.bass_leans.get(step) if slot in self.rules.bass_slots else None]
        present = [lean for lean in leans if lean is not None]
        return None if not present else present[0] if len(present) == 1 else np.sum(present, axis=0)

    def velocity_lean(self, track: int, bar: int, pos: int, pitch: int) -> np.ndarray | None:
        """(V_vel,) nats added to the velocity logits of a note on stored ``track`` and stored
        ``pitch`` starting at (``bar``, ``pos``): for a drum note whose sound has an accent there
        (``Rules.drum_velocities``), the log of a normal density around its mean velocity; None
        otherwise."""
        if track - 1 != self.vocab.drum_slot or not self.accents:
            return None
        found = self.accents.get((self._step(bar, pos), pitch - 1))
        if found is None:
            return None
        if found not in self._accent_rows:
            mean, spread = found
            velocities = np.arange(self.sizes[VEL], dtype=np.float64)  # the stored velocity is the MIDI velocity
            self._accent_rows[found] = -((velocities - mean) ** 2) / (2 * spread**2)
        return self._accent_rows[found]

    @property
    def velocity_caps(self) -> bool:
        """Whether some note's velocity gets a cap (:meth:`caps`)."""
        return bool(self.repeats or self.loud)

    def caps(self, track: int, pitch: int, state: NoteState) -> list[tuple[int | np.ndarray, float]]:
        """[(stored velocity, or a bool mask of them; most)]: :meth:`repeat_caps`, and the velocities
        at or above the track's loud one (``Rules.velocity_caps``) together."""
        loud = self.loud.get(track - 1)
        return self.repeat_caps(track, pitch, state) + ([loud] if loud is not None else [])

    def repeat_caps(self, track: int, pitch: int, state: NoteState) -> list[tuple[int | np.ndarray, float]]:
        """[(stored velocity, most)]: a note on stored ``track`` and ``pitch`` gives at most ``most``
        of the probability to the velocity of its track's last note, and to that of the last note of
        its track and pitch (``Rules.velocity_repeats``); none where it is free."""
        if (most := self.repeats.get(track - 1)) is None:
            return []
        lasts = (state.velocities.get((track - 1, TRACK_LAST)), state.velocities.get((track - 1, pitch - 1)))
        return [(last, share) for last, share in zip(lasts, most) if last is not None]

    def _step_leans(self, leans: tuple[tuple[int, tuple[float, ...]], ...]) -> dict[int, np.ndarray]:
        """(grid step, 12 or 128 nats) rows as stored pitch leans by step (12: by pitch class),
        each distinct row made once (a chord plan repeats one row through each bar, a groove
        its bar)."""
        made: dict[tuple[float, ...], np.ndarray] = {}
        seen: dict[int, np.ndarray] = {}  # by the row's identity: a tuple of 128 is hashed once, not at every step
        out = {}
        for step, nats in leans:
            if (stored := seen.get(id(nats))) is None:
                if (stored := made.get(nats)) is None:
                    row = np.asarray(nats, dtype=np.float64)
                    stored = made[nats] = self._stored(row[np.arange(128) % 12] if len(row) == 12 else row, PITCH)
                seen[id(nats)] = stored
            out[step] = stored
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
        if self.rules.count_notes and state.onsets.get(state.track, 0) >= self.pace.cap(state.track, state.bar):
            return False  # its notes so far are all written
        if state.sounded.get(state.track, 0) >= self.pace.note_cap(state.track, state.bar):
            return False  # its most notes so far are written: a new onset may still come
        return (state.track >= 0 and self._higher(state.track, state.pitch)
                and state.chord < self.chords.get(state.track, MAX_CHORD))

    def _open_tracks(self, state: NoteState, bar: int | None = None) -> list[int]:
        """The tracks that may start a new onset (those below their most onsets; in ``bar``, when
        given, below what :meth:`_cap` allows by its end, a track that its pace says must play in it apart)."""
        seen = self._seen(state)
        if ("open", bar) in seen:
            return seen[("open", bar)]
        if bar is None:
            opened = [s for s in self.tracks if state.onsets.get(s, 0) < self.pace.most.get(s, UNLIMITED)]
        else:
            due = self._due(state)
            late = due[1] if due is not None and bar >= self._bar_of(due[0]) else None  # must play in this bar
            opened = [s for s in self.tracks if state.onsets.get(s, 0) <
                      (self.pace.most.get(s, UNLIMITED) if s == late else self.pace.cap(s, bar))]
        seen[("open", bar)] = opened
        return opened

    def _room(self, state: NoteState, bar: int, pos: int) -> bool:
        now = self._step(bar, pos)
        return sum(end > now for *_, end in state.ends) < self.rules.max_polyphony

    def _due(self, state: NoteState) -> tuple[int, int] | None:
        """(grid step, slot): the latest step the next note may start at, and the track that must
        play there, for the track most behind its pace (None: none is behind, or nothing is paced).
        Worked out once per state: a step's masks ask for it many times."""
        if not self.pace.paces:
            return None
        seen = self._seen(state)
        if "due" not in seen:
            seen["due"] = self.pace.due(state)
        return seen["due"]

    def _seen(self, state: NoteState) -> dict:
        """What this grammar worked out for ``state``'s next note so far (emptied for another grammar)."""
        if state.seen.get("grammar") is not self:
            state.seen.clear()
            state.seen["grammar"] = self
        return state.seen

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
            slot = chosen[TRACK] - 1
            mask = self.pitch_masks[slot].copy()
            if same_onset and slot == state.track:
                mask[: state.pitch + 2] = False
            if slot in self.shares or (slot == self.vocab.drum_slot and self.sound_shares):
                self._spare_pitches(state, slot, mask)
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
                and all(state.onsets.get(s, 0) >= low for s, low in self.pace.fewest.items())
                and not self.pace.waits_out(state))
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
        if self.rules.max_polyphony >= UNLIMITED or not self.pace.paces:
            return self.all[DUR]
        owed = sum(max(f - state.onsets.get(s, 0) - (s == track), 0) for s, f in self.pace.fewest.items())
        if not owed:
            return self.all[DUR]
        now = self._step(bar, pos)
        assert self.pace.region is not None
        longest = (self.pace.region[1] - now) * self.rules.max_polyphony - owed * self.pace.pace_step  # an eighth note each
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

    def _spare_pitches(self, state: NoteState, slot: int, mask: np.ndarray) -> None:
        """Mask, in place, the pitches that have their share of ``slot``'s notes
        (:data:`~harmonixr.sampling.rules.PITCH_SLACK` more), while another pitch fits: each pitch
        its track's share (``track_pitch_shares``), each drum sound its own (``sound_shares``)."""
        notes = state.sounded.get(slot, 0) + 1
        track = self.shares.get(slot)
        own = self.sound_shares if slot == self.vocab.drum_slot else {}
        full = []
        for (s, pitch), count in state.pitches.items():
            shares = [x for x in (track, own.get(pitch + 1)) if x is not None]
            if s == slot and shares and count >= min(shares) * notes + PITCH_SLACK:
                full.append(pitch + 1)
        if full and mask.sum() > np.count_nonzero(mask[full]):
            mask[full] = False

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
        state.sounded[track] = state.sounded.get(track, 0) + 1
        if self.repeats:  # (read by repeat_caps only)
            state.velocities[(track, pitch)] = state.velocities[(track, TRACK_LAST)] = note[VEL]
        state.pitches[(track, pitch)] = state.pitches.get((track, pitch), 0) + 1
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
