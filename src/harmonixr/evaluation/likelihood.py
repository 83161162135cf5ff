"""Likelihood in bits per note: how many bits a model needs to write the music, note by note.

Every model (Transformer, LSTM, encoder-decoder, n-gram) scores the same examples: the plain
windows of :func:`~harmonixr.training.batches.scoring_windows` (every body token of every test piece
once) and fixed infill holes (the fill tokens only). The total is split by what the tokens say:

- ``pitch``, ``velocity``, ``duration``: the three tokens of each note after its track;
- ``timing``: ``Bar``, ``TimeSig`` and ``Position`` (where notes start);
- ``track``: ``Program`` (which part plays the note);
- ``other``: tempo changes and the end tokens.

Each part is divided by the number of notes, so the parts add up to the overall bits per note.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harmonixr.data.events import Vocab
from harmonixr.models.baselines import logits_and_targets
from harmonixr.models.ngram import NGramModel
from harmonixr.models.structure import Structure
from harmonixr.runtime import autocast
from harmonixr.training.batches import IGNORE, collate
from harmonixr.training.examples import Example

GROUPS = ("pitch", "velocity", "duration", "timing", "track", "other")
_FAMILY_GROUP = {"Pitch": "pitch", "PitchDrum": "pitch", "Velocity": "velocity", "Duration": "duration",
                 "Bar": "timing", "TimeSig": "timing", "Position": "timing", "Program": "track"}


@dataclass
class Tally:
    """Bits and notes, per token group, for one model on one set of examples."""

    bits: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    notes: int = 0
    tokens: int = 0

    def add(self, group_of: np.ndarray, is_note: np.ndarray, targets: np.ndarray, nats: np.ndarray) -> None:
        bits = nats / math.log(2)
        for g, name in enumerate(GROUPS):
            self.bits[name] += float(bits[group_of[targets] == g].sum())
        self.notes += int(is_note[targets].sum())
        self.tokens += len(targets)

    def per_note(self) -> dict[str, float]:
        notes = max(self.notes, 1)
        out = {"bits_per_note": sum(self.bits.values()) / notes}
        out.update({name: self.bits[name] / notes for name in GROUPS})
        return out


class Scorer:
    """Per-token NLL of examples under a torch model or the n-gram model, tallied by group and style."""

    def __init__(self, vocab: Vocab, structure: Structure, batch_size: int = 16,
                 device: torch.device = torch.device("cpu"), dtype: torch.dtype | None = None) -> None:
        self.vocab, self.structure = vocab, structure
        self.batch_size, self.device, self.dtype = batch_size, device, dtype
        self.group_of = np.array([GROUPS.index(_FAMILY_GROUP.get(f, "other")) for f in vocab.family])

    def token_nll(self, model: nn.Module | NGramModel, examples: Sequence[Example]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield (example index, target ids, nats) for every example."""
        if isinstance(model, NGramModel):
            for i, example in enumerate(examples):
                yield (i, *model.nll(example))
            return
        model.eval()
        pad = self.vocab.tokenizer.pad_id
        for start in range(0, len(examples), self.batch_size):
            chunk = examples[start : start + self.batch_size]
            batch = collate(chunk, self.structure, ["?"] * len(chunk), pad).to(self.device)
            with torch.no_grad(), autocast(self.device, self.dtype):
                logits, targets = logits_and_targets(model, batch)
                nats = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
            targets, nats = targets.cpu().numpy(), nats.float().cpu().numpy()
            for b in range(len(chunk)):
                keep = targets[b] != IGNORE
                yield start + b, targets[b][keep], nats[b][keep]

    def score(self, model: nn.Module | NGramModel, examples: Sequence[Example], styles: Sequence[str]) -> dict[str, Tally]:
        """Tallies for ``"all"`` and for each style."""
        tallies: dict[str, Tally] = defaultdict(Tally)
        for i, targets, nats in self.token_nll(model, examples):
            for key in ("all", styles[i]):
                tallies[key].add(self.group_of, self.vocab.is_pitch, targets, nats)
        return dict(tallies)
