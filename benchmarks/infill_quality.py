"""Infill quality of a checkpoint on held-out pieces of every source, without the rest of the report.

The protocol of ``harmonixr evaluate`` (section 2): ``--pieces`` pieces of the split per source
(folk, chorale, POP909, Groove, Freedoom, GiantMIDI, ...), a hole of ``--bars`` whole bars in the
middle of each, every track; every method fills each hole ``--samples`` times (greedy and copy
methods once) and is compared with the original notes. Prints, per source, the mean metrics, the
median fill/original note ratio, the longest time in the hole with no onset on any track (quarter
notes, seams included; the original's beside it), the model's rows against the baselines hole by hole (mean
difference, standard error, holes won/lost), and the drums: notes of the drum track in each fill
against the original's. Writes everything to ``--out`` as JSON, and each method's scores per hole
beside it (``.holes.csv``), so that ``--against`` an earlier run's JSON (the same holes: the same
flags) prints this run's model rows minus that run's, hole by hole: a change to the code or the
model weighed on the same holes.

    python benchmarks/infill_quality.py models/harmonixr-small --pieces 20 --bars 2
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.evaluation.infill_quality import paired
from harmonixr.evaluation.report import measure_infill
from harmonixr.generation.modes import Generator

METRICS = ("f1", "pitch_class_overlap")
HOLE_COLUMNS = ("source", "hole", "piece", "method", *METRICS)  # a row of the per-hole scores written beside the JSON
PAIRED = ("method", "against", "holes", "pieces", "f1", "f1_se", "f1_won_lost", "pitch_class_overlap",
          "pitch_class_overlap_se", "pitch_class_overlap_won_lost")
COLUMNS = ("method", "fills", "f1", "pitch_class_overlap", "rhythm_overlap", "velocity_distance", "notes_per_fill",
           "truth_notes_per_hole", "median_note_ratio", "onset_spread", "truth_onset_spread", "silence", "truth_silence")


def table(title: str, rows: list[dict], columns: tuple[str, ...]) -> Table:
    out = Table(title=title)
    for column in columns:
        out.add_column(column, justify="left" if column in ("method", "against", "source") else "right")
    for row in rows:
        out.add_row(*(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    return out


def drums(holes: list, fills: list[dict]) -> list[dict]:
    """Per hole of a piece with drums, and per model method: drum notes in the fills against the original's."""
    out = []
    for index, hole in enumerate(holes):
        slots = hole.piece.slots
        if hole.piece.vocab.drum_slot not in slots:
            continue
        track = hole.piece.track_of(hole.piece.vocab.drum_slot)
        for method in dict.fromkeys(r["method"] for r in fills if r["hole"] == index and r["tracks"] is not None):
            mine = [r for r in fills if r["hole"] == index and r["method"] == method]
            out.append({"source": hole.source, "hole": index, "method": method,
                        "original_drum_notes": mine[0]["truth_tracks"][track],
                        "fill_drum_notes": [r["tracks"][track] for r in mine]})
    return out


def per_hole(fills: list[dict]) -> list[dict]:
    """Each method's fills of each hole averaged (what :func:`paired` compares), to 5 decimals."""
    groups: dict[tuple, list[dict]] = {}
    for r in fills:
        groups.setdefault((r["method"], r["hole"]), []).append(r)
    return [{"source": rs[0]["source"], "hole": hole, "piece": rs[0].get("piece", hole), "method": method,
             **{m: round(float(np.mean([r[m] for r in rs])), 5) for m in METRICS}} for (method, hole), rs in groups.items()]


def holes_path(out: str) -> Path:
    """Where the per-hole scores of the run written to ``out`` go: beside it, ``.holes.csv``."""
    return Path(out).with_suffix(".holes.csv")


