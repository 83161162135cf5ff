"""Batches from prepared folders: random windows for training, fixed windows for evaluation.

Rows are drawn with probability proportional to their bars (every bar of the corpus is equally
likely to start a window). The random generator of step ``s`` on rank ``r`` is seeded with
``(seed, s, r)``, so a resumed run draws exactly the batches the killed run would have drawn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harmonixr.data.events import Vocab, bar_starts
from harmonixr.data.shards import TokenShards
from harmonixr.data.tokenize import HarmonixrTokenizer, TokenizeError
from harmonixr.models.structure import Structure
from harmonixr.training.config import ObjectiveConfig
from harmonixr.training.examples import Example, ExampleMaker

IGNORE = -100  # target id that the loss skips (torch's cross_entropy default)


@dataclass
class Batch:
    """Inputs and next-token targets; ``split`` is where an encoder-decoder's decoder starts."""

    idx: torch.Tensor  # (B, T) input ids
    targets: torch.Tensor  # (B, T) next-token ids, IGNORE where nothing is learned
    feats: torch.Tensor  # (B, T, F) structural features of the inputs
    split: torch.Tensor  # (B,) index of the first decoder input (Infill_Fill, or the last header token)
    styles: list[str]
    kinds: list[str]

    def to(self, device: torch.device) -> Batch:
        move = {k: getattr(self, k).to(device, non_blocking=True) for k in ("idx", "targets", "feats", "split")}
        return Batch(**move, styles=self.styles, kinds=self.kinds)

    @property
    def tokens(self) -> int:
        return int((self.targets != IGNORE).sum())


def collate(examples: Sequence[Example], structure: Structure, styles: Sequence[str], pad_id: int) -> Batch:
    """Pad ``examples`` to one length and compute their features."""
    T = max(len(e.ids) for e in examples) - 1
    B = len(examples)
    idx = np.full((B, T), pad_id, dtype=np.int64)
    targets = np.full((B, T), IGNORE, dtype=np.int64)
    feats = np.zeros((B, T, len(structure.sizes)), dtype=np.int64)
    split = np.zeros(B, dtype=np.int64)
    for b, e in enumerate(examples):
        n = len(e.ids) - 1
        idx[b, :n] = e.ids[:-1]
        targets[b, :n] = np.where(e.target_mask[1:], e.ids[1:], IGNORE)
        feats[b, :n] = structure.features(e.ids[:-1], e.bar0)
        split[b] = e.fill_start if e.fill_start >= 0 else int(np.argmax(e.target_mask)) - 1
    return Batch(torch.from_numpy(idx), torch.from_numpy(targets), torch.from_numpy(feats),
                 torch.from_numpy(split), list(styles), [e.kind for e in examples])


class Corpus:
    """One or more prepared folders sharing one tokenizer, with bar-weighted row sampling."""

    def __init__(self, folders: Sequence[str | Path]) -> None:
        if not folders:
            raise ValueError("data.folders is empty: name at least one prepared folder")
        self.shards = [TokenShards(f) for f in folders]
        self.tokenizer = HarmonixrTokenizer.from_file(Path(folders[0]))
        for folder in folders[1:]:
            other = HarmonixrTokenizer.from_file(Path(folder))
            if other.vocab != self.tokenizer.vocab:
                raise TokenizeError(f"{folder}: its tokenizer differs from {folders[0]}'s; prepare both with one config")
        self.vocab = Vocab(self.tokenizer)
        self.structure = Structure(self.vocab)

    def rows(self, split: str) -> list[tuple[TokenShards, dict]]:
        """``(shards, row)`` of every row of ``split`` with at least one bar."""
        return [(s, r) for s in self.shards for r in s.rows(split) if r["bars"] > 0]


class TrainStream:
    """Random training batches, reproducible per (seed, step, rank)."""

    def __init__(self, corpus: Corpus, block_size: int, batch_size: int, objective: ObjectiveConfig,
                 seed: int, split: str = "train") -> None:
        self.corpus = corpus
        self.rows = corpus.rows(split)
        if not self.rows:
            raise ValueError(f"no {split!r} rows in {[str(s.folder) for s in corpus.shards]}")
        bars = np.array([r["bars"] for _, r in self.rows], dtype=np.float64)
        self.p = bars / bars.sum()
        self.maker = ExampleMaker(corpus.vocab, block_size, objective)
        self.batch_size, self.seed = batch_size, seed

    def examples(self, count: int, rng: np.random.Generator) -> tuple[list[Example], list[str]]:
        """``count`` random examples and the style of each."""
        picks = rng.choice(len(self.rows), size=count, p=self.p)
        examples, styles = [], []
        for i in picks:
            shards, row = self.rows[int(i)]
            examples.append(self.maker.sample(np.asarray(shards.tokens(row)), rng))
            styles.append(row["style"])
        return examples, styles

    def batch(self, step: int, rank: int = 0) -> Batch:
        examples, styles = self.examples(self.batch_size, np.random.default_rng([self.seed, step, rank]))
        return collate(examples, self.corpus.structure, styles, self.corpus.tokenizer.pad_id)


def scoring_windows(maker: ExampleMaker, ids: np.ndarray) -> Iterator[Example]:
    """Plain windows that score every body token of a piece exactly once.

    Each window starts at a bar line; its last bar (possibly cut by the block size) is not scored
    but starts the next window, unless the window reaches the end of the piece.
    """
    v, bar, starts = maker.v, 0, bar_starts(maker.v, ids)
    while bar < len(starts):
        example = maker.plain(ids, bar, starts=starts)
        if example.ids[-1] == v.tokenizer.eos_id:
            yield example
            return
        bars_at = np.flatnonzero(example.ids == v.bar_id)
        if len(bars_at) > 1:
            mask = example.target_mask.copy()
            mask[bars_at[-1]:] = False
            yield dataclasses.replace(example, target_mask=mask)
            bar += len(bars_at) - 1
        else:  # one bar longer than the block: score what fits
            yield example
            bar += 1


def infill_examples(maker: ExampleMaker, ids: np.ndarray, count: int, seed: int) -> list[Example]:
    """``count`` infill examples of a piece, drawn with a fixed seed (held-out holes for scoring)."""
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    for _ in range(count * 4):
        example = maker.sample(ids, rng)
        if example.fill_start >= 0:
            mask = example.target_mask.copy()
            mask[: example.fill_start + 1] = False  # score the fill only
            out.append(dataclasses.replace(example, target_mask=mask))
        if len(out) == count:
            break
    return out
