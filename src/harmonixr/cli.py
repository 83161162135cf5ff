"""The ``harmonixr`` command: one verb per job, each a thin layer over the library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from harmonixr.config import ConfigError, PrepareConfig, load_yaml, replace_fields

console = Console(width=None if sys.stdout.isatty() else 120)  # logs and pipes get whole tables


def _prepare(args: argparse.Namespace) -> int:
    from harmonixr.data.prepare import Music21Selection, prepare
    from harmonixr.data.stats import print_stats

    config = load_yaml(PrepareConfig, args.config) if args.config else PrepareConfig()
    if args.workers:
        config = replace_fields(config, workers=args.workers)
    selection = Music21Selection(tuple(args.collections.split(",")) if args.collections else None,
                                 args.per_collection)
    summary = prepare(args.source, args.out, config, metadata=args.metadata, style=args.style,
                      selection=selection, show_progress=not args.quiet)
    print_stats(summary.out, console)
    console.print(
        f"{summary.files:,} files -> {summary.kept_pieces:,} pieces kept, {summary.rows:,} rows "
        f"(with augmented variants), {summary.tokens:,} tokens, {len(summary.rejects):,} rejected "
        f"in {summary.seconds:.1f} s ({summary.files / max(summary.seconds, 1e-9):.1f} files/s; "
        f"music21 conversion {summary.convert_seconds:.1f} s; {summary.skipped_shards} shards already done)"
    )
    console.print(f"wrote {summary.out}/manifest.parquet, tokenizer.json, rejects.csv")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from harmonixr.data.stats import print_stats

    print_stats(args.folder, console)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harmonixr", description="Symbolic music generation with Transformers.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("prepare", help="MIDI sources -> validated, quantized, augmented token shards")
    p.add_argument("--source", action="append", required=True,
                   help="'music21' (the bundled corpus) or a folder of MIDI files; repeat for several")
    p.add_argument("--out", required=True, help="output folder (re-running resumes)")
    p.add_argument("--metadata", help="CSV with path,style|genre[,collection,composer,title,group,split]")
    p.add_argument("--style", help="style of files the metadata does not label")
    p.add_argument("--config", help="YAML file of PrepareConfig (see configs/prepare.yaml)")
    p.add_argument("--workers", type=int, help="worker processes (default: config, 2)")
    p.add_argument("--collections", help="music21 collections to use, comma-separated (default: all)")
    p.add_argument("--per-collection", type=int, help="at most this many files per music21 collection (an ABC file holds many tunes)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_prepare)

    s = verbs.add_parser("stats", help="pieces/notes/tokens per style and split, reject reasons")
    s.add_argument("folder", type=Path)
    s.set_defaults(run=_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
