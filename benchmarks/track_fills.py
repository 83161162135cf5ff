"""One track rewritten under the others kept: fills against the track's own bars before the hole.

A hole of ``--bars`` whole bars in the middle of up to ``--pieces`` pieces per family of ``--split``
that have two tracks or more, on one melodic track (drawn among those with two notes or more in
the hole; the other tracks stay), filled ``--samples`` times with ``--source sampled`` under each
weight of ``--leans`` of ``harmony.SOUNDING_LEAN`` (the lean of a new note's pitch logits to
the pitch classes the kept tracks sound at its onset), and once piece-aware (the default source,
the track's own spans). Each fill's notes on that track are compared with the original's (note F1
on the grid: onset and pitch; pitch-class overlap), beside copying the track's bars just before
the hole; per family, each lean minus the first and the last lean minus the copy, hole by hole
(mean ± standard error).

The lean was chosen on the training and validation splits; the test split measures it:

    python benchmarks/track_fills.py --split val --pieces 30 --leans 0,0.5,1,1.5,2
    python benchmarks/track_fills.py --split test --pieces 40 --leans 0,2
"""

from __future__ import annotations

import numpy as np
from copy_choice import note_f1, pitch_class_overlap  # a sibling script
from holes import held_out_holes, hole_parser  # a sibling script
from rich.console import Console
from rich.table import Table

import harmonixr.generation.harmony as harmony
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Piece, Region
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.tokens.notes import BAR, TRACK
from harmonixr.tokens.prompt import Hole

MIN_NOTES = 2  # notes of the track in the hole for it to be rewritten


def minus(a: np.ndarray, b: np.ndarray) -> str:
    """Columns (F1, overlap) of ``a`` minus ``b``, hole by hole: mean ± standard error of each."""
    d = a - b
    se = d.std(0, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.full(2, np.nan)
    return f"{d[:, 0].mean():+.3f}±{se[0]:.3f} / {d[:, 1].mean():+.3f}±{se[1]:.3f}"


def scores(gen: Generator, piece: Piece, region: Region, slot: int, truth: np.ndarray, source: str, n: int,
           seed: int) -> list[float]:
    """(note F1, pitch-class overlap) of ``n`` fills of ``region`` (one track) against ``truth``,
    the track's notes in the hole, averaged over the fills."""
    span = Hole(region.start, region.end)
    made = [Piece.from_score(r.score, gen.vocab, piece.style).notes
            for r in gen.infill(piece, region, n, SamplingConfig(), seed, source=source)]
    made = [x[span.contains(x, gen.vocab) & (x[:, TRACK] == slot)] for x in made]
    return [float(np.mean([note_f1(x, truth) for x in made])), float(np.mean([pitch_class_overlap(x, truth) for x in made]))]


def main() -> None:
    parser = hole_parser(__doc__)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--leans", default="0,0.5,1,1.5,2", help="weights of SOUNDING_LEAN to try")
    args = parser.parse_args()
    leans = [float(x) for x in args.leans.split(",")]
    gen = Generator(args.checkpoint)
    holes = held_out_holes(args, gen.vocab)
    rng = np.random.default_rng(args.seed + 1)
    default = harmony.SOUNDING_LEAN
    found: dict[str, list[list[float]]] = {}  # family -> per hole: (F1, overlap) of copy, piece-aware, each lean
    for index, h in enumerate(holes):
        piece, span = h.piece, h.span
        inside = piece.notes[span.contains(piece.notes, gen.vocab)]
        melodic = [s for s in np.unique(inside[:, TRACK]).tolist()
                   if s != gen.vocab.drum_slot and (inside[:, TRACK] == s).sum() >= MIN_NOTES]
        if len(piece.slots) < 2 or not melodic:
            continue
        slot = int(rng.choice(melodic))
        truth = inside[inside[:, TRACK] == slot]
        first, last = h.first_bar, h.first_bar + h.bars
        before = piece.notes[(piece.notes[:, BAR] >= first - h.bars) & (piece.notes[:, BAR] < first)
                             & (piece.notes[:, TRACK] == slot)].copy()
        before[:, BAR] += h.bars
        row = [note_f1(before, truth), pitch_class_overlap(before, truth)]
        region = Region((first, 0), (last, 0), (piece.track_of(slot),))

        row += scores(gen, piece, region, slot, truth, "piece", 1, args.seed + index)
        try:
            for lean in leans:
                harmony.SOUNDING_LEAN = lean
                row += scores(gen, piece, region, slot, truth, "sampled", args.samples, args.seed + index)
        finally:
            harmony.SOUNDING_LEAN = default
        found.setdefault(h.source, []).append(row)
    table = Table(title=f"one track rewritten under the others: {args.bars} bars, {args.split} split, note F1 / "
                        f"pitch-class overlap (default lean {default:g})")
    for column in ("family", "holes", "copy the bars before", "piece-aware",
                   *(f"sampled, lean {x:g}" for x in leans), *(f"lean {x:g} minus {leans[0]:g}" for x in leans[1:]),
                   f"lean {leans[-1]:g} minus the copy"):
        table.add_column(column, justify="left" if column == "family" else "right")
    for family, values in [*sorted(found.items()), ("all", [r for rs in found.values() for r in rs])]:
        v = np.array(values)
        means = [f"{v[:, k].mean():.3f} / {v[:, k + 1].mean():.3f}" for k in range(0, v.shape[1], 2)]
        diffs = [minus(v[:, k : k + 2], v[:, 4:6]) for k in range(6, v.shape[1], 2)] + [minus(v[:, -2:], v[:, 0:2])]
        table.add_row(family, str(len(v)), *means, *diffs)
    Console(width=260).print(table)


if __name__ == "__main__":
    main()
