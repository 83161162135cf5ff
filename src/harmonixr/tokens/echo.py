"""Echoes: what the same track played at the same place some bars away, and its last note, as columns of a note's row.

Music repeats at distances of whole bars: a folk tune's second strain, a chorus, a bass riff, a
drum groove. A Transformer can learn to look a phrase up by attention, but the note-level model
did not within its training budget: a test tune played twice cost it as many bits the second
time as the first (25 folk tunes: 4.55 and 4.47 bits per note; ``benchmarks/echo.py``). So each note's
row says what it would be if the music repeated: for every lag of :data:`ECHO_LAGS` (bars; negative
is earlier), the stored pitch of the note at the same track, position in the bar and rank among
the track's notes at that onset, ``lag`` bars away, if that note comes **earlier in the sequence**
(0: none). A model reads only what it has read: in a plain sequence the later lags are always 0;
in an infill sequence the fill hears the context after the hole through them.

A fixed lag sees only the repeats at its distance; a chorus that comes back 24 bars on, or a tune
played again after its 13 bars, it misses. The **matched echo** (column ``echo-match``) looks at
the lag where the music matched: for a note in bar b, the earlier bar c whose cells (track,
position, pitch) are most alike to bar b-1's (F1 of the two sets, among the notes read before
this one; the nearest on a tie, none when nothing is alike), and the lag is b-1-c. On test
pieces, within the 1,000 notes before, it holds the pitch of 48% of POP909's notes where the best
fixed lag holds 23%, 29% of the chorales' against 16% (``benchmarks/repeats.py``).

The **last note** (columns ``last-pitch``, ``last-dur``, ``last-vel``) is the pitch, duration bin
and velocity of the latest note its track played before this one in the sequence: what a voice
moves from. The backbone's state after a note must otherwise carry every track's last note at once,
not knowing which track writes next; told it once the track is chosen, the heads read the step,
the rhythm and the dynamics of that voice directly.

The **echoed note** (columns ``echo-dur``, ``echo-vel``) is the duration bin and velocity of the
note the nearest earlier lag holds (1 bar back, else 2, 4, 8, 16): how the note it would repeat
was held and struck. A folk tune's rhythm comes back where its pitches do not; on test pieces the
duration of 64% of folk notes equals their track's last note's, and of 82% that or the echoed
note's (chorales 61% and 77%, classical pieces 48% and 63%; ad hoc, stop 51).

The **harmony at its onset** (columns ``sound-0``, ``sound-4``, ``sound-8``): the pitch classes of
the melodic notes read before it (drums apart) that sound at its onset, struck in its bar at or
before it or in the bar before and still held, as a 12-bit set in groups of four. Attention can
find the notes of the note's own onset (they come just before it), but a chord struck two beats
ago sits dozens of rows back in a 9-track song, and in a hole of some tracks the kept tracks'
notes inside the hole sit before the whole context: the alto written under three voices is told
what they sound at each of its onsets.

The model embeds a row's echoes with its other columns, and the field heads are told the next
note's echoes once its bar, position and track are chosen (as they are told its instrument):
copying, where the music repeats, is then one lookup away. :func:`add_echoes` fills the columns of
a whole sequence (the prompt format calls it for every sequence it builds); :class:`EchoIndex` gives
the same values one note at a time, for the sampler. ``tests/test_echo.py`` holds them equal.
"""

from __future__ import annotations

import numpy as np

from harmonixr.tokens.vocab import (
    COL,
    DRUM_PROGRAM,
    ECHO_COLUMNS,
    ECHO_LAGS,
    ECHO_NEAREST,
    ECHO_NOTE_COLUMNS,
    ECHO_NOTE_FIELDS,
    LAG_COLUMNS,
    LAST_NOTE_COLUMNS,
    LAST_NOTE_FIELDS,
    MATCHED_COLUMN,
    MAX_WINDOW_BARS,
    NOTE,
    PC_GROUP,
    SOUNDING_COLUMNS,
    NoteVocab,
)

