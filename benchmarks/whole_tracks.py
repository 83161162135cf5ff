"""One track rewritten over a whole song: does it keep playing, and keep moving, to the end?

Each track of up to ``--pieces`` test pieces of ``--source`` (whole songs, longer than one context,
so written in halves) is rewritten from its first bar to the end (``infill --tracks N``, sampled,
one variation). Per track: its notes in each half of the song against the original's, and in the
second half the share of them on its most played pitch against the original's (a drone: near 1);
the last row averages the shares.

With ``--settings``, a second table: each setting of the density window of a track rewritten whole
(``surroundings.WHOLE_TOLERANCE``), of the kept notes (``surroundings.KEEP_NOTES``: at most its
most onsets x its mean notes at an onset, past which its chords grow no more) and of the most
played pitch's share (``surroundings.WHOLE_PITCH_SHARE``: no pitch takes more than that times the
part's own share), over ``--seeds``: the mean ratio of the rewritten track's notes, onsets and
notes per onset to the original's, how much the share of its most played pitch rose (every
track, the piano: the third track), and how far its register moved (the median pitch of each 16
bars against the original's, in semitones).

    python benchmarks/whole_tracks.py --pieces 4
    python benchmarks/whole_tracks.py --pieces 4 --seeds 0,1 \
        --settings 0.25:off:off,0.25:on:off,0.1:off:off,0.1:on:off,0.1:on:1.25
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.evaluation.report import SAMPLING
from harmonixr.generation import surroundings
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Piece, Region


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
    parser.add_argument("--seeds", default="0", help="seeds of the settings' table")
    parser.add_argument("--settings", default="",
                        help="TOLERANCE:NOTES:SHARE (NOTES on|off, SHARE a factor or off), comma-separated")
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
    if args.settings:
        pieces = [gen.piece(row["path"], row["style"]) for row in rows]
        Console(width=160).print(settings_table(gen, pieces, args.settings, [int(x) for x in args.seeds.split(",")]))


def onsets_and_share(notes: list, step: float) -> tuple[int, int, float]:
    """(notes, onsets on the grid of ``step`` ticks, the most played pitch's share)."""
    pitches = np.array([n.pitch for n in notes])
    onsets = len({round(n.time / step) for n in notes})
    return len(notes), onsets, float(np.bincount(pitches).max() / len(pitches)) if len(pitches) else float("nan")


def register_moved(piece: Piece, old: list, new: list, bars: int = 16) -> float:
    """The mean over each ``bars`` bars where both play of |median pitch of ``new`` - of ``old``|."""
    moved = []
    for start in range(0, piece.bars, bars):
        low, high = piece.tick(start), piece.tick(min(start + bars, piece.bars))
        a, b = ([n.pitch for n in notes if low <= n.time < high] for notes in (old, new))
        if a and b:
            moved.append(abs(float(np.median(a)) - float(np.median(b))))
    return float(np.mean(moved)) if moved else float("nan")


def settings_table(gen: Generator, pieces: list[Piece], settings: str, seeds: list[int]) -> Table:
    """Each setting (``TOLERANCE:NOTES:SHARE``) of a track rewritten whole: its notes, onsets and
    notes per onset over the original's, its most played pitch's share minus the original's, and
    how far its register moved."""
    table = Table(title=f"every track of {len(pieces)} songs rewritten whole, seeds {seeds}: rewritten over original")
    for column in ("window", "kept notes", "pitch share", "notes", "onsets", "notes per onset",
                   "most played pitch's share", "the piano's share", "register moved"):
        table.add_column(column, justify="right")
    names = ("WHOLE_TOLERANCE", "KEEP_NOTES", "WHOLE_PITCH_SHARE")
    shipped = [getattr(surroundings, name) for name in names]
    for setting in settings.split(","):
        tolerance, keep, share = setting.split(":")
        values = (float(tolerance), keep == "on", None if share == "off" else float(share))
        for name, value in zip(names, values):
            setattr(surroundings, name, value)
        ratios, rises, piano, moved = [], [], [], []
        for seed in seeds:
            for piece in pieces:
                step = piece.original.ticks_per_quarter / gen.vocab.grid
                for track in range(len(piece.original.tracks)):
                    made = gen.infill(piece, Region((0, 0), None, (track,)), 1, SAMPLING, seed, source="sampled")[0]
                    was, now = piece.original.tracks[track].notes, made.score.tracks[track].notes
                    old, new = onsets_and_share(was, step), onsets_and_share(now, step)
                    ratios.append((new[0] / old[0], new[1] / old[1], (new[0] / new[1]) / (old[0] / old[1])))
                    rises.append(new[2] - old[2])
                    moved.append(register_moved(piece, was, now))
                    if track == 2:
                        piano.append(new[2] - old[2])
        mean = np.mean(ratios, axis=0)
        table.add_row(f"{values[0]:g}", keep, share, f"x{mean[0]:.2f}", f"x{mean[1]:.2f}", f"x{mean[2]:.2f}",
                      f"{np.mean(rises):+.3f}", f"{np.mean(piano):+.3f}" if piano else "", f"{np.nanmean(moved):.2f}")
    for name, value in zip(names, shipped):
        setattr(surroundings, name, value)
    return table


if __name__ == "__main__":
    main()
