"""Likelihood in bits per note: how many bits a model needs to write the music, field by field.

Every model (the Transformer, the n-gram) scores the same examples: the plain windows of
:func:`~harmonixr.training.batches.scoring_windows` (every note of every test piece once) and
fixed infill holes (the fill only). A note's bits are the sum of its fields' bits (type, bars since
the previous note, position, track, pitch, duration, velocity, micro-timing); the end rows' bits
(EOS, END) count too, so the parts add up to the overall bits per note. ``velocity_32`` is the
velocity field with the probability of each of 32 velocity bins summed (the resolution of the
REMI model before it), so that ``comparable`` (every field but micro-timing, velocity in 32 bins)
measures the same information that model wrote.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from harmonixr.models.ngram import NGramModel
from harmonixr.models.transformer import NoteTransformer
from harmonixr.runtime import autocast
from harmonixr.tokens.prompt import Rows
from harmonixr.tokens.vocab import COL, FIELDS, NOTE, NoteVocab
from harmonixr.training.batches import collate

GROUPS = (*FIELDS, "velocity_32")
VELOCITY_BINS = 32


def velocity_bins(bins: int = VELOCITY_BINS) -> np.ndarray:
    """(128,) the bin of each velocity 0..127: the nearest of ``bins`` evenly spaced levels (miditok's)."""
    levels = np.linspace(0, 127, bins + 1).astype(int)[1:]
    return np.abs(np.arange(128)[:, None] - levels[None, :]).argmin(1)


@dataclass
class Tally:
    """Bits per field and the notes they were spent on, for one model on one set of examples."""

    bits: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    notes: int = 0
    positions: int = 0

    def add(self, bits: np.ndarray, velocity_32: np.ndarray, is_note: np.ndarray) -> None:
        """bits (P, K) per learned row and field; velocity_32 (P,)."""
        for k, name in enumerate(FIELDS):
            self.bits[name] += float(bits[:, k].sum())
        self.bits["velocity_32"] += float(velocity_32.sum())
        self.notes += int(is_note.sum())
        self.positions += len(bits)

    def per_note(self) -> dict[str, float]:
        notes = max(self.notes, 1)
        total = sum(self.bits[name] for name in FIELDS)
        comparable = total - self.bits["micro"] - self.bits["vel"] + self.bits["velocity_32"]
        out = {"bits_per_note": total / notes, "comparable": comparable / notes}
        out.update({name: self.bits[name] / notes for name in GROUPS})
        return out


class Scorer:
    """Per-field bits of examples under a :class:`NoteTransformer` or the n-gram model."""

    def __init__(self, vocab: NoteVocab, batch_size: int = 8, device: torch.device = torch.device("cpu"),
                 dtype: torch.dtype | None = None) -> None:
        self.vocab, self.batch_size, self.device, self.dtype = vocab, batch_size, device, dtype
        self.bins = torch.from_numpy(velocity_bins())

    def row_bits(self, model: NoteTransformer | NGramModel,
                 examples: Sequence[Rows]) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (example index, bits (P, K), velocity_32 bits (P,), is_note (P,)) per example."""
        if isinstance(model, NGramModel):
            for i, example in enumerate(examples):
                bits, is_note = model.field_bits(example)
                yield i, bits, bits[:, FIELDS.index("vel")], is_note  # the n-gram's velocity stays exact
            return
        model.eval()
        for start in range(0, len(examples), self.batch_size):
            chunk = examples[start : start + self.batch_size]
            batch = collate(chunk, [""] * len(chunk), [""] * len(chunk)).to(self.device)
            with torch.no_grad(), autocast(self.device, self.dtype):
                bits, vel32 = self._batch_bits(model, batch.rows, batch.target)
            for b in range(len(chunk)):
                learned = batch.target[b, 1:].cpu().numpy()
                types = batch.rows[b, 1:, COL["type"]].cpu().numpy()[learned]
                yield start + b, bits[b][learned], vel32[b][learned], types == NOTE

    def _batch_bits(self, model: NoteTransformer, rows: torch.Tensor, target: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        h = model(rows[:, :-1])
        nxt = rows[:, 1:]
        logits = model.next_logits(h, nxt)
        out = []
        for col, lg in zip(model.heads.columns, logits):
            values = nxt[..., col]
            nats = F.cross_entropy(lg.float().transpose(1, 2), values, reduction="none") * (values > 0)
            out.append(nats)
        vel = nxt[..., COL["vel"]]
        logp = F.log_softmax(logits[FIELDS.index("vel")].float(), -1)  # (B, T, 128)
        binned = torch.full((*logp.shape[:2], VELOCITY_BINS), -torch.inf, device=logp.device)
        binned = binned.scatter_reduce(-1, self.bins.to(logp.device).expand(*logp.shape[:2], 128), logp, "amax")
        # log sum exp within each bin: subtract each bin's max, sum, add back
        top = binned.gather(-1, self.bins.to(logp.device).expand(*logp.shape[:2], 128))
        sums = torch.zeros_like(binned).scatter_add(-1, self.bins.to(logp.device).expand(*logp.shape[:2], 128),
                                                    (logp - top).exp())
        bin_logp = sums.log() + binned
        vel32 = -bin_logp.gather(-1, self.bins.to(logp.device)[vel][..., None])[..., 0] * (vel > 0)
        bits = torch.stack(out, -1) / math.log(2)
        return bits.cpu().numpy(), (vel32 / math.log(2)).cpu().numpy()

    def score(self, model: NoteTransformer | NGramModel, examples: Sequence[Rows], labels: Sequence[str]) -> dict[str, Tally]:
        """Tallies for ``"all"`` and for each label (a source or a style)."""
        tallies: dict[str, Tally] = defaultdict(Tally)
        for i, bits, vel32, is_note in self.row_bits(model, examples):
            for key in ("all", labels[i]):
                tallies[key].add(bits, vel32, is_note)
        return dict(tallies)