_LAG_ROOM = 32  # bar codes are offset by this, so that a lagged bar never wraps into another track's
_RANKS = 1 << 10  # more notes than this at one onset of one track share the last rank's echo
_LAGGED = [COL[name] for name in LAG_COLUMNS]
_MATCHED = COL[MATCHED_COLUMN]
_LAST = [COL[name] for name in LAST_NOTE_COLUMNS]
_LAST_OF = [COL[name] for name in LAST_NOTE_FIELDS]  # the note columns they copy
_PITCHES = 129  # stored pitch values (0: none)
_LAST_AT = slice(ECHO_COLUMNS.index(LAST_NOTE_COLUMNS[0]), ECHO_COLUMNS.index(LAST_NOTE_COLUMNS[-1]) + 1)
_ECHOED = [COL[name] for name in ECHO_NOTE_COLUMNS]
_ECHOED_OF = [COL[name] for name in ECHO_NOTE_FIELDS]  # the note columns they copy
_ECHOED_AT = slice(ECHO_COLUMNS.index(ECHO_NOTE_COLUMNS[0]), ECHO_COLUMNS.index(ECHO_NOTE_COLUMNS[-1]) + 1)
_NEAREST_AT = [ECHO_LAGS.index(lag) for lag in ECHO_NEAREST]
_SOUNDING_AT = slice(ECHO_COLUMNS.index(SOUNDING_COLUMNS[0]), ECHO_COLUMNS.index(SOUNDING_COLUMNS[-1]) + 1)
_SOUNDING = [COL[name] for name in SOUNDING_COLUMNS]
_DRUMS = DRUM_PROGRAM + 1  # the program column of a drum note


def _known(bar: np.ndarray | int) -> np.ndarray | bool:
    """Whether rows at the stored ``bar`` feature may echo or be echoed: inside the window and not
    at its saturated last value (where bars are no longer told apart)."""
    return (bar > 0) & (bar < MAX_WINDOW_BARS)


def sounding_values(bits: np.ndarray | int) -> np.ndarray:
    """12-bit pitch-class sets (...,) -> their stored sounding columns (..., 3): 1 + each group's bits."""
    shifts = PC_GROUP * np.arange(len(SOUNDING_COLUMNS))
    return 1 + ((np.asarray(bits, dtype=np.int64)[..., None] >> shifts) & ((1 << PC_GROUP) - 1))


