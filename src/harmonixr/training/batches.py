"""Batches from prepared folders: random windows for training, fixed windows for evaluation.

Pieces are drawn with probability proportional to their notes (every note of the corpus is equally
likely to start a window), optionally reweighted per source. Training examples are packed: a row of
the batch holds as many examples as fit its block, back to back, each starting with its own BOS
(a folk tune is a tenth of a block; padding it alone would waste nine tenths of the compute).
Rotary positions are relative, so an example reads the same wherever it sits in the row. The
random generator of step ``s`` on rank ``r`` is seeded with ``(seed, s, r)``, so a resumed run
draws exactly the batches the killed run would have drawn. :func:`fit_ngram` fits the n-gram
baseline (:mod:`harmonixr.models.ngram`) on windows drawn the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from harmonixr.data.corpus import Corpus, CorpusPiece
from harmonixr.errors import HarmonixrError
from harmonixr.models.ngram import NGramModel, flatten
from harmonixr.tokens.notes import BAR
from harmonixr.tokens.prompt import Rows
from harmonixr.tokens.vocab import COL, COLUMNS, NOTE
from harmonixr.training.config import ObjectiveConfig, TrainConfig
from harmonixr.training.examples import ExampleMaker


@dataclass
class Batch:
    """Rows padded with zeros to one length, and which rows are learned."""

    rows: torch.Tensor  # (B, T + 1, R): inputs rows[:, :-1], predicted rows[:, 1:]
    target: torch.Tensor  # (B, T + 1) bool, True on learned rows
    styles: list[str]
    kinds: list[str]
    sources: list[str]

    def to(self, device: torch.device) -> Batch:
        return dataclasses.replace(self, rows=self.rows.to(device, non_blocking=True), target=self.target.to(device))

    @property
    def notes(self) -> int:
        """Learned note rows."""
        return int((self.target & (self.rows[..., COL["type"]] == NOTE)).sum())

    @property
    def positions(self) -> int:
        """Learned rows (notes and end rows)."""
        return int(self.target[:, 1:].sum())


def collate(examples: Sequence[Rows], styles: Sequence[str], sources: Sequence[str], length: int = 0) -> Batch:
    """Pad ``examples`` to one length (at least ``length`` rows: fixed shapes compile once)."""
    T = max(length, *(len(e.rows) for e in examples))
    rows = np.zeros((len(examples), T, len(COLUMNS)), dtype=np.int64)
    target = np.zeros((len(examples), T), dtype=bool)
    for b, e in enumerate(examples):
        rows[b, : len(e.rows)] = e.rows
        target[b, : len(e.rows)] = e.target
    return Batch(torch.from_numpy(rows), torch.from_numpy(target), list(styles), [e.kind for e in examples], list(sources))


class TrainStream:
    """Random training batches, reproducible per (seed, step, rank)."""

    def __init__(self, corpus: Corpus, block_size: int, batch_size: int, objective: ObjectiveConfig,
                 seed: int, split: str = "train", source_weights: dict[str, float] | None = None) -> None:
        self.corpus = corpus
        self.rows = corpus.rows(split)
        if not self.rows:
            raise HarmonixrError(f"no {split!r} rows in {[str(s.folder) for s in corpus.shards]}")
        weights = source_weights or {}
        notes = np.array([r["notes"] * weights.get(r["source"], 1.0) for _, r in self.rows], dtype=np.float64)
        self.p = notes / notes.sum()
        self.maker = ExampleMaker(corpus.vocab, block_size, objective)
        self.batch_size, self.seed, self.augment = batch_size, seed, split == "train"

    def examples(self, count: int, rng: np.random.Generator) -> tuple[list[Rows], list[CorpusPiece]]:
        """``count`` random examples and the piece of each."""
        picks = rng.choice(len(self.rows), size=count, p=self.p)
        examples, pieces = [], []
        for i in picks:
            shards, row = self.rows[int(i)]
            piece = self.corpus.piece(shards, row)
            examples.append(self.maker.sample(piece, rng, self.augment))
            pieces.append(piece)
        return examples, pieces

    def batch(self, step: int, rank: int = 0) -> Batch:
        """``batch_size`` rows, each packed with examples (:func:`pack`)."""
        rng = np.random.default_rng([self.seed, step, rank])
        block = self.maker.block_size
        rows: list[list[Rows]] = [[] for _ in range(self.batch_size)]
        room = [block] * self.batch_size
        styles, sources = [""] * self.batch_size, [""] * self.batch_size
        misses = 0
        while misses < PACK_TRIES:
            [example], [piece] = self.examples(1, rng)
            fits = [b for b in range(self.batch_size) if room[b] >= len(example.rows)]
            if not fits:
                misses += 1
                continue
            b = fits[0]
            rows[b].append(example)
            room[b] -= len(example.rows)
            styles[b], sources[b] = styles[b] or piece.style, sources[b] or piece.source
        return collate([pack(r) for r in rows], styles, sources, block)


PACK_TRIES = 4  # examples that fit no row before a batch is closed


def pack(examples: Sequence[Rows]) -> Rows:
    """Examples back to back in one sequence (their kinds joined)."""
    rows = np.concatenate([e.rows for e in examples])
    target = np.concatenate([e.target for e in examples])
    return Rows(rows, target, -1, 0, "+".join(e.kind for e in examples))


def scoring_windows(maker: ExampleMaker, piece: CorpusPiece) -> Iterator[Rows]:
    """Plain windows that score every note of a piece exactly once: each starts at a bar line; the
    bar its budget cuts is not scored and starts the next window (unless the piece ends there)."""
    bar = int(piece.notes[0, BAR]) if len(piece.notes) else 0
    while True:
        rows = maker.plain(piece, bar)
        note_rows = np.flatnonzero(rows.rows[:, COL["type"]] == NOTE)
        if not len(note_rows):
            return
        yield rows
        last = bar + int(rows.rows[note_rows, COL["dbar"]].sum() - len(note_rows))  # the window's last bar
        later = piece.notes[piece.notes[:, BAR] > last]
        if not len(later) or rows.rows[-1, COL["type"]] != NOTE:
            return
        bar = int(later[0, BAR])


def infill_examples(maker: ExampleMaker, piece: CorpusPiece, count: int, seed: int) -> list[Rows]:
    """``count`` infill examples of a piece, drawn with a fixed seed (held-out holes for scoring):
    only the fill is marked as learned."""
    rng = np.random.default_rng(seed)
    out: list[Rows] = []
    for _ in range(count * 4):
        example = maker.sample(piece, rng, augment=False)
        if example.fill_start >= 0:
            target = example.target.copy()
            target[: example.fill_start + 1] = False
            out.append(dataclasses.replace(example, target=target))
        if len(out) == count:
            break
    return out


def fit_ngram(config: TrainConfig, examples: int, order: int) -> tuple[NGramModel, int]:
    """An n-gram model of ``examples`` training windows drawn like the network's (same folders,
    block size, objective and seed, unpacked); also returns the number of field tokens counted."""
    corpus = Corpus(config.data.folders)
    stream = TrainStream(corpus, config.data.block_size, 1, config.objective, config.run.seed)
    windows, _ = stream.examples(examples, np.random.default_rng(config.run.seed))
    model = NGramModel(corpus.vocab, order)
    flat = [flatten(w, model.offsets) for w in windows]
    return model.fit(flat), sum(int(learned.sum()) for _, learned in flat)
