"""One track rewritten over a whole song: does it keep playing, and keep moving, to the end?

Each track of up to ``--pieces`` test pieces of ``--source`` (whole songs, longer than one context,
so written in halves) is rewritten from its first bar to the end (``infill --tracks N``, sampled,
one variation). Per track: its notes in each half of the song against the original's, and in the
second half the share of them on its most played pitch against the original's (a drone: near 1);
the last row averages the shares.

    python benchmarks/whole_tracks.py --pieces 4
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.evaluation.report import SAMPLING
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Region


def half_of(notes: list, half: int, second: bool = True) -> tuple[int, float]:
    """(notes from tick ``half`` on, or before it, their most played pitch's share; NaN for none)."""
    pitches = [n.pitch for n in notes if (n.time >= half) == second]
    return len(pitches), float(np.bincount(pitches).max() / len(pitches)) if pitches else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="models/harmonixr-small")
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--source", default="pop909")
    parser.add_argument("--pieces", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gen = Generator(args.checkpoint)
    rows = [row for _, row in Corpus([args.data]).rows("test") if row["source"] == args.source][: args.pieces]
    table = Table(title=f"each track of {len(rows)} {args.source} test songs rewritten over the whole song: its "
                        "second half")
    for column in ("song", "track", "bars", "first half's notes: original -> rewritten", "second half's notes",
                   "most played pitch's share: original -> rewritten"):
        table.add_column(column, justify="left" if column == "song" else "right")
    shares = []
    for row in rows:
        piece = gen.piece(row["path"], row["style"])
        half = piece.tick(piece.bars // 2)
        for track in range(len(piece.original.tracks)):
            made = gen.infill(piece, Region((0, 0), None, (track,)), 1, SAMPLING, args.seed, source="sampled")[0]
            old, new = piece.original.tracks[track].notes, made.score.tracks[track].notes
            was, now = half_of(old, half), half_of(new, half)
            first = f"{half_of(old, half, False)[0]} -> {half_of(new, half, False)[0]}"
            shares.append((was[1], now[1]))
            table.add_row(row["title"], str(track + 1), str(piece.bars), first, f"{was[0]} -> {now[0]}",
                          f"{was[1]:.2f} -> {now[1]:.2f}")
    mean = np.nanmean(np.array(shares), axis=0)
    table.add_row("mean", "", "", "", "", f"{mean[0]:.2f} -> {mean[1]:.2f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
