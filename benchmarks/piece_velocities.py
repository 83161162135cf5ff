"""The velocities of new pieces' melodic parts: as varied as their style's parts, or one velocity a part?

New pieces of ``--bars`` bars in each of ``--styles`` (the band of :data:`BANDS` for the style,
``--variations`` each from ``--seeds``) are written with each melodic part held off the velocity of
its note before as often as its style's parts in the training data, and its notes at 120 or more
to their share there where they play with dynamics (``data.stats.melodic_velocities``,
``modes.DYNAMIC_REPEATS``: the product's default); with the loud
notes free; and with both free. Per style and setting, over the melodic parts: the mean velocity,
the spread of a part's velocities (mean over parts), the share at 120 or more and the share of
notes at the velocity of the note before; and the same of the training data's melodic parts of
the style (the train split of ``--data``, up to ``--real`` pieces).

    python benchmarks/piece_velocities.py --seeds 0,1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from drum_kits import velocities  # a sibling script
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.generation.modes import DYNAMIC_REPEATS, Generator
from harmonixr.tokens.notes import TRACK, VEL

# (style, GM programs of its band; -1: drums)
BANDS = {"pop": (0, 33, 25, -1), "rock": (30, 33, -1), "jazz": (0, 32, 65, -1), "game": (81, 38, 48, -1),
         "classical": (40, 41, 42), "folk-celtic": (73, 0)}


def new_parts(gen: Generator, style: str, bars: int, seeds: list[int], variations: int) -> list[list[int]]:
    """The velocities of each melodic part (in time order) of new pieces of ``style``."""
    parts = []
    for seed in seeds:
        for result in gen.generate(list(BANDS[style]), style, bars, n=variations, seed=seed):
            parts += [[n.velocity for n in track.notes] for track in result.score.tracks if not track.is_drum]
    return [p for p in parts if p]


def real_parts(data: str, style: str, pieces: int) -> list[list[int]]:
    """The velocities of the melodic parts of up to ``pieces`` training pieces of ``style``."""
    corpus = Corpus([data])
    parts: list[list[int]] = []
    rows = [(shards, row) for shards, row in corpus.rows("train") if row["style"] == style][:pieces]
    for shards, row in rows:
        notes = shards.notes(row)
        parts += [notes[notes[:, TRACK] == slot, VEL].tolist() for slot in np.unique(notes[:, TRACK])
                  if slot != corpus.vocab.drum_slot]
    return [p for p in parts if len(p) > 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="models/harmonixr-small")
    parser.add_argument("--data", default="data/corpus-all", help="the training data's rows (skipped if absent)")
    parser.add_argument("--styles", default=",".join(BANDS))
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--variations", type=int, default=4)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--real", type=int, default=100, help="training pieces of a style read for its row")
    args = parser.parse_args()
    gen = Generator(args.checkpoint)
    held = dict(gen.melodic_velocities)
    seeds = [int(s) for s in args.seeds.split(",")]
    table = Table(title=f"melodic parts of new {args.bars}-bar pieces (seeds {args.seeds}, {args.variations} each)")
    for column in ("style", "parts", "velocities", "mean velocity", "spread in a part", "at 120 or more",
                   "velocity repeats", "repeats held to", "loud notes held to"):
        table.add_column(column, justify="left" if column in ("style", "velocities") else "right")
    for style in args.styles.split(","):
        most = held.get(style, held.get("", (1.0, 1.0, 1.0)))
        loud_free = {s: (after, pitch, 1.0) for s, (after, pitch, _) in held.items()}
        for name, table_of in (("held (shipped)", held), ("loud notes free", loud_free), ("both free", {})):
            gen.melodic_velocities = table_of
            parts = new_parts(gen, style, args.bars, seeds, args.variations)
            table.add_row(style, str(len(parts)), name, *velocities(parts), f"{most[0]:.3f}" if table_of else "",
                          f"{most[2]:.3f}" if table_of is held and most[0] < DYNAMIC_REPEATS else "")
        gen.melodic_velocities = held
        if Path(args.data).exists() and (parts := real_parts(args.data, style, args.real)):
            table.add_row(style, str(len(parts)), "the training data's parts", *velocities(parts), "", "")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
