"""A REMI body as a list of timed events, and back: the unit that windows and infill holes cut.

The tokenizer writes each bar as ``Bar TimeSig`` followed by ``Position_p`` groups of tempo changes
and notes (``Program Pitch Velocity Duration``). :func:`parse_body` turns those tokens into
:class:`Event` s that know their bar, position and track; :func:`render` writes events back to
tokens, emitting a ``Position`` only where the position changes, so removing notes (a hole) never
leaves dangling tokens. ``render(parse_body(body)) == body`` for every tokenizer output.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from harmonixr.data.tokenize import HarmonixrTokenizer

BAR, TEMPO, NOTE, MARK = "bar", "tempo", "note", "mark"
NO_TRACK = -2  # events that belong to no track (bars, tempos)


@dataclass(frozen=True)
class Event:
    """One bar line, tempo change, note or infill marker, at ``(bar, pos)`` (pos in grid steps)."""

    kind: str
    bar: int
    pos: int
    tokens: tuple[int, ...]  # the event's tokens, without its Position token
    track: int = NO_TRACK  # track slot of a note, -1 for drums

    @property
    def time(self) -> tuple[int, int]:
        return self.bar, self.pos


class Vocab:
    """Token-id lookups that :mod:`events` and :mod:`harmonixr.models.structure` need, as arrays."""

    def __init__(self, tokenizer: HarmonixrTokenizer) -> None:
        size = len(tokenizer)
        self.tokenizer = tokenizer
        self.bar_id = tokenizer.bar_id
        self.position = np.full(size, -1, dtype=np.int64)  # Position_p -> p
        self.program = np.full(size, NO_TRACK, dtype=np.int64)  # Program_k -> k (-1 drums)
        self.family = [tokenizer.token_type(i) for i in range(size)]
        self.beats_per_bar = np.zeros(size, dtype=np.int64)  # TimeSig_n/d -> n
        self.beat_quarters = np.zeros(size)  # TimeSig_n/d -> 4 / d (quarter notes per beat)
        self.duration_steps = np.zeros(size, dtype=np.int64)  # Duration_b.t.r -> grid steps
        self.value = np.full(size, -1, dtype=np.int64)  # Pitch_p, PitchDrum_p, Velocity_v -> p or v
        self.grid = tokenizer.spec.grid_per_beat  # positions per beat
        for token, i in tokenizer.vocab.items():
            family, _, value = token.partition("_")
            if family == "Position":
                self.position[i] = int(value)
            elif family == "Program":
                self.program[i] = int(value)
            elif family == "TimeSig":
                numerator, denominator = (int(x) for x in value.split("/"))
                self.beats_per_bar[i], self.beat_quarters[i] = numerator, 4 / denominator
            elif family in ("Pitch", "PitchDrum", "Velocity"):
                self.value[i] = int(value)
            elif family == "Duration":
                beats, ticks, res = (int(x) for x in value.split("."))
                self.duration_steps[i] = beats * self.grid + ticks * self.grid // res
        self.position_id = {int(p): i for i, p in enumerate(self.position) if p >= 0}
        self.program_id = {int(k): i for i, k in enumerate(self.program) if k != NO_TRACK}
        self.hole_id = tokenizer.vocab["Infill_Hole"]
        self.fill_id = tokenizer.vocab["Infill_Fill"]
        self.end_id = tokenizer.vocab["Infill_End"]
        self.is_tempo = np.array([f == "Tempo" for f in self.family])
        self.is_pitch = np.array([f in ("Pitch", "PitchDrum") for f in self.family])


def parse_body(vocab: Vocab, body: Sequence[int], first_bar: int = 0) -> list[Event]:
    """Events of a REMI body (no header, no BOS/EOS); ``first_bar`` numbers its first bar.

    Tokens before the first ``Bar`` (a window cut mid-bar) are dropped; a note cut short at the end
    of ``body`` is dropped too, so every event is complete.
    """
    events: list[Event] = []
    bar, pos, k = first_bar - 1, 0, 0
    ids = [int(i) for i in body]
    while k < len(ids) and ids[k] != vocab.bar_id:
        k += 1
    while k < len(ids):
        tok = ids[k]
        family = vocab.family[tok]
        if tok == vocab.bar_id:
            bar, pos = bar + 1, 0
            size = 2 if k + 1 < len(ids) and vocab.family[ids[k + 1]] == "TimeSig" else 1
            events.append(Event(BAR, bar, 0, tuple(ids[k : k + size])))
            k += size
        elif family == "Position":
            pos = int(vocab.position[tok])
            k += 1
        elif family == "Tempo":
            events.append(Event(TEMPO, bar, pos, (tok,)))
            k += 1
        elif family == "Program":
            note = tuple(ids[k : k + 4])
            if len(note) == 4:
                events.append(Event(NOTE, bar, pos, note, int(vocab.program[tok])))
            k += 4
        else:  # a stray token (e.g. an infill marker): not part of the musical content
            k += 1
    return events


def render(vocab: Vocab, events: Iterable[Event]) -> list[int]:
    """Tokens of ``events`` (in time order), with a ``Position`` wherever the position changes."""
    return render_spans(vocab, events)[0]


def render_spans(vocab: Vocab, events: Iterable[Event]) -> tuple[list[int], list[int]]:
    """:func:`render`, and the index in the tokens where each event's own tokens start."""
    out: list[int] = []
    starts: list[int] = []
    last = None
    for event in events:
        if event.kind == BAR:
            last = (event.bar, None)
        elif last != event.time:
            out.append(vocab.position_id[event.pos])
            last = event.time
        starts.append(len(out))
        out.extend(event.tokens)
    return out, starts


def bar_starts(vocab: Vocab, ids: np.ndarray) -> np.ndarray:
    """Indices of the ``Bar`` tokens in ``ids``."""
    return np.flatnonzero(np.asarray(ids) == vocab.bar_id)


def tempo_before(vocab: Vocab, ids: np.ndarray, index: int) -> int | None:
    """The last ``Tempo`` token id before ``ids[index]``, if any (the tempo in force there)."""
    hits = np.flatnonzero(vocab.is_tempo[np.asarray(ids[:index], dtype=np.int64)])
    return int(ids[hits[-1]]) if hits.size else None


def with_tempo(events: list[Event], tempo_id: int | None) -> list[Event]:
    """``events`` with ``tempo_id`` set at their first bar line unless a tempo is already there."""
    if tempo_id is None or not events:
        return events
    first = events[0]
    if any(e.kind == TEMPO and e.time == (first.bar, 0) for e in events[:8]):
        return events
    return [first, Event(TEMPO, first.bar, 0, (tempo_id,)), *events[1:]]

