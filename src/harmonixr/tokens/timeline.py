"""The bar timeline of a score: where each bar starts, how long it is, its meter and tempo.

Notes are written as (bar, grid position, micro-timing) against this timeline and read back
through it, in the original file's ticks: ``Timeline.locate`` and ``Timeline.ticks`` are inverses
up to the micro-timing resolution (1/16 of a grid step, 1/192 of a quarter note by default).
Bars follow the time signatures of the file (4/4 before the first one, as in MIDI); a time
signature that starts inside a bar cuts that bar short, and a bar longer than
``max_bar_quarters`` is cut into bars of that length. The meter and the tempo of each bar are what
the model reads beside every note (the ``meter`` and ``tempo`` features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from symusic import Score

from harmonixr.tokens.vocab import NoteVocab

VALID_DENOMINATORS = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_METER = (4, 4)
DEFAULT_TEMPO = 120.0


@dataclass
class Timeline:
    """Bars of a piece. ``starts`` has one more entry than there are bars: the end of the last."""

    tpq: int
    grid: int  # grid steps per quarter note
    starts: np.ndarray  # (B + 1,) float ticks
    meters: list[tuple[int, int]]  # (B,) numerator, denominator of each bar
    qpm: np.ndarray  # (B,) tempo in force at each bar's start

    @property
    def bars(self) -> int:
        return len(self.meters)

    def quarters(self, bar: int) -> float:
        """Length of ``bar`` in quarter notes."""
        return float(self.starts[bar + 1] - self.starts[bar]) / self.tpq

    def positions(self, vocab: NoteVocab) -> np.ndarray:
        """(B,) grid positions in each bar."""
        return np.ceil(np.diff(self.starts) / self.tpq * vocab.grid - 1e-6).astype(np.int64).clip(1, vocab.max_positions)

    def meter_values(self, vocab: NoteVocab) -> np.ndarray:
        return np.asarray([vocab.meter_value(*m) for m in self.meters], dtype=np.int64)

    def tempo_values(self, vocab: NoteVocab) -> np.ndarray:
        """(B,) stored tempo feature of each bar (bin + 1)."""
        return vocab.tempo_bin(self.qpm).astype(np.int64) + 1

    def tick(self, bar: int, pos: int = 0) -> int:
        """Tick of grid position ``pos`` of ``bar`` (bars past the end continue the last meter)."""
        return int(round(self._start(bar) + pos * self.tpq / self.grid))

    def _start(self, bar: int) -> float:
        if bar <= self.bars:
            return float(self.starts[bar])
        last = float(self.starts[-1] - self.starts[-2]) if self.bars else 4.0 * self.tpq
        return float(self.starts[-1]) + (bar - self.bars) * last

    # -- notes <-> times -------------------------------------------------------------------
    def locate(self, ticks: np.ndarray, vocab: NoteVocab) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bar, 0-based grid position, micro-timing in 1/16 steps, -8..8) of onsets in ticks.

        An onset nearer to the next bar line than to the last grid position of its bar belongs to
        the next bar's first position (with a negative offset), as a player's early downbeat does.
        """
        ticks = np.asarray(ticks, dtype=np.float64)
        step = self.tpq / vocab.grid
        bar = np.clip(np.searchsorted(self.starts, ticks, side="right") - 1, 0, self.bars - 1)
        exact = (ticks - self.starts[bar]) / step
        pos = np.floor(exact + 0.5).astype(np.int64)
        positions = self.positions(vocab)
        over = (pos >= positions[bar]) & (bar + 1 < self.bars)
        exact = np.where(over, (ticks - self.starts[np.minimum(bar + 1, self.bars - 1)]) / step, exact)
        bar = np.where(over, bar + 1, bar)
        pos = np.where(over, 0, np.minimum(pos, positions[bar] - 1))
        half = vocab.spec.micro_bins // 2
        micro = np.clip(np.round((exact - pos) * 16), -half, half).astype(np.int64)
        return bar.astype(np.int64), pos, micro

    def ticks(self, bar: np.ndarray, pos: np.ndarray, micro: np.ndarray, vocab: NoteVocab) -> np.ndarray:
        """Onset ticks (int64) of (bar, grid position, micro-timing) triples: :meth:`locate`'s inverse."""
        bar = np.asarray(bar, dtype=np.int64)
        starts = np.asarray([self._start(int(b)) for b in bar]) if len(bar) and bar.max() >= self.bars \
            else self.starts[bar]
        step = self.tpq / vocab.grid
        exact = starts + (np.asarray(pos) + np.asarray(micro) / 16.0) * step
        return np.maximum(np.round(exact), 0).astype(np.int64)

    def extended(self, bars: int) -> Timeline:
        """This timeline with bars added, in the last bar's meter and tempo, up to ``bars`` bars."""
        if bars <= self.bars:
            return self
        length = float(self.starts[-1] - self.starts[-2])
        more = bars - self.bars
        starts = np.concatenate([self.starts, self.starts[-1] + length * np.arange(1, more + 1)])
        return Timeline(self.tpq, self.grid, starts, self.meters + [self.meters[-1]] * more,
                        np.concatenate([self.qpm, np.full(more, self.qpm[-1])]))


