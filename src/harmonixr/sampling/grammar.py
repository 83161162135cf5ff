"""Constrained decoding: the token grammar and the caller's rules, enforced by masking logits.

A REMI body is ``Bar TimeSig`` then, per onset, ``Position`` (optionally ``Tempo``) and notes
``Program Pitch Velocity Duration``. :class:`GrammarState` follows a sequence token by token and
:meth:`Grammar.allowed` says which tokens may come next. Always:

- the next token family follows the order above, and only a complete note or bar may end;
- a ``Position`` lies after the current one (time never goes backwards) and inside the bar;
- a ``Program`` names a track slot that :class:`Rules` allows, a drum slot takes ``PitchDrum``;
- header, infill and special tokens never appear in a body.

:class:`Rules` adds what a task needs: how many bars (at most / exactly), forced time signatures
and first/last positions (an infill fill stays inside its hole), an end token (``EOS`` or
``Infill_End``), a pitch range, a scale (pitch classes), a maximum polyphony, a maximum of notes
per bar and in all. Every mask leaves at least one way forward, so a row never gets stuck. Once a
row has all the bars it may have, the probability the model gives to another ``Bar`` goes to the
end token: for the model a new bar is where the music goes on, for the request it is where it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from harmonixr.data.events import NO_TRACK, Vocab

START, AFTER_BAR, AFTER_TIMESIG, AFTER_POSITION, AFTER_TEMPO, AFTER_PROGRAM, AFTER_PITCH, AFTER_VELOCITY, AFTER_NOTE = range(9)
UNLIMITED = 1 << 30


@dataclass(frozen=True)
class Rules:
    """What a generated body must respect beyond the grammar (defaults: nothing more)."""

    tracks: tuple[int, ...]  # track slots that may play (-1: drums)
    max_bars: int = UNLIMITED  # Bar tokens at most
    min_bars: int = 0  # Bar tokens before the end token is allowed
    time_signatures: tuple[int, ...] = ()  # forced TimeSig id of bar 0, 1, ... (empty: model's choice)
    first_pos: int = 0  # earliest position in the first bar (an infill span starting mid-bar)
    last_pos: int = 0  # positions of bar max_bars - 1 stay below this (0: the whole bar)
    end_id: int | None = None  # EOS or Infill_End (None: the vocabulary's EOS)
    tempo: bool = True  # Tempo tokens allowed
    pitch_range: tuple[int, int] = (0, 127)
    scale: frozenset[int] | None = None  # allowed pitch classes of melodic notes
    max_polyphony: int = UNLIMITED  # sounding notes at once, all tracks
    max_notes_per_bar: int = UNLIMITED
    max_notes: int = UNLIMITED


@dataclass
class GrammarState:
    """Where a body stands: the last token's role, time, bar count, the notes still sounding."""

    kind: int = START
    pos: int = -1
    bar_positions: int = 0  # grid positions in the current bar
    bars: int = 0  # Bar tokens read
    bar_start: int = 0  # absolute grid time of the current bar
    track: int = NO_TRACK
    notes: int = 0
    bar_notes: int = 0
    ends: list[int] = field(default_factory=list)  # absolute end times of notes that started

    def step(self, vocab: Vocab, tok: int) -> None:
        family = vocab.family[tok]
        if tok == vocab.bar_id:
            self.bar_start += self.bar_positions if self.bars else 0
            self.kind, self.pos, self.bars, self.bar_notes = AFTER_BAR, -1, self.bars + 1, 0
        elif family == "TimeSig":
            self.kind, self.bar_positions = AFTER_TIMESIG, int(vocab.beats_per_bar[tok]) * vocab.grid
        elif family == "Position":
            self.kind, self.pos = AFTER_POSITION, int(vocab.position[tok])
            now = self.bar_start + self.pos
            self.ends = [end for end in self.ends if end > now]
        elif family == "Tempo":
            self.kind = AFTER_TEMPO
        elif family == "Program":
            self.kind, self.track = AFTER_PROGRAM, int(vocab.program[tok])
        elif family in ("Pitch", "PitchDrum"):
            self.kind = AFTER_PITCH
        elif family == "Velocity":
            self.kind = AFTER_VELOCITY
        elif family == "Duration":
            self.kind, self.notes, self.bar_notes = AFTER_NOTE, self.notes + 1, self.bar_notes + 1
            self.ends.append(self.bar_start + max(self.pos, 0) + int(vocab.duration_steps[tok]))