def write_holes(rows: list[dict], out: str) -> None:
    """Write the per-hole scores (:func:`per_hole`) of the run written to ``out`` beside it."""
    with holes_path(out).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HOLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def read_holes(out: str) -> list[dict]:
    """The per-hole scores of the run written to ``out`` (checked before this run starts)."""
    path = holes_path(out)
    if not path.exists():
        raise SystemExit(f"{out}: no {path.name} beside it (written before --against could read it); run it again")
    with path.open(newline="") as f:
        return [{**r, "hole": int(r["hole"]), "piece": int(r["piece"]), **{m: float(r[m]) for m in METRICS}}
                for r in csv.DictReader(f)]


def against(holes: list[dict], before: list[dict], path: str) -> list[dict]:
    """This run's model rows minus the same rows of an earlier run (``before``, its per-hole scores), hole by hole, per source."""
    theirs = [{**r, "method": f"{r['method']} (before)"} for r in before]
    if sorted({(r["hole"], r["source"]) for r in theirs}) != sorted({(r["hole"], r["source"]) for r in holes}):
        raise SystemExit(f"{path}: other holes than this run's (run it with the same flags)")
    methods = [m for m in dict.fromkeys(r["method"] for r in holes if r["method"].startswith("harmonixr"))
               if any(r["method"] == f"{m} (before)" for r in theirs)]
    rows = holes + theirs
    return [{"source": source, **paired([r for r in rows if source == "all" or r["source"] == source], m, f"{m} (before)")}
            for source in ["all", *sorted({r["source"] for r in holes})] for m in methods]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--split", default="test")
    parser.add_argument("--pieces", type=int, default=20, help="pieces per source")
    parser.add_argument("--bars", type=int, default=2, help="the hole's length in bars")
    parser.add_argument("--holes", type=int, default=1,
                        help="holes per piece, spread evenly (1: the middle); standard errors are then over pieces")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/infill-quality.json")
    parser.add_argument("--against", help="an earlier run's JSON (the same flags): print this run minus it, hole by hole")
    args = parser.parse_args()
    console = Console(width=200)
    before = read_holes(args.against) if args.against else []
    began = time.perf_counter()
    gen = Generator(args.checkpoint)
    holes, fills, found = measure_infill(gen, Corpus([args.data]), args.split, args.pieces, args.bars, args.samples,
                                         args.seed, np.random.default_rng(args.seed), args.holes)
    for source in dict.fromkeys(r["source"] for r in found["infill_quality"]):
        rows = [r for r in found["infill_quality"] if r["source"] == source]
        console.print(table(f"{source}: {sum(h.source == source for h in holes) if source != 'all' else len(holes)} "
                            f"holes of {args.bars} bars", rows, COLUMNS))
        pairs = [r for r in found["infill_paired"] if r["source"] == source]
        console.print(table(f"{source}: hole by hole (model minus baseline)", pairs, PAIRED))
    drum_rows = drums(holes, fills)
    for method in dict.fromkeys(r["method"] for r in drum_rows):
        mine = [r for r in drum_rows if r["method"] == method]
        with_drums = sum(all(n > 0 for n in r["fill_drum_notes"]) for r in mine if r["original_drum_notes"] > 0)
        playing = sum(r["original_drum_notes"] > 0 for r in mine)
        console.print(f"{method}: drums in every fill of {with_drums} of the {playing} holes where the original has "
                      f"drums; drum notes, original vs fills: "
                      + ", ".join(f"{r['original_drum_notes']}->{r['fill_drum_notes']}" for r in mine[:12]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"checkpoint": args.checkpoint, "holes": len(holes), "per_piece": args.holes,
                                          "bars": args.bars, "samples": args.samples, "seconds": time.perf_counter() - began,
                                          "summary": found["infill_quality"], "paired": found["infill_paired"],
                                          "drums": drum_rows}, indent=1))
    holes_scored = per_hole(fills)
    write_holes(holes_scored, args.out)
    console.print(f"wrote {args.out} ({time.perf_counter() - began:.0f} s)")
    if args.against:
        console.print(table(f"this run minus {args.against}, hole by hole", against(holes_scored, before, args.against),
                            ("source", *(c for c in PAIRED if c != "against"))))


if __name__ == "__main__":
    main()
