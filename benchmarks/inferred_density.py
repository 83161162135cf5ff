"""How well the bars around a hole foretell each track's onsets in it: the window a sampled fill keeps.

For a hole of ``--bars`` whole bars, every track, in the middle of up to ``--pieces`` pieces per
family of ``--split``, each track that plays on both sides of the hole gets its density inferred
from the bars around it (:meth:`~harmonixr.generation.modes.Generator.hole_controls`), and the
onsets it really has in the hole are set against that. Per family, the table prints the tracks,
the median of real / inferred onsets, and the share of tracks whose real count falls inside the
window of each tolerance in ``--tolerances`` (:func:`~harmonixr.generation.modes.onset_windows`):
a tolerance that keeps most real holes inside is one a sampled fill can be held to.

No model runs (the checkpoint gives the vocabulary), so it takes seconds:

    python benchmarks/inferred_density.py --split val --pieces 30
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.evaluation.infill_quality import middle_holes
from harmonixr.generation.modes import Generator, onset_windows
from harmonixr.generation.piece import split_pieces
from harmonixr.tokens.notes import BAR, POS, TRACK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="models/harmonixr-small")
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--split", default="val")
    parser.add_argument("--pieces", type=int, default=30, help="pieces per family")
    parser.add_argument("--bars", type=int, default=2)
    parser.add_argument("--tolerances", default="0.15,0.25,0.35,0.5")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tolerances = [float(x) for x in args.tolerances.split(",")]
    generator = Generator(args.checkpoint)
    vocab = generator.vocab
    holes = middle_holes(split_pieces(Corpus([args.data]), args.split, args.pieces, vocab,
                                      np.random.default_rng(args.seed), by="family"), args.bars)
    found: dict[str, list[list[float]]] = {}
    for h in holes:
        piece, family, hole = h.piece, h.source, h.span
        inside = piece.notes[hole.contains(piece.notes, vocab)]
        for slot, controls in generator.hole_controls(piece, hole).items():
            if not controls.density or not generator.plays_on_both_sides(piece, hole, slot):
                continue
            real = len(np.unique(inside[inside[:, TRACK] == slot][:, [BAR, POS]], axis=0))
            inferred = controls.density * args.bars
            kept = [int(lo <= real <= hi) for t in tolerances
                    for _, lo, hi in onset_windows({slot: controls}, args.bars, t)]
            found.setdefault(family, []).append([real / inferred, *kept])
    out = Table(title=f"inferred density: real onsets in the hole against the window, {args.split} split, "
                      f"holes of {args.bars} bars")
    for column in ["family", "tracks", "median real/inferred", *(f"inside ±{t:.0%}" for t in tolerances)]:
        out.add_column(column, justify="left" if column == "family" else "right")
    for family, values in [*sorted(found.items()), ("all", [r for rs in found.values() for r in rs])]:
        table = np.asarray(values)
        out.add_row(family, str(len(table)), f"{np.median(table[:, 0]):.2f}",
                    *(f"{x:.0%}" for x in table[:, 1:].mean(axis=0)))
    Console(width=160).print(out)


if __name__ == "__main__":
    main()