def timeline_of(score: Score, vocab: NoteVocab, end_tick: int | None = None) -> Timeline:
    """The bars of ``score`` up to ``end_tick`` (default: its last onset, rounded to the grid, and
    at least one bar)."""
    tpq = score.ticks_per_quarter
    if end_tick is None:
        onsets = [int(t.notes.numpy()["time"].max()) for t in score.tracks if t.note_num()]
        end_tick = max(onsets, default=0) + int(tpq / vocab.grid / 2) + 1
    signatures = sorted(((int(ts.time), int(ts.numerator), int(ts.denominator)) for ts in score.time_signatures
                         if ts.numerator >= 1 and ts.denominator in VALID_DENOMINATORS), key=lambda x: x[0])
    changes = {}
    for time, num, den in signatures:  # the last of several at one tick wins
        changes[max(time, 0)] = (num, den)
    change_ticks = sorted(changes)
    meter = changes.get(0, DEFAULT_METER)
    longest = vocab.spec.max_bar_quarters * tpq
    starts: list[float] = [0.0]
    meters: list[tuple[int, int]] = []
    k = 0
    while starts[-1] < end_tick or not meters:
        here = starts[-1]
        while k < len(change_ticks) and change_ticks[k] <= here + 1e-9:
            meter = changes[change_ticks[k]]
            k += 1
        length = min(meter[0] * 4.0 / meter[1] * tpq, longest)
        stop = here + length
        if k < len(change_ticks) and change_ticks[k] < stop - 1e-9:
            stop = float(change_ticks[k])  # a new meter starts inside this bar: the bar ends there
        starts.append(stop)
        meters.append(meter)
    tempos = sorted(((int(t.time), float(t.qpm)) for t in score.tempos), key=lambda x: x[0])
    tempo_ticks = np.asarray([t for t, _ in tempos], dtype=np.float64)
    tempo_values = np.asarray([q for _, q in tempos], dtype=np.float64)
    bar_starts = np.asarray(starts[:-1])
    if len(tempos):
        index = np.searchsorted(tempo_ticks, bar_starts, side="right") - 1
        qpm = np.where(index >= 0, tempo_values[np.maximum(index, 0)], tempo_values[0])
    else:
        qpm = np.full(len(meters), DEFAULT_TEMPO)
    return Timeline(tpq, vocab.grid, np.asarray(starts), meters, qpm)


def regular_timeline(vocab: NoteVocab, bars: int, meter: tuple[int, int] = DEFAULT_METER,
                     qpm: float = DEFAULT_TEMPO, tpq: int = 480) -> Timeline:
    """``bars`` bars of one meter and tempo (a new piece)."""
    length = meter[0] * 4.0 / meter[1] * tpq
    return Timeline(tpq, vocab.grid, length * np.arange(bars + 1), [meter] * bars, np.full(bars, float(qpm)))
