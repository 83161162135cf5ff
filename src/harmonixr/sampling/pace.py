"""How a track's onset window is spread through a region: its pace, and which track is due next.

A track may be given a window of onsets (``Rules.track_onsets``: how an asked density is met; for a
new piece, whose density is notes per bar, the window counts notes, ``count_notes``). Its most is
spread evenly: by the end of each bar it may have started no more than an even share of them
(:meth:`Pace.cap`). Its fewest must come before the end, paced through the region at the middle of
the window: a track behind an even spread of it by half a bar's share, or :data:`PACE_SLACK`
onsets, must play at the next onset it can (:meth:`Pace.due`), so a part keeps its rate through the
region instead of playing in bursts. A track may also be told the step by which its first onset
comes (``track_first``) and the longest it may wait between two onsets (``track_waits``); a track
with a rhythm is made to play at its rhythm's next position, or off it when nothing else would meet
its fewest.
"""

from __future__ import annotations

import bisect
import itertools

from harmonixr.sampling.rules import UNLIMITED, NoteState, Rules

PACE_SLACK = 1.0  # onsets a track with a window may fall behind an even pace through the region, at least


class Timeline:
    """Grid steps of a request's bars: ``bar_positions`` gives each known bar's length, and bars
    after them are as long as the last."""

    def __init__(self, bar_positions: tuple[int, ...]) -> None:
        self.bar_positions = bar_positions
        self.bar_starts = [0, *itertools.accumulate(bar_positions)]  # grid steps to each known bar's start

    def step(self, bar: int, pos: int) -> int:
        """Grid steps from the start of bar 0 to (bar, pos): integers, so ends and onsets compare exactly."""
        known = len(self.bar_positions)
        if bar <= known:
            return int(self.bar_starts[bar] + pos)
        return int(self.bar_starts[-1] + (bar - known) * self.bar_positions[-1] + pos)

    def bar_of(self, step: int) -> int:
        """The bar grid step ``step`` lies in."""
        known, end = len(self.bar_positions), self.bar_starts[-1]
        if step < end:
            return bisect.bisect_right(self.bar_starts, step) - 1
        return known + (step - end) // self.bar_positions[-1]


class Pace:
    """The onset windows of ``rules`` over its region (``region``: its first and end grid step;
    None when the request has no last bar, and then nothing is paced)."""

    def __init__(self, rules: Rules, timeline: Timeline, rhythms: dict[int, tuple[int, ...]], pace_step: int) -> None:
        self.rules, self.timeline, self.rhythms = rules, timeline, rhythms
        self.pace_step = pace_step  # a track behind its pace plays by the next multiple of this
        self.fewest = {slot: low for slot, low, _ in rules.track_onsets if low > 0}
        self.most = {slot: high for slot, _, high in rules.track_onsets}
        self.most_notes = dict(rules.track_notes)
        self.first = dict(rules.track_first)
        self.waits = dict(rules.track_waits)
        step = timeline.step
        self.region = (step(*rules.first), step(rules.last_bar, rules.last_pos) if rules.last_pos
                       else step(rules.last_bar + 1, 0)) if rules.last_bar < UNLIMITED else None
        self._plans: dict[tuple[int, int], tuple[int, int] | None] = {}  # (slot, onsets done) -> (paced step, latest)
        self._timely: dict[tuple[int, int], int] = {}  # (slot, grid step) -> _on_time
        self._caps: dict[tuple[str, int, int], int] = {}  # (what, slot, bar) -> its cap
        self._latest_seen: dict[tuple[int, int, int], int] = {}

    @property
    def paces(self) -> bool:
        """Whether some track must play a fewest number of onsets through a region."""
        return bool(self.fewest) and self.region is not None

    def cap(self, slot: int, bar: int) -> int:
        """The most onsets (notes, under ``count_notes``) ``slot`` may have by the end of ``bar``:
        its most spread evenly over the region's time, so that they are not all spent in its first
        bars."""
        return self._spread(self.most.get(slot, UNLIMITED), ("onsets", slot, bar))

    def note_cap(self, slot: int, bar: int) -> int:
        """The most notes ``slot`` may have by the end of ``bar`` (``track_notes``, spread the same way)."""
        return self._spread(self.most_notes.get(slot, UNLIMITED), ("notes", slot, bar))

    def _spread(self, most: int, key: tuple[str, int, int]) -> int:
        """``most`` spread evenly over the region's time, by the end of the bar of ``key``."""
        if most >= UNLIMITED or self.region is None:
            return most
        if key not in self._caps:
            start, stop = self.region
            self._caps[key] = min(most, -(-most * (min(self.timeline.step(key[2] + 1, 0), stop) - start)
                                          // max(stop - start, 1)))
        return self._caps[key]

    def due(self, state: NoteState) -> tuple[int, int] | None:
        """(grid step, slot): the latest step the next note may start at, and the track that must
        play there, for the track most behind its pace (None: none is behind, or nothing is paced)."""
        if not self.paces:
            return None
        assert self.region is not None
        start, stop = self.region
        now = self.timeline.step(state.bar, state.pos)
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
            if plan is None:  # at its pace: only its longest wait still holds it, while it has onsets to spare
                if not self._waiting(slot, state, stop):
                    continue
                plan = (state.last[slot] + self.waits[slot], stop)
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

    def waits_out(self, state: NoteState) -> bool:
        """Whether a track held to a longest wait (``track_waits``) would wait longer than that from
        its last onset to the region's end while it has onsets to spare (under its most): the
        request may not end yet. A fill of a Freedoom song ended 3 beats before its hole's end, every
        track silent there, where its drums had played every sixteenth note on both sides."""
        if self.region is None:
            return False
        return any(self._waiting(slot, state, self.region[1]) for slot in self.waits)

    def _waiting(self, slot: int, state: NoteState, stop: int) -> bool:
        """Whether ``slot``'s longest wait from its last onset written ends before ``stop`` while it
        has onsets to spare (under its most)."""
        return (slot in self.waits and slot in state.last and state.last[slot] + self.waits[slot] < stop
                and state.onsets.get(slot, 0) < self.most.get(slot, UNLIMITED))

    def _on_time(self, slot: int, step: int) -> int:
        """The first grid step from ``step`` where ``slot`` may be made to play: its rhythm's next
        position (in this bar or the next), else the next eighth note."""
        bar = self.timeline.bar_of(step)
        pos = step - self.timeline.step(bar, 0)
        rhythm = self.rhythms.get(slot)
        if rhythm is not None:
            later = rhythm[bisect.bisect_left(rhythm, pos):]
            if later and later[0] < self.rules.positions(bar):
                return self.timeline.step(bar, later[0])
            if rhythm[0] < self.rules.positions(bar + 1):
                return self.timeline.step(bar + 1, rhythm[0])
        return step + (-pos % self.pace_step)

    def _latest(self, slot: int, stop: int, count: int) -> int:
        """The latest grid step from which ``count`` onsets of ``slot`` still fit before ``stop``: a
        grid step each, or on its rhythm's positions while they are enough."""
        rhythm = self.rhythms.get(slot)
        if rhythm is None or count <= 0 or self.region is None:
            return stop - count
        if (slot, stop, count) not in self._latest_seen:
            step = self.timeline.step
            bar = self.timeline.bar_of(stop - 1)
            steps: list[int] = []
            while len(steps) < count and bar >= 0 and step(bar + 1, 0) > self.region[0]:
                steps += [at for pos in reversed(rhythm) if pos < self.rules.positions(bar)
                          and self.region[0] <= (at := step(bar, pos)) < stop]
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
