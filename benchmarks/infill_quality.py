"""Infill quality of one or more checkpoints on the same held-out holes, without the rest of the report.

The protocol of ``harmonixr evaluate`` (section 2): ``--pieces`` original pieces of the split, the
styles in turn, one hole of 1-4 whole bars (all tracks) each; every method fills each hole
``--samples`` times (greedy and copy methods once) and is compared with the original notes. Prints,
per checkpoint, the mean metrics and the model's rows against the trivial baselines hole by hole
(mean difference, standard error, holes won/lost), and writes them to ``--out`` as JSON.

    python benchmarks/infill_quality.py models/harmonixr-small runs/infill/best --pieces 120
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.evaluation.report import measure_infill
from harmonixr.generation.modes import Generator
from harmonixr.training.batches import Corpus


def show(console: Console, title: str, rows: list[dict]) -> None:
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column, justify="left" if column in ("method", "against") else "right")
    for row in rows:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)


def holes_parser(doc: str, out: str) -> argparse.ArgumentParser:
    """The arguments of the infill benchmarks: checkpoints, and where the held-out holes come from."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--split", default="test")
    parser.add_argument("--pieces", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=out)
    return parser


def main() -> None:
    parser = holes_parser(__doc__, "results/infill-quality.json")
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=160)
    corpus, results = Corpus([args.data]), {}
    for checkpoint in args.checkpoints:
        gen = Generator(checkpoint)
        rng = np.random.default_rng(args.seed)  # the same pieces and holes for every checkpoint
        holes, _, found = measure_infill(gen, corpus, args.split, args.pieces, args.samples, args.seed, rng)
        summary = [{k: v for k, v in r.items() if k != "truth_notes_per_hole"} for r in found["infill_quality"]]
        pairs = found["infill_paired"]
        show(console, f"{checkpoint}: {len(holes)} holes", summary)
        show(console, f"{checkpoint}: hole by hole", pairs)
        results[checkpoint] = {"holes": len(holes), "summary": summary, "paired": pairs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
