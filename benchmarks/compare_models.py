"""Same-budget comparison: the main Transformer, its structural-embedding ablations and the baselines.

Trains every variant of ``configs/compare.yaml`` (same data, split, steps, batch; resumable, and a
finished run is not retrained), fits the n-gram baseline, then scores them all on the same windows
and holes with ``harmonixr compare`` and prints the tables (bits per note, overall, per token group,
per style). Extra checkpoints (the shipped model) can be added to the scoring with ``--extra``.

    python benchmarks/compare_models.py                        # train all, score on val and test
    python benchmarks/compare_models.py --extra models/harmonixr-small --skip-train
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rich.console import Console

from harmonixr.config import load_yaml, replace_fields
from harmonixr.evaluation.compare import compare, print_tables, write_rows
from harmonixr.models.ngram import NGRAM_META, fit_on_corpus
from harmonixr.models.structure import FEATURES
from harmonixr.training.config import TrainConfig
from harmonixr.training.trainer import train

ABLATIONS = {
    "transformer": {},
    "no-type": {"features": tuple(f for f in FEATURES if f != "type")},
    "no-position": {"features": tuple(f for f in FEATURES if f not in ("phase", "beat"))},
    "no-bar": {"features": tuple(f for f in FEATURES if f != "bar")},
    "no-track": {"features": tuple(f for f in FEATURES if f != "track")},
    "tokens-only": {"features": ()},
}
BASELINES = {
    "lstm": {"kind": "lstm", "d_model": 256, "n_layers": 2, "features": ()},
    "encdec": {"kind": "encdec", "n_layers": 2, "encoder_layers": 2},
}
NGRAM_EXAMPLES = 40_000


def variant_config(base: TrainConfig, name: str, changes: dict, seed: int = 0) -> TrainConfig:
    """``base`` with the variant's model changes; seed 0 runs in runs/compare/NAME, others in NAME-sSEED."""
    model = dataclasses.replace(base.model, **changes)
    folder = name if seed == 0 else f"{name}-s{seed}"
    run = replace_fields(base.run, out=str(Path(base.run.out) / folder), seed=seed)
    return replace_fields(base, model=model, run=run)


def fit_ngram(base: TrainConfig, out: Path, order: int) -> Path:
    if (out / NGRAM_META).is_file():
        return out
    fit_on_corpus(base, NGRAM_EXAMPLES, order)[0].save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/compare.yaml")
    parser.add_argument("--only", help="comma-separated variant names to train/score (default: all)")
    parser.add_argument("--extra", action="append", default=[], help="more checkpoints to score")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--splits", default="val,test")
    parser.add_argument("--max-pieces", type=int, default=0)
    parser.add_argument("--order", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0, help="training seed (another seed: another run folder)")
    parser.add_argument("--results", default="results/compare")
    args = parser.parse_args()
    console = Console(width=140)

    base = load_yaml(TrainConfig, args.config)
    variants = {**ABLATIONS, **BASELINES}
    if args.only:
        variants = {k: v for k, v in variants.items() if k in args.only.split(",")}
    paths = []
    for name, changes in variants.items():
        config = variant_config(base, name, changes, args.seed)
        if not args.skip_train:
            console.print(f"[bold]training {name}[/bold] -> {config.run.out}")
            train(config, resume=True)
        paths.append(Path(config.run.out) / "latest")
    ngram = fit_ngram(base, Path(base.run.out) / "ngram", args.order)
    for split in filter(None, args.splits.split(",")):
        rows = compare([*args.extra, *paths, ngram], list(base.data.folders), split, base.data.block_size,
                       max_pieces=args.max_pieces)
        console.rule(f"{split} split")
        print_tables(rows, console, split)
        write_rows(rows, f"{args.results}-{split}" + (f"-s{args.seed}" if args.seed else ""))


if __name__ == "__main__":
    main()
