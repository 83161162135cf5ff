"""Do a fill's variations differ? Holes with two or more variations alike, per family.

A hole of ``--bars`` whole bars, every track, in the middle of up to ``--pieces`` pieces per
family of ``--split``, filled ``-n`` times by each source (``--sources``); two variations are
alike when they write the same notes (track, onset, length, pitch and velocity) in the hole.

    python benchmarks/variations.py --split test --pieces 20
"""

from __future__ import annotations

from holes import held_out_holes, hole_parser  # a sibling script
from rich.console import Console
from rich.table import Table

from harmonixr.evaluation.report import SAMPLING
from harmonixr.generation.modes import Generator
from harmonixr.generation.requests import Result


def written(result: Result) -> tuple[tuple[int, int, int, int, int], ...]:
    """The notes a result writes in its region: (track, onset, length, pitch, velocity)."""
    return tuple((k, n.time, n.duration, n.pitch, n.velocity) for k, track in enumerate(result.score.tracks)
                 for n in track.notes if result.start_tick <= n.time < (result.end_tick or n.time + 1))


def main() -> None:
    parser = hole_parser(__doc__, pieces=20)
    parser.add_argument("-n", type=int, default=3, help="variations a hole")
    parser.add_argument("--sources", default="piece,best,sampled")
    args = parser.parse_args()
    gen = Generator(args.checkpoint)
    holes = held_out_holes(args, gen.vocab)
    families = sorted({h.source for h in holes})
    table = Table(title=f"holes whose {args.n} variations are not all different ({len(holes)} holes of {args.bars} "
                        f"bars, {args.split} split)")
    for column in ("source", *families, "all"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for source in args.sources.split(","):
        alike = {family: [0, 0] for family in families}
        for index, hole in enumerate(holes):
            made = gen.infill(hole.piece, hole.region, args.n, SAMPLING, args.seed + index, source=source)
            alike[hole.source][0] += len({written(r) for r in made}) < len(made)
            alike[hole.source][1] += 1
        total = [sum(a for a, _ in alike.values()), len(holes)]
        table.add_row(source, *(f"{a} of {n}" for a, n in (*alike.values(), total)))
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
