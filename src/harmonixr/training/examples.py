"""Training examples: bar-aligned windows of a piece, plain or rewritten for fill-in-the-middle.

A window starts at a bar line and carries the piece's header (style, controls, instruments) and the
tempo in force. With probability ``infill_rate`` it becomes an infill example::

    header | context, with the hole's notes removed and markers at its edges | Infill_Fill fill Infill_End

The start marker is ``Infill_Hole`` (followed by ``Program_k`` tokens when only some tracks are
removed), the end marker another ``Infill_Hole``; a hole without an end marker runs to the end of the
context (a continuation). The fill re-states the hole's bars (``Bar TimeSig``) and its notes in REMI
order, so it decodes like any body. Holes are whole bars, beat-aligned spans, or some tracks inside
a span (the other tracks stay in the context).

With ``infill_layout: spm`` (suffix, prefix, middle) the same context is cut at the hole's first bar
and the part from there on comes first::

    header | Infill_Hole | context from the hole's first bar, markers included | Infill_Fill |
             context before the hole's first bar | fill Infill_End

The leading ``Infill_Hole`` says which layout follows. The fill comes straight after the bars
before the hole, as in a continuation, and the music after the hole is still in view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harmonixr.data.events import (
    BAR,
    MARK,
    NO_TRACK,
    NOTE,
    TEMPO,
    Event,
    Vocab,
    bar_starts,
    parse_body,
    render,
    tempo_before,
    with_tempo,
)
from harmonixr.training.config import ObjectiveConfig

HOLE_KINDS = ("bars", "span", "tracks")
LAYOUT_TOKENS = 2  # tokens a layout adds to the context's at most (spm: Infill_Hole and Infill_Fill)
# Order of events at one time. Markers come last, so the Program tokens of a marker's track list
# are never followed by a note's Program token.
_RANK = {BAR: 0, TEMPO: 1, NOTE: 2, MARK: 3}


@dataclass(frozen=True)
class Example:
    """One training sequence and what to learn from it."""

    ids: np.ndarray  # (T,) int64 token ids
    target_mask: np.ndarray  # (T,) bool: True where ids[t] is a token the model should learn to predict
    bar0: int  # piece bar number of the window's first bar (for the ``bar`` feature)
    kind: str  # "plain" or one of HOLE_KINDS
    fill_start: int = -1  # index of the token the fill follows (-1: a plain example)


@dataclass(frozen=True)
class Hole:
    """A region of a window: from ``start`` to ``end`` (``(bar, pos)``; ``end=None``: to the end)."""

    start: tuple[int, int]
    end: tuple[int, int] | None
    tracks: tuple[int, ...] = ()  # empty: all tracks

    def contains(self, event: Event) -> bool:
        inside = event.time >= self.start and (self.end is None or event.time < self.end)
        return event.kind == NOTE and inside and (not self.tracks or event.track in self.tracks)


class ExampleMaker:
    """Cuts windows of ``block_size`` tokens from token rows and applies the objective."""

    def __init__(self, vocab: Vocab, block_size: int, objective: ObjectiveConfig) -> None:
        self.v = vocab
        self.block_size = block_size
        self.objective = objective
        tok = vocab.tokenizer
        self.header_ids = tok.header_ids
        self.style_ids = frozenset(i for i in tok.header_ids if tok.token_type(i) == "Style")
        self.control_ids = frozenset(i for i in tok.header_ids if tok.token_type(i).startswith("Ctl"))

    # -- header ----------------------------------------------------------------------------
    def header(self, ids: np.ndarray, rng: np.random.Generator | None) -> list[int]:
        """BOS + the header tokens of a row, style/controls dropped at random when ``rng`` is given."""
        header = [self.v.tokenizer.bos_id]
        for tok in (int(i) for i in ids[1 : 1 + 64]):
            if tok not in self.header_ids:
                break
            if rng is not None and tok in self.style_ids and rng.random() < self.objective.drop_style:
                continue
            if rng is not None and tok in self.control_ids and rng.random() < self.objective.drop_control:
                continue
            header.append(tok)
        return header

    # -- windows ---------------------------------------------------------------------------
    def window_events(self, ids: np.ndarray, begin: int, bar_index: int, budget: int) -> tuple[list[Event], bool]:
        """Events from bar ``bar_index`` (its ``Bar`` token at ``ids[begin]``) on that render to at
        most ``budget`` tokens. Returns the events and whether the window reaches the piece's end.
        """
        stop = min(len(ids), begin + budget + 8)
        body = ids[begin:stop]
        events = with_tempo(parse_body(self.v, body, first_bar=bar_index), tempo_before(self.v, ids, begin))
        kept, used, last = [], 0, None
        for event in events:
            cost = len(event.tokens) + (event.kind != BAR and last != event.time)
            if used + cost > budget:
                return kept, False
            kept.append(event)
            used += cost
            last = (event.bar, None) if event.kind == BAR else event.time
        return kept, stop >= len(ids) - 1

    def plain(self, ids: np.ndarray, bar_index: int, rng: np.random.Generator | None = None,
              starts: np.ndarray | None = None) -> Example:
        """The window at ``bar_index`` as a plain next-token example (EOS kept if the piece ends).

        ``starts``: the piece's ``bar_starts``, when the caller already has them.
        """
        starts = bar_starts(self.v, ids) if starts is None else starts
        header = self.header(ids, rng)
        events, at_end = self.window_events(ids, int(starts[bar_index]), bar_index, self.block_size - len(header) - 1)
        seq = header + render(self.v, events) + ([self.v.tokenizer.eos_id] if at_end else [])
        mask = np.arange(len(seq)) >= len(header)
        return Example(np.asarray(seq, dtype=np.int64), mask, bar_index, "plain")

    def sample(self, ids: np.ndarray, rng: np.random.Generator) -> Example:
        """A random window of a row, plain or infill according to the objective."""
        starts = bar_starts(self.v, ids)
        if len(starts) == 0:
            raise ValueError("a row without Bar tokens cannot be windowed")
        bar_index = int(rng.integers(len(starts)))
        if rng.random() >= self.objective.infill_rate:
            return self.plain(ids, bar_index, rng, starts)
        header = self.header(ids, rng)
        events, _ = self.window_events(ids, int(starts[bar_index]), bar_index, self.block_size - len(header) - 2)
        kind = HOLE_KINDS[int(rng.choice(len(HOLE_KINDS), p=self.objective.hole_weights()))]
        hole = self.choose_hole(events, kind, rng)
        if hole is None:
            return self.plain(ids, bar_index, rng, starts)
        return self.infill(header, events, hole, bar_index, kind) or self.plain(ids, bar_index, rng, starts)

    # -- holes -----------------------------------------------------------------------------
    def choose_hole(self, events: list[Event], kind: str, rng: np.random.Generator) -> Hole | None:
        """A random hole of ``kind`` in the window's complete bars (``None`` if there is no room)."""
        bars = [e for e in events if e.kind == BAR]
        if len(bars) < 2:
            return None
        complete = bars[:-1]  # the last bar may be cut by the token budget
        if kind == "span":
            beats = [(b.bar, k * self.v.grid) for b in complete for k in range(max(1, self.v.beats_per_bar[b.tokens[-1]]))]
            beats.append((bars[-1].bar, 0))
            i = int(rng.integers(len(beats) - 1))
            j = min(len(beats) - 1, i + 1 + int(rng.integers(self.objective.max_hole_bars * 4)))
            return Hole(beats[i], beats[j])
        length = 1 + int(rng.integers(min(self.objective.max_hole_bars, len(complete))))
        first = int(rng.integers(len(complete) - length + 1))
        start = (complete[first].bar, 0)
        end = (complete[first].bar + length, 0)
        if end[0] > complete[-1].bar and rng.random() < self.objective.open_end_rate:
            end = None  # continuation to the end of the window
        if kind == "bars":
            return Hole(start, end)
        tracks = sorted({e.track for e in events if e.kind == NOTE})
        if len(tracks) < 2:
            return Hole(start, end)
        chosen = rng.choice(tracks, size=1 + int(rng.integers(len(tracks) - 1)), replace=False)
        return Hole(start, end, tuple(sorted(int(t) for t in chosen)))

    def infill(self, header: list[int], events: list[Event], hole: Hole, bar0: int, kind: str) -> Example | None:
        """The infill example of ``hole`` in a window, or ``None`` if it cannot fit the block."""
        v = self.v
        start_mark = Event(MARK, *hole.start, (v.hole_id, *(v.program_id[t] for t in hole.tracks)))
        context = [e for e in events if not hole.contains(e)] + [start_mark]
        if hole.end is not None:
            context.append(Event(MARK, *hole.end, (v.hole_id,)))
        context.sort(key=lambda e: (e.bar, e.pos, _RANK[e.kind]))
        last_hole_bar = hole.end[0] - (hole.end[1] == 0) if hole.end else events[-1].bar
        fill = [e for e in events if hole.contains(e) or (e.kind == BAR and hole.start[0] <= e.bar <= last_hole_bar)]
        fill_ids = [*render(v, fill), v.end_id]
        # room for the longest layout: every layout keeps the same context, so all score the same holes
        while len(header) + len(render(v, context)) + LAYOUT_TOKENS + len(fill_ids) > self.block_size:
            if context[-1].kind == MARK or context[-1].time < (hole.end or (1 << 30, 0)):
                return None  # nothing after the hole left to trim
            context.pop()
        ctx_ids = arrange(v, context, hole.start[0], self.objective.infill_layout)
        seq = header + ctx_ids + fill_ids
        mask = np.arange(len(seq)) >= len(header)
        mask &= ~self.given_mask(seq)
        return Example(np.asarray(seq, dtype=np.int64), mask, bar0, kind, len(header) + len(ctx_ids) - 1)

    def given_mask(self, seq: list[int]) -> np.ndarray:
        """True on tokens that state the task rather than the music: markers, their track lists, Fill."""
        v = self.v
        given = np.zeros(len(seq), dtype=bool)
        in_marker = False
        for t, tok in enumerate(seq):
            if tok == v.hole_id or tok == v.fill_id:
                given[t], in_marker = True, tok == v.hole_id
            elif in_marker and v.program[tok] != NO_TRACK:
                given[t] = True
            else:
                in_marker = False
        return given


def arrange(vocab: Vocab, context: list[Event], hole_bar: int, layout: str) -> list[int]:
    """An infill prompt's body in ``layout`` (see the module docstring): "context" renders the
    events then ``Infill_Fill``; "spm" puts the events from bar ``hole_bar`` on first."""
    if layout == "context":
        return [*render(vocab, context), vocab.fill_id]
    before = [e for e in context if e.bar < hole_bar]
    after = [e for e in context if e.bar >= hole_bar]
    return [vocab.hole_id, *render(vocab, after), vocab.fill_id, *render(vocab, before)]