class Grammar:
    """Allowed-next-token masks (numpy bool, (V,)) for bodies under ``rules``."""

    def __init__(self, vocab: Vocab, rules: Rules | Sequence[int]) -> None:
        """``rules``: a :class:`Rules`, or the GM programs of the header's slots (-1 drums): all may play."""
        if not isinstance(rules, Rules):
            programs = list(rules)
            rules = Rules(tuple(k for k, p in enumerate(programs) if p >= 0) + ((-1,) if -1 in programs else ()))
        if not rules.tracks:
            raise ValueError("a piece needs at least one track")
        self.vocab, self.rules = vocab, rules
        fam = np.asarray(vocab.family)
        size = len(fam)

        def one(token_id: int) -> np.ndarray:
            mask = np.zeros(size, dtype=bool)
            mask[token_id] = True
            return mask

        self.positions = vocab.position  # (V,) -1 where not a Position
        self.programs = np.isin(vocab.program, rules.tracks) & (fam == "Program")
        pitch_value = vocab.value
        low, high = rules.pitch_range
        melodic = (fam == "Pitch") & (pitch_value >= low) & (pitch_value <= high)
        if rules.scale is not None:
            melodic &= np.isin(pitch_value % 12, sorted(rules.scale))
        if not melodic.any():
            raise ValueError(f"no pitch satisfies range {rules.pitch_range} and scale {sorted(rules.scale or [])}")
        self.melodic, self.drum_pitch = melodic, fam == "PitchDrum"
        self.end_id = rules.end_id if rules.end_id is not None else vocab.tokenizer.eos_id
        self.bar, self.end = one(vocab.bar_id), one(self.end_id)
        self.timesig, self.tempo = fam == "TimeSig", (fam == "Tempo") & rules.tempo
        self.velocity, self.duration = fam == "Velocity", fam == "Duration"
        self.forced_timesig = [one(t) for t in rules.time_signatures]

    def allowed(self, state: GrammarState) -> np.ndarray:
        """(V,) bool: the tokens that may follow ``state``."""
        r, kind = self.rules, state.kind
        if kind == AFTER_BAR:
            index = state.bars - 1
            return self.forced_timesig[index] if index < len(self.forced_timesig) else self.timesig
        if kind == AFTER_PROGRAM:
            return self.drum_pitch if state.track == -1 else self.melodic
        if kind == AFTER_PITCH:
            return self.velocity
        if kind == AFTER_VELOCITY:
            return self.duration
        more_bars = state.bars < r.max_bars
        may_end = state.bars >= r.min_bars and kind != AFTER_TEMPO
        if kind == START:
            return self.bar if more_bars else self.end
        if kind == AFTER_POSITION:
            return self.tempo | self.programs  # a position is only offered where a note may start
        if state.notes >= r.max_notes:  # the notes asked for are all there: end (or close the bars)
            return self.end if state.bars >= r.min_bars or not more_bars else self.bar
        notes_left = state.bar_notes < r.max_notes_per_bar
        mask = self.bar & more_bars | self.end & may_end
        if kind in (AFTER_TEMPO, AFTER_NOTE) and notes_left and self._room(state, state.pos):
            mask = mask | self.programs
        if notes_left:
            mask = mask | self._positions(state)
        if not mask.any():  # e.g. a tempo at the last allowed position: end the bar anyway
            mask = self.end if state.bars >= r.min_bars else self.bar
        return mask

    def _positions(self, state: GrammarState) -> np.ndarray:
        r = self.rules
        stop = state.bar_positions
        if r.last_pos and state.bars == r.max_bars:
            stop = min(stop, r.last_pos)
        first = max(state.pos + 1, r.first_pos if state.bars == 1 else 0)
        mask = (self.positions >= first) & (self.positions < stop)
        if r.max_polyphony < UNLIMITED and state.ends:
            for p in np.flatnonzero(mask):
                if not self._room(state, int(self.positions[p])):
                    mask[p] = False
        return mask

    def _room(self, state: GrammarState, pos: int) -> bool:
        """Whether one more note may start at ``pos`` of the current bar (polyphony)."""
        now = state.bar_start + pos
        return sum(end > now for end in state.ends) < self.rules.max_polyphony


class GrammarConstraint:
    """The sampler's constraint: one :class:`GrammarState` per row, advanced with each token."""

    def __init__(self, grammar: Grammar, rows: int, states: Sequence[GrammarState] | None = None) -> None:
        self.grammar = grammar
        self.states = list(states) if states is not None else [GrammarState() for _ in range(rows)]

    def allowed(self) -> np.ndarray:
        """(rows, V) bool."""
        return np.stack([self.grammar.allowed(state) for state in self.states])

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """(rows, V) logits with forbidden tokens at -inf. In the last bar a region may have, the
        model's wish for another ``Bar`` means "this is the end": its probability goes to the end token."""
        out = np.where(self.allowed(), logits, -np.inf)
        end = self.grammar.end_id
        for row in np.flatnonzero(self.end_merges(out)):
            out[row, end] = np.logaddexp(out[row, end], logits[row, self.grammar.vocab.bar_id])
        return out

    def end_merges(self, masked: np.ndarray) -> np.ndarray:
        """(rows,) bool: the rows where :meth:`apply` gives the end token the ``Bar`` probability
        (in the last bar a region may have, the end token allowed); ``masked``: the masked logits."""
        last = np.array([state.bars >= self.grammar.rules.max_bars for state in self.states])
        return last & np.isfinite(masked[:, self.grammar.end_id])

    def advance(self, tokens: Sequence[int]) -> None:
        for state, tok in zip(self.states, tokens):
            state.step(self.grammar.vocab, int(tok))
