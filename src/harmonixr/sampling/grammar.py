"""The token grammar, enforced while sampling by masking logits: every sequence decodes.

A REMI body is ``Bar TimeSig`` then, per onset, ``Position`` (optionally ``Tempo``) and notes
``Program Pitch Velocity Duration``. :class:`GrammarState` follows a sequence token by token and
:meth:`Grammar.allowed` says which tokens may come next:

- the next token family follows the order above;
- a ``Position`` lies after the current one (time never goes backwards) and inside the bar
  (numerator x grid positions);
- a ``Program`` names a track slot the header declares, and a drum slot takes ``PitchDrum``;
- ``EOS`` only where a note or bar is complete.

Tokens outside the grammar (header, infill, special tokens) are never allowed in a body.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from harmonixr.data.events import NO_TRACK, Vocab

START, AFTER_BAR, AFTER_TIMESIG, AFTER_POSITION, AFTER_TEMPO, AFTER_PROGRAM, AFTER_PITCH, AFTER_VELOCITY, AFTER_NOTE = range(9)


class GrammarState:
    """Where a body stands: the last token's role, the position in the bar, the bar length."""

    def __init__(self) -> None:
        self.kind = START
        self.pos = -1
        self.bar_positions = 0
        self.track = NO_TRACK

    def step(self, vocab: Vocab, tok: int) -> None:
        family = vocab.family[tok]
        if tok == vocab.bar_id:
            self.kind, self.pos = AFTER_BAR, -1
        elif family == "TimeSig":
            self.kind, self.bar_positions = AFTER_TIMESIG, int(vocab.beats_per_bar[tok]) * vocab.grid
        elif family == "Position":
            self.kind, self.pos = AFTER_POSITION, int(vocab.position[tok])
        elif family == "Tempo":
            self.kind = AFTER_TEMPO
        elif family == "Program":
            self.kind, self.track = AFTER_PROGRAM, int(vocab.program[tok])
        elif family in ("Pitch", "PitchDrum"):
            self.kind = AFTER_PITCH
        elif family == "Velocity":
            self.kind = AFTER_VELOCITY
        elif family == "Duration":
            self.kind = AFTER_NOTE


class Grammar:
    """Allowed-next-token masks over the vocabulary for the bodies of pieces with ``tracks`` slots."""

    def __init__(self, vocab: Vocab, tracks: Sequence[int]) -> None:
        """``tracks``: the GM program of each slot, in header order (-1 for drums)."""
        self.vocab = vocab
        size = len(vocab.family)

        def family(*names: str) -> torch.Tensor:
            return torch.tensor([f in names for f in vocab.family])

        slots = [k for k, program in enumerate(tracks) if program >= 0] + ([-1] if -1 in tracks else [])
        programs = torch.zeros(size, dtype=torch.bool)
        for slot in slots:
            programs[vocab.program_id[slot]] = True
        if not slots:
            raise ValueError("a piece needs at least one track")
        eos = torch.zeros(size, dtype=torch.bool)
        eos[vocab.tokenizer.eos_id] = True
        bar = torch.zeros(size, dtype=torch.bool)
        bar[vocab.bar_id] = True
        self.positions = torch.from_numpy(vocab.position)  # (V,) -1 where not a Position
        self.families = {
            START: bar,
            AFTER_BAR: family("TimeSig"),
            AFTER_TIMESIG: bar | eos,  # + positions
            AFTER_POSITION: family("Tempo") | programs,
            AFTER_TEMPO: programs | bar,  # + positions
            AFTER_PROGRAM: family("Pitch"),
            AFTER_PITCH: family("Velocity"),
            AFTER_VELOCITY: family("Duration"),
            AFTER_NOTE: programs | bar | eos,  # + positions
        }
        self.drum_pitch = family("PitchDrum")

    def allowed(self, state: GrammarState) -> torch.Tensor:
        """(V,) bool: the tokens that may follow ``state``."""
        mask = self.families[state.kind]
        if state.kind == AFTER_PROGRAM and state.track == -1:
            mask = self.drum_pitch
        if state.kind in (AFTER_TIMESIG, AFTER_TEMPO, AFTER_NOTE):
            mask = mask | ((self.positions > state.pos) & (self.positions < state.bar_positions))
        return mask


class GrammarConstraint:
    """The sampler's constraint hook: one :class:`GrammarState` per row, advanced on each call."""

    def __init__(self, grammar: Grammar, rows: int, states: Sequence[GrammarState] | None = None) -> None:
        self.grammar = grammar
        self.states = list(states) if states is not None else [GrammarState() for _ in range(rows)]
        self.seen = [0] * rows

    def __call__(self, logits: torch.Tensor, out: list[list[int]]) -> torch.Tensor:
        masks = []
        for row, tokens in enumerate(out):
            for tok in tokens[self.seen[row] :]:
                self.states[row].step(self.grammar.vocab, tok)
            self.seen[row] = len(tokens)
            masks.append(self.grammar.allowed(self.states[row]))
        allowed = torch.stack(masks).to(logits.device)  # (B, V)
        return logits.masked_fill(~allowed, float("-inf"))
