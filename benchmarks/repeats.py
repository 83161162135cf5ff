"""Where does the music repeat? How often an echo holds a note's pitch, at fixed lags and at a matched one.

A note's echoes (``harmonixr.tokens.echo``) are what its track played at the same place in the
bar, at the same rank in its onset's chord, some bars earlier: at the fixed lags 1, 2, 4, 8 and
16. This script measures, on the test pieces of every family (whole pieces read as a plain
sequence does, every earlier bar known, or with ``--window`` only the notes a context reaches),
the share of notes whose pitch an echo holds:

- at each fixed lag, and at any of them (what the echo columns can offer the model);
- at a **matched lag**: the lag at which the bar before this one (on the note's track, or on all
  tracks) is most alike (F1 of its (position, pitch) cells) to the bar before that one, the
  smallest such lag on a tie; it follows a repeat at any distance (a chorus 24 bars on, a tune
  played again after its 13 bars), where the fixed lags see only some;
- and the notes the matched lag holds that no fixed lag does.

It runs no model; it says whether a matched-lag echo column is worth training (a new column
changes the model's input, so it needs the shipped model retrained: ``make train``).

    python benchmarks/repeats.py --pieces 40
    python benchmarks/repeats.py --pieces 40 --window 1000   # what a context of 1,024 positions reaches
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.generation.piece import family as piece_family
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK

FIXED_LAGS = (1, 2, 4, 8, 16)  # the past lags of ECHO_LAGS, in bars
FAMILIES = ("folk", "chorale", "classical", "pop909", "groove", "freedoom", "giantmidi")


def bar_cells(notes: np.ndarray, bars: int, by_track: bool) -> dict[int, np.ndarray]:
    """Per track (or -1: all tracks together), a (bars, cells) 0/1 matrix of the (position, pitch)
    cells (with the track, for all tracks) each bar plays."""
    groups = {int(t): notes[notes[:, TRACK] == t] for t in np.unique(notes[:, TRACK])} if by_track else {-1: notes}
    out = {}
    for track, part in groups.items():
        cells = (part[:, TRACK] * 200 + part[:, POS]) * 128 + part[:, PITCH]
        ids, column = np.unique(cells, return_inverse=True)
        matrix = np.zeros((bars, len(ids)), dtype=np.float32)
        matrix[part[:, BAR], column] = 1.0
        out[track] = matrix
    return out


def matched_lags(matrix: np.ndarray) -> np.ndarray:
    """(bars,) per bar b, the lag L >= 1 at which bar b-1 is most alike to bar b-1-L (F1 of their
    cells), the smallest on a tie; 0 where bar b-1 plays nothing or nothing before is alike."""
    bars = len(matrix)
    inter = matrix @ matrix.T
    sizes = matrix.sum(1)
    f1 = 2 * inter / np.maximum(sizes[:, None] + sizes[None, :], 1)
    lags = np.zeros(bars, dtype=np.int64)
    for b in range(2, bars):
        before = f1[b - 1, : b - 1][::-1]  # lag 1, 2, ...: bars b-2, b-3, ...
        if len(before) and before.max() > 0:
            lags[b] = int(np.argmax(before)) + 1
    return lags


def echo_hits(notes: np.ndarray, bars: int, window: int) -> dict[str, np.ndarray]:
    """Per note (sorted order), whether each echo holds its pitch, from at most ``window`` notes
    before it (0: anywhere before it)."""
    order = np.lexsort((notes[:, PITCH], notes[:, TRACK], notes[:, POS], notes[:, BAR]))
    notes = notes[order]
    seen: dict[tuple[int, int, int], list[tuple[int, int]]] = defaultdict(list)  # (pitch, index)
    rank = np.zeros(len(notes), dtype=np.int64)
    for k, (bar, pos, track, pitch) in enumerate(notes[:, [BAR, POS, TRACK, PITCH]].tolist()):
        rank[k] = len(seen[(track, bar, pos)])
        seen[(track, bar, pos)].append((pitch, k))

    def echo(track: int, bar: int, pos: int, r: int, k: int) -> int:
        there = seen.get((track, bar, pos), ())
        if bar < 0 or r >= len(there) or (window and k - there[r][1] > window):
            return -1
        return there[r][0]

    per_track = {t: matched_lags(m) for t, m in bar_cells(notes, bars, True).items()}
    together = matched_lags(bar_cells(notes, bars, False)[-1])
    hits: dict[str, list[bool]] = defaultdict(list)
    for k, (bar, pos, track, pitch) in enumerate(notes[:, [BAR, POS, TRACK, PITCH]].tolist()):
        for lag in FIXED_LAGS:
            hits[f"-{lag}"].append(echo(track, bar - lag, pos, rank[k], k) == pitch)
        for name, lag in (("matched, its track", per_track[track][bar]), ("matched, all tracks", together[bar])):
            hits[name].append(bool(lag) and echo(track, bar - lag, pos, rank[k], k) == pitch)
    out = {name: np.array(values) for name, values in hits.items()}
    out["any fixed"] = np.any([out[f"-{lag}"] for lag in FIXED_LAGS], axis=0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--pieces", type=int, default=40, help="test pieces per family")
    parser.add_argument("--window", type=int, default=0,
                        help="an echo counts only from this many notes back at most (0: the whole piece before)")
    args = parser.parse_args()
    corpus = Corpus([args.data])
    columns = [f"-{lag}" for lag in FIXED_LAGS] + ["any fixed", "matched, its track", "matched, all tracks"]
    reach = f"the {args.window} notes before" if args.window else "the whole piece before"
    table = Table(title=f"share of test notes whose pitch an echo holds (from {reach})")
    for column in ("family", "pieces", "notes", *[f"lag {c}" if c.startswith("-") else c for c in columns],
                   "matched only (its track)", "matched only (all tracks)"):
        table.add_column(column, justify="right")
    for family in FAMILIES:
        rows = [(s, r) for s, r in corpus.rows("test") if piece_family(r) == family][: args.pieces]
        if not rows:
            continue
        hits: dict[str, list[np.ndarray]] = defaultdict(list)
        for shards, row in rows:
            piece = corpus.piece(shards, row)
            for name, values in echo_hits(piece.notes, piece.bar_count, args.window).items():
                hits[name].append(values)
        joined = {name: np.concatenate(values) for name, values in hits.items()}
        new = [joined[m] & ~joined["any fixed"] for m in ("matched, its track", "matched, all tracks")]
        table.add_row(family, str(len(rows)), f"{len(joined['any fixed']):,}",
                      *[f"{joined[c].mean():.3f}" for c in columns], *[f"{n.mean():.3f}" for n in new])
    Console(width=220).print(table)


if __name__ == "__main__":
    main()
