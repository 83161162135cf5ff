"""Musical structure of a token sequence, as small integer features the model embeds.

A Transformer can infer from REMI tokens where in the bar it is and which track a note belongs to,
but only by attending back to the last ``Position``/``Program``/``Bar`` token. These features hand
it that state directly, one integer per token and feature (0 always means "not yet known"):

- ``type``: the token family (Pitch, Velocity, Duration, Position, Bar, ...);
- ``phase``: position within the beat, 1 + (pos mod grid_per_beat);
- ``beat``: beat within the bar, 1 + min(pos // grid_per_beat, 15);
- ``bar``: bar within a 16-bar phrase, 1 + (bar number mod 16), counted from the piece's start
  (before a window's first ``Bar`` token: the bar before the window, 0 at the piece's start);
- ``track``: the track slot of the current note, 2 + slot (1 = drums).

Each feature describes the state *after* reading the token, so the prediction at that position
(the next token) can use it. Inside an infill segment (after ``Infill_Fill``) the bar counter
restarts at the bar of the hole's first marker, since the fill re-states the hole's bars. In the
"spm" infill layout (an ``Infill_Hole`` before any ``Bar``) the bar of the music after the hole is
not known (0) and ``Infill_Fill`` starts the bars before the hole, from the window's first bar.
:class:`StructureState` is the incremental form the sampler uses; :meth:`Structure.features` runs
it over a whole sequence, so training and sampling can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harmonixr.data.events import NO_TRACK, Vocab

FEATURES = ("type", "phase", "beat", "bar", "track")
MAX_BEATS = 16
PHRASE_BARS = 16


class Structure:
    """Feature sizes and the per-token lookups, computed once from the vocabulary."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        families = sorted(set(vocab.family))
        self.type_of = np.array([1 + families.index(f) for f in vocab.family], dtype=np.int64)
        self.sizes = {
            "type": 1 + len(families),
            "phase": 1 + vocab.grid,
            "beat": 1 + MAX_BEATS,
            "bar": 1 + PHRASE_BARS,
            "track": 2 + vocab.tokenizer.spec.max_tracks,
        }
        assert set(self.sizes) == set(FEATURES)

    def state(self, bar0: int = 0) -> StructureState:
        """A fresh incremental state; ``bar0`` is the piece's bar number of the first ``Bar`` to come."""
        return StructureState(self, bar0)

    def features(self, ids: Sequence[int], bar0: int = 0) -> np.ndarray:
        """``(len(ids), len(FEATURES))`` int64 features of a whole sequence."""
        state = self.state(bar0)
        out = np.zeros((len(ids), len(FEATURES)), dtype=np.int64)
        for t, tok in enumerate(ids):
            out[t] = state.step(int(tok))
        return out


class StructureState:
    """The running bar / position / track state of a sequence, advanced one token at a time."""

    def __init__(self, structure: Structure, bar0: int) -> None:
        self.s = structure
        self.bar = bar0 - 1  # number of the current bar; before the first Bar token, the bar before it
        self.pos = -1  # grid position in the bar; -1 before the first Bar token
        self.track = NO_TRACK
        self.bar0 = bar0
        self.hole_bar: int | None = None  # bar of the first Infill_Hole marker
        self.read_bar = False  # a Bar token was read
        self.suffix = False  # in the music after the hole that the "spm" layout puts first

    def step(self, tok: int) -> tuple[int, int, int, int, int]:
        """Read one token; return its features (the state after it)."""
        v = self.s.vocab
        if tok == v.bar_id:
            self.bar, self.pos, self.read_bar = self.bar + 1, 0, True
        elif v.position[tok] >= 0:
            self.pos = int(v.position[tok])
        elif v.program[tok] != NO_TRACK:
            self.track = int(v.program[tok])
        elif tok == v.hole_id and not self.read_bar:
            self.suffix = True
        elif tok == v.hole_id and self.hole_bar is None:
            self.hole_bar = self.bar
        elif tok == v.fill_id and self.suffix:
            self.suffix, self.bar, self.pos, self.track = False, self.bar0 - 1, -1, NO_TRACK
        elif tok == v.fill_id and self.hole_bar is not None:
            self.bar, self.pos = self.hole_bar - 1, -1  # the fill's first Bar is the hole's bar
        return self.current(tok)

    def current(self, tok: int) -> tuple[int, int, int, int, int]:
        grid = self.s.vocab.grid
        started = self.pos >= 0
        return (
            int(self.s.type_of[tok]),
            1 + self.pos % grid if started else 0,
            1 + min(self.pos // grid, MAX_BEATS - 1) if started else 0,
            1 + self.bar % PHRASE_BARS if self.bar >= 0 and not self.suffix else 0,
            2 + self.track if self.track != NO_TRACK else 0,
        )