def held(vocab: NoteVocab, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For NOTE rows (N, R): where each sounds, in stored positions of its bar (``end``, excluded)
    and of the next (``over``: sounding up to and with that stored position, < 1 when it does not
    reach it), and its pitch class as one bit."""
    pos, dur, meter = rows[:, COL["pos"]], rows[:, COL["dur"]], rows[:, COL["meter"]]
    end = pos + vocab.durations[np.maximum(dur - 1, 0)]
    return end, end - 1 - vocab.meter_positions(meter), np.left_shift(1, (rows[:, COL["pitch"]] - 1) % 12)


def add_sounding(rows: np.ndarray, vocab: NoteVocab, idx: np.ndarray) -> None:
    """Fill the sounding columns of the NOTE rows ``idx`` (sequence order, known bars) in place."""
    bar, pos = rows[idx, COL["bar"]], rows[idx, COL["pos"]]
    end, over, bit = held(vocab, rows[idx])
    melodic = rows[idx, COL["program"]] != _DRUMS
    bits = np.zeros(len(idx), dtype=np.int64)
    for b in np.unique(bar):
        here = np.flatnonzero(bar == b)  # (H,) its notes, in sequence order
        same = here[melodic[here]]
        before = np.flatnonzero((bar == b - 1) & melodic & (over >= 1))
        at = pos[here][:, None]  # (H, 1)
        for sources, sounds in ((same, (pos[same][None, :] <= at) & (end[same][None, :] > at)),
                                (before, over[before][None, :] >= at)):
            if len(sources):
                read = sources[None, :] < here[:, None]  # (H, S): read before the note
                bits[here] |= np.bitwise_or.reduce(np.where(read & sounds, bit[sources][None, :], 0), axis=1)
    rows[idx[:, None], _SOUNDING] = sounding_values(bits)


def add_echoes(rows: np.ndarray, vocab: NoteVocab, matched: bool = True, sounding: bool = True) -> np.ndarray:
    """Fill the echo columns of a sequence's rows (T, R) in place and return them: each NOTE row's
    echoes come from the NOTE rows before it (see the module's text). ``matched=False`` leaves the
    matched echo 0 (for a model that does not read it: it costs the most to work out), and
    ``sounding=False`` the sounding columns."""
    rows[:, [*_LAGGED, _MATCHED, *_LAST, *_ECHOED, *_SOUNDING]] = 0
    bar, pos = rows[:, COL["bar"]], rows[:, COL["pos"]]
    idx = np.flatnonzero((rows[:, COL["type"]] == NOTE) & _known(bar))  # sequence order
    if not len(idx):
        return rows
    if sounding:
        add_sounding(rows, vocab, idx)
    by_track = idx[np.argsort(rows[idx, COL["track"]], kind="stable")]  # each track's notes in sequence order
    follows = rows[by_track[1:], COL["track"]] == rows[by_track[:-1], COL["track"]]
    rows[np.ix_(by_track[1:][follows], _LAST)] = rows[np.ix_(by_track[:-1][follows], _LAST_OF)]
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

    def echo(lag: np.ndarray | int) -> np.ndarray:  # (notes,) the note ``lag`` bars away, read before (-1: none)
        wanted = onset(bar + lag) * _RANKS + rank
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        source = order[at]  # index into idx of the note found there
        hit = (keys[at] == wanted) & _known(bar + lag) & (source < np.arange(len(idx)))
        return np.where(hit, source, -1)

    sources = [echo(lag) for lag in ECHO_LAGS]
    for column, source in zip(_LAGGED, sources):
        rows[idx, column] = np.where(source >= 0, pitch[source], 0)
    nearest = np.full(len(idx), -1)
    for at in _NEAREST_AT:
        nearest = np.where(nearest >= 0, nearest, sources[at])
    rows[idx[:, None], _ECHOED] = np.where(nearest[:, None] >= 0, rows[idx[nearest][:, None], _ECHOED_OF], 0)
    if matched:
        lags = _matched_lags(track, bar, pos, pitch, positions)
        source = echo(-lags)
        rows[idx, _MATCHED] = np.where((lags > 0) & (source >= 0), pitch[source], 0)
    return rows


def _matched_lags(track: np.ndarray, bar: np.ndarray, pos: np.ndarray, pitch: np.ndarray, positions: int) -> np.ndarray:
    """(notes,) each note's matched lag (0: none), its notes in sequence order, all at known bars.

    The notes read before a note, in the bars before its own, are those of the runs before its
    run (a run: notes whose bars do not decrease, as each segment of a sequence is written) and
    of its own run in those bars: so one table of lags per run, from the cells of the runs so far."""
    runs = np.concatenate([[0], np.cumsum(np.diff(bar) < 0)])
    present, at_bar = np.unique(bar, return_inverse=True)  # the bars with notes, sorted
    cells, at_cell = np.unique((track * positions + pos) * _PITCHES + pitch, return_inverse=True)
    words = -(-len(cells) // 64)
    seen = np.zeros((len(present), words * 64), dtype=bool)  # the bar plays the cell
    previous = np.searchsorted(present, present - 1)  # each present bar's bar before, among the present
    has_previous = (previous < len(present)) & (present[np.minimum(previous, len(present) - 1)] == present - 1)
    previous = np.minimum(previous, len(present) - 1)
    order = np.arange(len(present))
    earlier = order[None, :] < order[:, None]  # [p, q]: present bar q comes before present bar p
    lags = np.zeros(len(bar), dtype=np.int64)
    for run in range(int(runs[-1]) + 1):
        members = runs == run
        seen[at_bar[members], at_cell[members]] = True
        packed = np.packbits(seen, axis=1).view(np.uint64)  # (P, words): no BLAS call, whose idle threads
        common = np.bitwise_count(packed[:, None, :] & packed[None, :, :]).sum(-1).astype(np.float64)  # slow the next prefill
        sizes = np.diag(common)
        f1 = np.where(earlier, 2 * common / np.maximum(sizes[:, None] + sizes[None, :], 1), -1.0)  # as EchoIndex's
        nearest_best = len(present) - 1 - np.argmax(f1[:, ::-1], axis=1)  # per bar p, the latest q of the best F1
        best = f1[order, nearest_best]
        p = previous[at_bar[members]]  # a note's bar before, among the present bars
        lag = present[p] - present[nearest_best[p]]
        lags[members] = np.where(has_previous[at_bar[members]] & (best[p] > 0), lag, 0)
    return lags


class EchoIndex:
    """The notes of a sequence so far, by (track, bar feature, position): a new note's echoes one
    lookup per lag, the same values :func:`add_echoes` gives its row (with ``matched=False``, the
    matched echo 0, as there: the bars' cells are then not kept; with ``sounding=False``, for a
    model that does not read them, the sounding columns 0 and the held notes not kept)."""

    def __init__(self, rows: np.ndarray, vocab: NoteVocab, matched: bool = True, sounding: bool = True) -> None:
        self.vocab, self.matched, self.sounding = vocab, matched, sounding
        self.seen: dict[tuple[int, int, int], list[tuple[int, int, int]]] = {}  # its notes' (pitch, dur, vel)
        self.cells: dict[int, set[tuple[int, int, int]]] = {}  # bar -> its (track, pos, pitch) cells
        self.lags: dict[int, int] = {}  # bar -> its matched lag, until a note comes in an earlier bar
        self.lagged_to = 0  # the latest bar in ``lags``
        self.last: dict[int, tuple[int, int, int]] = {}  # track -> its last note's (pitch, dur, vel)
        self.held: dict[int, list[tuple[int, int, int, int]]] = {}  # bar -> its melodic notes' (pos, end, over, bit)
        for row in rows[(rows[:, COL["type"]] == NOTE) & _known(rows[:, COL["bar"]])].tolist():  # ints: no numpy scalars
            self.add(row)

    def copy(self) -> EchoIndex:
        out = EchoIndex.__new__(EchoIndex)
        out.vocab, out.matched, out.sounding = self.vocab, self.matched, self.sounding
        out.held = {bar: list(notes) for bar, notes in self.held.items()}
        out.seen = {key: list(pitches) for key, pitches in self.seen.items()}
        out.cells = {bar: set(cells) for bar, cells in self.cells.items()}
        out.lags, out.lagged_to, out.last = dict(self.lags), self.lagged_to, dict(self.last)
        return out

    def echoes(self, track: int, bar: int, pos: int) -> np.ndarray:
        """(len(ECHO_COLUMNS),) the echoes of the next note at stored (track, bar feature, pos):
        the fixed lags', the matched one, its track's last note, the echoed note, then the pitch
        classes sounding."""
        out = np.zeros(len(ECHO_COLUMNS), dtype=np.int64)
        if not _known(bar):
            return out
        out[_LAST_AT] = self.last.get(track, 0)
        if self.sounding:
            bits = 0
            for start, end, _, bit in self.held.get(bar, ()):
                if start <= pos < end:
                    bits |= bit
            for _, _, over, bit in self.held.get(bar - 1, ()):
                if over >= pos:
                    bits |= bit
            out[_SOUNDING_AT] = sounding_values(bits)
        rank = min(len(self.seen.get((track, bar, pos), ())), _RANKS - 1)
        found = {}  # fixed lag -> the note it holds
        for k, lag in enumerate((*ECHO_LAGS, -self.matched_lag(bar) if self.matched else 0)):
            if lag and (note := self._note_at(track, bar + lag, pos, rank)):
                out[k] = note[0]
                if k < len(ECHO_LAGS):
                    found[lag] = note
        nearest = next((found[lag] for lag in ECHO_NEAREST if lag in found), None)
        if nearest is not None:
            out[_ECHOED_AT] = nearest[1:]
        return out

    def _note_at(self, track: int, bar: int, pos: int, rank: int) -> tuple[int, int, int] | None:
        """The (pitch, dur, vel) of the track's note of ``rank`` at stored (bar, pos), if read and the bar known."""
        there = self.seen.get((track, bar, pos)) if _known(bar) else None
        return there[rank] if there is not None and rank < len(there) else None

    def matched_lag(self, bar: int) -> int:
        """The lag at which the notes so far of bar ``bar - 1`` best match an earlier bar's (0: none)."""
        if bar not in self.lags:
            before, best, self.lags[bar], self.lagged_to = self.cells.get(bar - 1), 0.0, 0, max(self.lagged_to, bar)
            if before:
                for other in sorted((c for c in self.cells if c < bar - 1), reverse=True):  # the nearest first
                    there = self.cells[other]
                    f1 = 2 * len(before & there) / (len(before) + len(there))
                    if f1 > best:
                        best, self.lags[bar] = f1, bar - 1 - other
        return self.lags[bar]

    def add(self, row: np.ndarray | list[int]) -> None:
        """Record a NOTE row (R,) read or written."""
        track, bar, pos, pitch, dur, vel = (int(row[c]) for c in (COL["track"], COL["bar"], COL["pos"], *_LAST_OF))
        if _known(bar):
            self.last[track] = (pitch, dur, vel)
            if self.sounding and row[COL["program"]] != _DRUMS:
                end, over, bit = (int(x[0]) for x in held(self.vocab, np.asarray(row)[None]))
                self.held.setdefault(bar, []).append((pos, end, over, bit))
            self.seen.setdefault((track, bar, pos), []).append((pitch, dur, vel))
            if not self.matched:
                return
            self.cells.setdefault(bar, set()).add((track, pos, pitch))
            if self.lagged_to > bar:  # the lags of later bars may have changed
                self.lags = {b: lag for b, lag in self.lags.items() if b <= bar}
                self.lagged_to = max(self.lags, default=0)
