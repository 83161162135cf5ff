"""Echoes: what the same track played at the same place some bars away, as columns of a note's row.

Music repeats at distances of whole bars: a folk tune's second strain, a chorus, a bass riff, a
drum groove. A Transformer can learn to look a phrase up by attention, but the note-level model
did not within its training budget: a test tune played twice cost it as many bits the second
time as the first (25 folk tunes: 4.55 and 4.47 bits per note; ``benchmarks/echo.py``). So each note's
row says what it would be if the music repeated: for every lag of :data:`ECHO_LAGS` (bars; negative
is earlier), the stored pitch of the note at the same track, position in the bar and rank among
the track's notes at that onset, ``lag`` bars away, if that note comes **earlier in the sequence**
(0: none). A model reads only what it has read: in a plain sequence the later lags are always 0;
in an infill sequence the fill hears the context after the hole through them.

The model embeds a row's echoes with its other columns, and the field heads are told the next
note's echoes once its bar, position and track are chosen (as they are told its instrument):
copying, where the music repeats, is then one lookup away. :func:`add_echoes` fills the columns of
a whole sequence (the prompt format calls it for every sequence it builds); :class:`EchoIndex` gives
the same values one note at a time, for the sampler. ``tests/test_echo.py`` holds them equal.
"""

from __future__ import annotations

import numpy as np

from harmonixr.tokens.vocab import COL, ECHO_COLUMNS, ECHO_LAGS, MAX_WINDOW_BARS, NOTE

_LAG_ROOM = 32  # bar codes are offset by this, so that a lagged bar never wraps into another track's
_RANKS = 1 << 10  # more notes than this at one onset of one track share the last rank's echo
_ECHO = [COL[name] for name in ECHO_COLUMNS]


def _known(bar: np.ndarray | int) -> np.ndarray | bool:
    """Whether rows at the stored ``bar`` feature may echo or be echoed: inside the window and not
    at its saturated last value (where bars are no longer told apart)."""
    return (bar > 0) & (bar < MAX_WINDOW_BARS)


def add_echoes(rows: np.ndarray) -> np.ndarray:
    """Fill the echo columns of a sequence's rows (T, R) in place and return them: each NOTE row's
    echoes come from the NOTE rows before it (see the module's text)."""
    rows[:, _ECHO] = 0
    bar, pos = rows[:, COL["bar"]], rows[:, COL["pos"]]
    idx = np.flatnonzero((rows[:, COL["type"]] == NOTE) & _known(bar))  # sequence order
    if not len(idx):
        return rows
    positions = int(pos[idx].max()) + 1
    track, bar, pos, pitch = rows[idx, COL["track"]], bar[idx], pos[idx], rows[idx, COL["pitch"]]
    bars = MAX_WINDOW_BARS + 2 * _LAG_ROOM

    def onset(b: np.ndarray) -> np.ndarray:
        return (track * bars + b + _LAG_ROOM) * positions + pos

    here = onset(bar)
    order = np.argsort(here, kind="stable")  # by onset, then sequence order
    ranked = here[order]
    starts = np.concatenate([[True], ranked[1:] != ranked[:-1]])
    first_of_group = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.minimum(np.arange(len(order)) - first_of_group, _RANKS - 1)  # rank among the onset's notes
    keys = ranked * _RANKS + rank[order]  # sorted
    for column, lag in zip(_ECHO, ECHO_LAGS):
        wanted = onset(bar + lag) * _RANKS + rank
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        source = order[at]  # index into idx of the note found there
        hit = (keys[at] == wanted) & _known(bar + lag) & (source < np.arange(len(idx)))
        rows[idx, column] = np.where(hit, pitch[source], 0)
    return rows


class EchoIndex:
    """The notes of a sequence so far, by (track, bar feature, position): a new note's echoes one
    lookup per lag, the same values :func:`add_echoes` gives its row."""

    def __init__(self, rows: np.ndarray) -> None:
        self.seen: dict[tuple[int, int, int], list[int]] = {}
        notes = rows[(rows[:, COL["type"]] == NOTE) & _known(rows[:, COL["bar"]])]
        for track, bar, pos, pitch in notes[:, [COL["track"], COL["bar"], COL["pos"], COL["pitch"]]].tolist():
            self.seen.setdefault((track, bar, pos), []).append(pitch)

    def copy(self) -> EchoIndex:
        out = EchoIndex.__new__(EchoIndex)
        out.seen = {key: list(pitches) for key, pitches in self.seen.items()}
        return out

    def echoes(self, track: int, bar: int, pos: int) -> np.ndarray:
        """(len(ECHO_LAGS),) the echoes of the next note at stored (track, bar feature, pos)."""
        out = np.zeros(len(ECHO_LAGS), dtype=np.int64)
        if not _known(bar):
            return out
        rank = min(len(self.seen.get((track, bar, pos), ())), _RANKS - 1)
        for k, lag in enumerate(ECHO_LAGS):
            if _known(bar + lag):
                there = self.seen.get((track, bar + lag, pos))
                if there is not None and rank < len(there):
                    out[k] = there[rank]
        return out

    def add(self, track: int, bar: int, pos: int, pitch: int) -> None:
        """Record a note written at stored (track, bar feature, pos) with stored ``pitch``."""
        if _known(bar):
            self.seen.setdefault((track, bar, pos), []).append(pitch)
