"""The ``harmonixr`` command: one verb per job, each a thin layer over the library."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from rich.console import Console

from harmonixr import __version__
from harmonixr.cli_generation import add_generation_verbs
from harmonixr.cli_rl import add_rl_verbs
from harmonixr.config import PrepareConfig, load_yaml, replace_fields
from harmonixr.errors import HarmonixrError

console = Console(width=None if sys.stdout.isatty() else 120)  # logs and pipes get whole tables
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


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
        f"{summary.files:,} files -> {summary.kept_pieces:,} pieces kept, {summary.notes:,} notes, "
        f"{len(summary.rejects):,} rejected "
        f"in {summary.seconds:.1f} s ({summary.files / max(summary.seconds, 1e-9):.1f} files/s; "
        f"music21 conversion {summary.convert_seconds:.1f} s; {summary.skipped_shards} shards already done)"
    )
    console.print(f"wrote {summary.out}/manifest.parquet, tokenizer.json, rejects.csv")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from harmonixr.data.stats import print_stats

    print_stats(args.folder, console)
    return 0


def _train(args: argparse.Namespace) -> int:
    from harmonixr.training.config import TrainConfig
    from harmonixr.training.trainer import train

    config = load_yaml(TrainConfig, args.config)
    run = config.run
    if args.out:
        run = replace_fields(run, out=args.out)
    if args.max_steps:
        run = replace_fields(run, max_steps=args.max_steps)
    if args.max_minutes is not None:
        run = replace_fields(run, max_minutes=args.max_minutes)
    config = replace_fields(config, run=run)
    result = train(config, resume=not args.fresh, show_progress=not args.quiet)
    console.print(f"stopped at step {result.step} ({result.stopped}); best validation "
                  f"{result.best_val / math.log(2):.4f} bits per learned position; checkpoints in {result.out}/latest and best")
    return 0


def _ngram(args: argparse.Namespace) -> int:
    from harmonixr.training.batches import fit_ngram
    from harmonixr.training.config import TrainConfig

    config = load_yaml(TrainConfig, args.config) if args.config else TrainConfig()
    if args.data:
        config = replace_fields(config, data=replace_fields(config.data, folders=tuple(args.data)))
    model, tokens = fit_ngram(config, args.examples, args.order)
    model.save(args.out)
    console.print(f"fitted an order-{args.order} n-gram model on {args.examples:,} training examples "
                  f"({tokens:,} tokens); wrote {args.out}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from harmonixr.evaluation.compare import compare, print_tables, write_rows

    rows = compare(args.models, args.data, args.split, args.block_size, args.holes, args.max_pieces)
    print_tables(rows, console, args.split)
    if args.out:
        write_rows(rows, args.out)
        console.print(f"wrote {args.out}.json and .csv")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from harmonixr.evaluation.report import ReportConfig, evaluate

    config = load_yaml(ReportConfig, args.config) if args.config else ReportConfig()
    changes = {k: v for k, v in (("split", args.split), ("max_pieces", args.max_pieces), ("seed", args.seed)) if v is not None}
    evaluate(args.checkpoint, args.data, args.out, replace_fields(config, **changes), tuple(args.baseline), console)
    return 0


def _prefs(args: argparse.Namespace) -> int:
    import json

    from harmonixr.rl.preferences import PreferenceStore

    store = PreferenceStore(args.db)
    if args.action == "add":
        if not (args.a and args.b and args.choice and args.who):
            raise HarmonixrError("prefs add needs --a A.mid --b B.mid --choice a|b|tie --who NAME")
        prompt = json.loads(args.prompt) if args.prompt else {}
        new = store.add(prompt, Path(args.a).read_bytes(), Path(args.b).read_bytes(), args.choice, args.who, args.note or "")
        console.print(f"stored comparison {new} in {args.db} ({store.count()} in all)")
    elif args.action == "list":
        for c in store.list(args.limit):
            console.print(f"{c.id:>6}  {c.created}  {c.who:<12} chose {c.choice:<3}  {json.dumps(c.prompt)[:80]}")
        console.print(f"{store.count()} comparisons in {args.db}")
    else:
        if not args.out:
            raise HarmonixrError("prefs export needs --out FOLDER")
        console.print(f"wrote {store.export(args.out)} and the MIDI pairs")
    return 0


def _curves(args: argparse.Namespace) -> int:
    from harmonixr.visualization.curves import plot_curves

    console.print(f"wrote {plot_curves(args.runs, args.out)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from harmonixr.models.export import export_hf

    console.print(f"wrote {export_hf(args.checkpoint, args.out)} (LlamaForCausalLM)")
    return 0


def _fuzz(args: argparse.Namespace) -> int:
    import json

    from rich.table import Table

    from harmonixr.data.fuzz import fuzz, is_failure
    from harmonixr.generation.demo import EXAMPLES, example_score
    from harmonixr.progress import progress_bar

    seeds = [example_score(name).dumps_midi() for name in EXAMPLES]
    for folder in args.seeds or []:
        files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".mid", ".midi"))[: args.max_seeds]
        seeds += [p.read_bytes() for p in files]
    out = Path(args.out)
    with progress_bar("inputs", args.inputs, not args.quiet) as advance:
        report = fuzz(seeds, args.inputs, args.seed, args.workers, args.minutes, keep=out / "failures",
                      progress=advance)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report.as_dict(), indent=1))
    table = Table(title=f"{report.inputs:,} inputs from {report.seeds} seed files in {report.seconds:.0f} s")
    table.add_column("outcome")
    table.add_column("inputs", justify="right")
    for outcome, count in report.outcomes.most_common():
        table.add_row(("[red]" if is_failure(outcome) else "") + outcome, f"{count:,}")
    console.print(table)
    console.print(f"failure classes: {report.failure_classes or 'none'}; wrote {out / 'report.json'}")
    return 1 if report.failures else 0


def _serve(args: argparse.Namespace) -> int:
    from harmonixr.cli_generation import default_model
    from harmonixr.web.config import StudioConfig

    config = load_yaml(StudioConfig, args.config) if args.config else StudioConfig()
    changes = {k: v for k, v in (("model", args.model), ("host", args.host), ("port", args.port),
                                 ("prefs", args.prefs), ("workdir", args.workdir)) if v is not None}
    config = replace_fields(config, **changes)
    from harmonixr.web.studio import open_studio

    studio = open_studio(config, config.model or default_model())
    from harmonixr.web.app import serve

    console.print(f"harmonixr studio: http://{config.host}:{config.port}/ (choices go to {studio.store.path}; "
                  f"files in {studio.workdir}); Ctrl+C stops it")
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("harmonixr.studio").setLevel(logging.INFO)  # a line per request
    serve(studio)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harmonixr", description="Symbolic music generation with Transformers.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"harmonixr {__version__}")
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
    p.add_argument("--per-collection", type=int,
                   help="at most this many files per music21 collection (an ABC file holds many tunes)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_prepare)

    t = verbs.add_parser("train", help="train or resume a model (also under torchrun for DDP)")
    t.add_argument("--config", required=True, help="YAML file of TrainConfig (see configs/default.yaml)")
    t.add_argument("--out", help="run folder (overrides run.out)")
    t.add_argument("--max-steps", type=int, help="overrides run.max_steps")
    t.add_argument("--max-minutes", type=float, help="overrides run.max_minutes")
    t.add_argument("--fresh", action="store_true", help="start over even if OUT/latest exists")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(run=_train)

    n = verbs.add_parser("ngram", help="fit the n-gram baseline on training examples")
    n.add_argument("--config", help="TrainConfig YAML whose data/objective to use (default: built-in)")
    n.add_argument("--data", action="append", help="prepared folder (repeatable; default: the config's)")
    n.add_argument("--examples", type=int, default=40000, help="training examples to count")
    n.add_argument("--order", type=int, default=6)
    n.add_argument("--out", required=True, help="output folder")
    n.set_defaults(run=_ngram)

    c = verbs.add_parser("compare", help="bits per note of several models on one split, same examples")
    c.add_argument("models", nargs="+", help="checkpoint directories or n-gram folders")
    c.add_argument("--data", action="append", required=True, help="prepared folder (repeatable)")
    c.add_argument("--split", default="test")
    c.add_argument("--block-size", type=int, default=1024)
    c.add_argument("--holes", type=int, default=2, help="infill holes per piece")
    c.add_argument("--max-pieces", type=int, default=0,
                   help="score the first N pieces of each source family (folk, chorale, pop909, ...; 0: all)")
    c.add_argument("--out", help="write OUT.json and OUT.csv")
    c.set_defaults(run=_compare)

    v = verbs.add_parser("evaluate", help="the evaluation report of a model: one HTML page plus CSV/JSON")
    v.add_argument("checkpoint")
    v.add_argument("--data", action="append", required=True, help="prepared folder (repeatable)")
    v.add_argument("--split", help="split to evaluate (default: test)")
    v.add_argument("--out", required=True, help="report folder")
    v.add_argument("--baseline", action="append", default=[], help="another checkpoint or n-gram folder to compare (repeatable)")
    v.add_argument("--max-pieces", type=int, help="likelihood on the first N pieces only (default: all)")
    v.add_argument("--seed", type=int)
    v.add_argument("--config", help="YAML of ReportConfig (how many pieces, holes, samples, trials)")
    v.set_defaults(run=_evaluate)

    q = verbs.add_parser("prefs", help="the A/B preference store (SQLite): add, list, export")
    q.add_argument("action", choices=["add", "list", "export"])
    q.add_argument("--db", default="prefs.sqlite", help="the SQLite file (default: prefs.sqlite)")
    q.add_argument("--a", help="add: MIDI file of sample A")
    q.add_argument("--b", help="add: MIDI file of sample B")
    q.add_argument("--choice", choices=["a", "b", "tie"], help="add: which one is preferred")
    q.add_argument("--who", help="add: who chose")
    q.add_argument("--prompt", help="add: what was asked, as JSON")
    q.add_argument("--note", help="add: free text")
    q.add_argument("--limit", type=int, default=20, help="list: newest N (0: all)")
    q.add_argument("--out", help="export: folder for preferences.jsonl and the MIDI pairs")
    q.set_defaults(run=_prefs)

    k = verbs.add_parser("curves", help="plot training and validation loss of one or more runs")
    k.add_argument("runs", nargs="+", help="run folders (with metrics.jsonl)")
    k.add_argument("--out", required=True, help="PNG file")
    k.set_defaults(run=_curves)

    e = verbs.add_parser("export", help="write a checkpoint in another format (hf: LlamaForCausalLM)")
    e.add_argument("checkpoint")
    e.add_argument("--format", choices=["hf"], default="hf")
    e.add_argument("--out", required=True)
    e.set_defaults(run=_export)

    add_generation_verbs(verbs, console)
    add_rl_verbs(verbs, console)

    f = verbs.add_parser("fuzz", help="mutated real MIDI files through parse -> tokenize -> decode -> write")
    f.add_argument("--seeds", action="append", help="folder of seed MIDI files (repeatable; the bundled examples always)")
    f.add_argument("--max-seeds", type=int, default=50, help="seed files per folder at most")
    f.add_argument("--inputs", type=int, default=2000, help="mutated inputs to try")
    f.add_argument("--minutes", type=float, help="stop after this long even if fewer inputs were tried")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--workers", type=int, default=2)
    f.add_argument("--out", default="runs/fuzz", help="report.json and failures/ (the inputs that failed)")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(run=_fuzz)

    w = verbs.add_parser("serve", help="the web studio: open, infill, hear, download, choose (Gradio)")
    w.add_argument("--config", help="YAML of StudioConfig (see configs/serve.yaml: limits, port, store)")
    w.add_argument("--model", help="checkpoint directory (default: the shipped models/harmonixr-small)")
    w.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0: every interface)")
    w.add_argument("--port", type=int, help="default 7860")
    w.add_argument("--prefs", help="the SQLite preference store (default runs/prefs.sqlite)")
    w.add_argument("--workdir", help="folder for uploads and results (default: a new temporary folder)")
    w.set_defaults(run=_serve)

    s = verbs.add_parser("stats", help="pieces/notes/hours per style and split, reject reasons")
    s.add_argument("folder", type=Path)
    s.set_defaults(run=_stats)
    for verb in verbs.choices.values():  # every --help shows the defaults
        verb.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb. Bad input (a :class:`HarmonixrError`, a missing file) is one line on stderr and
    exit code 2; anything else is a bug and keeps its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (HarmonixrError, FileNotFoundError) as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
