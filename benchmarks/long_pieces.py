"""Long new pieces: do their parts keep playing, and keep moving, as real parts do?

New pieces of ``--bars`` bars for each band of :data:`BANDS` (``--seeds`` seeds each), with each
part held to its GM program's parts in the training data (``surroundings.HOLD_NEW_PARTS``, the
product's default) and free. Per block of 16 bars, over the melodic parts: the share of a part's
notes on its most played pitch (a drone: near 1), and over every part the share of the block's
bars it plays in (a part that died: 0; the smallest is printed too). The last rows are the same
figures for the melodic parts of real pieces of at least ``--bars`` bars (the train split of
``--data``: POP909's and Freedoom's).

    python benchmarks/long_pieces.py --bars 64 --seeds 2
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.generation import surroundings
from harmonixr.generation.modes import Generator
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.tokens.notes import BAR, PITCH, TRACK

BANDS = (("rock", (-1, 33, 29, 0)), ("pop", (0, 33, -1)), ("game", (81, 38, 48, -1)))  # (style, GM programs)
BLOCK = 16  # bars
FEWEST = 8  # notes of a part in a block for its most played pitch to count


def blocks(notes: np.ndarray, bars: int, drum_slot: int) -> tuple[list[list[float]], list[list[float]]]:
    """(per melodic part, per block: its most played pitch's share of its notes, NaN under
    :data:`FEWEST` notes), (per part, per block: the share of the block's bars it plays in)."""
    tops, played = [], []
    for slot in np.unique(notes[:, TRACK]).tolist():
        mine = notes[notes[:, TRACK] == slot]
        top, bars_in = [], []
        for first in range(0, bars - BLOCK + 1, BLOCK):
            block = mine[(mine[:, BAR] >= first) & (mine[:, BAR] < first + BLOCK)]
            top.append(np.bincount(block[:, PITCH]).max() / len(block) if len(block) >= FEWEST else np.nan)
            bars_in.append(len(np.unique(block[:, BAR])) / BLOCK)
        if slot != drum_slot:
            tops.append(top)
        played.append(bars_in)
    return tops, played


def new_pieces(gen: Generator, bars: int, seeds: int, hold: bool) -> tuple[np.ndarray, np.ndarray]:
    """The :func:`blocks` figures of every part of the bands' new pieces, parts held or free."""
    surroundings.HOLD_NEW_PARTS = hold
    tops, played = [], []
    try:
        for style, programs in BANDS:
            for seed in range(seeds):
                score = gen.generate(list(programs), style, bars=bars, tempo=120, sampling=SamplingConfig(),
                                     seed=seed)[0].score
                t, p = blocks(gen.piece(score, style).notes, bars, gen.vocab.drum_slot)
                tops, played = tops + t, played + p
    finally:
        surroundings.HOLD_NEW_PARTS = True
    return np.array(tops), np.array(played)


def real_pieces(data: str, bars: int, drum_slot: int, sources: tuple[str, ...] = ("pop909", "freedoom"),
                most: int = 40) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The :func:`blocks` figures of up to ``most`` training pieces of each of ``sources`` with ``bars`` bars or more."""
    corpus = Corpus([data])
    found: dict[str, tuple[list, list]] = {}
    for shards, row in corpus.rows("train"):
        if row["source"] not in sources or row["bars"] < bars or len(found.get(row["source"], ([], []))[1]) >= most:
            continue
        t, p = blocks(corpus.piece(shards, row).notes, bars, drum_slot)
        have = found.setdefault(row["source"], ([], []))
        have[0].extend(t)
        have[1].append(np.mean(p, axis=0))
    return {source: (np.array(t), np.array(p)) for source, (t, p) in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="models/harmonixr-small")
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--bars", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    gen = Generator(args.checkpoint)
    rows = {"new, parts held (default)": new_pieces(gen, args.bars, args.seeds, True),
            "new, parts free": new_pieces(gen, args.bars, args.seeds, False)}
    rows |= {f"real, {source}": figures for source, figures in real_pieces(args.data, args.bars,
                                                                              gen.vocab.drum_slot).items()}
    starts = range(0, args.bars - BLOCK + 1, BLOCK)
    table = Table(title=f"parts of pieces of {args.bars} bars, per block of {BLOCK} bars: the most played pitch's "
                        f"share of a melodic part's notes / the share of the bars a part plays in (the fewest)")
    table.add_column("pieces")
    for first in starts:
        table.add_column(f"bars {first + 1}-{first + BLOCK}", justify="right")
    for name, (tops, played) in rows.items():
        table.add_row(name, *(f"{np.nanmean(tops[:, k]):.2f} / {played[:, k].mean():.2f} ({played[:, k].min():.2f})"
                              for k in range(len(starts))))
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
