"""Score several models on one split of one corpus: the table that decides between them.

``harmonixr compare CKPT [CKPT ...] --data DIR --split test`` loads each model (a checkpoint
directory, or an n-gram folder from ``harmonixr ngram``), scores the same examples with each
(:mod:`harmonixr.evaluation.likelihood`) and prints and writes bits per note, overall, per field
and per source, for plain windows, for infill holes, and for the same holes without the music
after them (what that music is worth).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.evaluation.likelihood import GROUPS, Scorer, Tally
from harmonixr.generation.piece import family
from harmonixr.models.checkpoint import load_checkpoint
from harmonixr.models.ngram import NGRAM_META, NGramModel
from harmonixr.models.transformer import NoteTransformer
from harmonixr.runtime import autocast_dtype, pick_device
from harmonixr.tokens.echo import add_echoes
from harmonixr.tokens.prompt import Rows
from harmonixr.tokens.vocab import COL, FUTURE, NOTE, PAST, NoteVocab
from harmonixr.training.batches import infill_examples, scoring_windows
from harmonixr.training.config import ObjectiveConfig
from harmonixr.training.examples import ExampleMaker

EVAL_OBJECTIVE = ObjectiveConfig(infill_rate=1.0, drop_style=0.0, drop_control=0.0, drop_track_controls=0.0,
                                 drop_track_control=0.0)
TASKS = ("next-note", "infill", "infill, left context only")


@dataclass
class EvalSet:
    """The examples every model scores, with the source and style of each."""

    plain: list[Rows]
    plain_labels: list[tuple[str, str]]
    infill: list[Rows]
    infill_labels: list[tuple[str, str]]
    pieces: int


def build_eval_set(corpus: Corpus, split: str, block_size: int, holes_per_piece: int = 2,
                   max_pieces: int = 0, seed: int = 0) -> EvalSet:
    """Plain scoring windows of every piece of ``split`` and ``holes_per_piece`` infill examples
    each (controls measured on the hole, none dropped). ``max_pieces``: at most so many per source
    family (:func:`~harmonixr.generation.piece.family`: folk, chorale, classical, pop909, ...), by
    which the rows are labelled."""
    rows = per_source(corpus.rows(split), max_pieces)
    plain_maker = ExampleMaker(corpus.vocab, block_size, ObjectiveConfig())
    infill_maker = ExampleMaker(corpus.vocab, block_size, EVAL_OBJECTIVE)
    out = EvalSet([], [], [], [], len(rows))
    for index, (shards, row) in enumerate(rows):
        piece = corpus.piece(shards, row)
        windows = list(scoring_windows(plain_maker, piece))
        holes = infill_examples(infill_maker, piece, holes_per_piece, seed=seed + index)
        out.plain += windows
        out.plain_labels += [(family(row), row["style"])] * len(windows)
        out.infill += holes
        out.infill_labels += [(family(row), row["style"])] * len(holes)
    return out


def per_source(rows: list, limit: int) -> list:
    """The first ``limit`` rows of each source family (all of them for 0), in order."""
    if not limit:
        return rows
    seen: dict[str, int] = {}
    out = []
    for shards, row in rows:
        seen[family(row)] = seen.get(family(row), 0) + 1
        if seen[family(row)] <= limit:
            out.append((shards, row))
    return out


def load_scoring_model(path: str | Path, device: torch.device) -> tuple[str, NoteTransformer | NGramModel]:
    """(label, model) of a checkpoint directory or an n-gram folder."""
    path = Path(path)
    if (path / NGRAM_META).is_file():
        model = NGramModel.load(path)
        return f"n-gram (order {model.order})", model
    loaded = load_checkpoint(path, device)
    n_params = sum(p.numel() for p in loaded.model.parameters())
    return f"{path.parent.name}/{path.name} ({n_params / 1e6:.1f}M)", loaded.model


def without_right_context(example: Rows, vocab: NoteVocab) -> Rows:
    """The same hole and fill without the music after the hole's start (the future segment's notes
    are removed; the hole's own rows stay), so only what that music is worth changes. The echoes
    are worked out again: a fill note's later echoes held that music's pitches."""
    rows = example.rows
    future_notes = (rows[:, COL["segment"]] == FUTURE) & (rows[:, COL["type"]] == NOTE)
    if not future_notes.any():
        return example
    keep = ~future_notes
    dropped = int(future_notes[: example.fill_start].sum())
    assert rows[keep][:, COL["type"]].tolist().count(PAST) == 1
    return dataclasses.replace(example, rows=add_echoes(rows[keep], vocab), target=example.target[keep],
                               fill_start=example.fill_start - dropped)


def compare(paths: list[str | Path], folders: list[str], split: str = "test", block_size: int = 1024,
            holes_per_piece: int = 2, max_pieces: int = 0, device: str = "auto") -> list[dict]:
    """One result row per (model, task, source): bits per note overall and per field."""
    corpus = Corpus(folders)
    dev = pick_device(device)
    scorer = Scorer(corpus.vocab, device=dev, dtype=autocast_dtype("fp32", dev))
    evalset = build_eval_set(corpus, split, block_size, holes_per_piece, max_pieces)
    left_only = [without_right_context(e, corpus.vocab) for e in evalset.infill]
    tasks = [("next-note", evalset.plain, evalset.plain_labels), ("infill", evalset.infill, evalset.infill_labels),
             ("infill, left context only", left_only, evalset.infill_labels)]
    rows: list[dict] = []
    for path in paths:
        label, model = load_scoring_model(path, dev)
        for task, examples, labels in tasks:
            tallies: dict[str, Tally] = scorer.score(model, examples, [source for source, _ in labels])
            for source, tally in sorted(tallies.items()):
                rows.append({"model": label, "path": str(path), "task": task, "source": source,
                             "notes": tally.notes, **tally.per_note()})
    return rows


def write_rows(rows: list[dict], out: str | Path) -> None:
    """``out``.json and ``out``.csv of the result rows."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    write_csv(out.with_suffix(".csv"), rows)


def write_csv(path: Path, rows: list[dict]) -> None:
    """``rows`` (dicts with the same keys) as a CSV file with a header; nothing for no rows."""
    if not rows:
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def print_tables(rows: list[dict], console: Console, split: str = "test") -> None:
    """Per task: models x fields (all sources), then models x sources (bits per note)."""
    for task in TASKS:
        mine = [r for r in rows if r["task"] == task]
        if not mine:
            continue
        table = Table(title=f"{task}: bits per note ({split} split, all sources)")
        table.add_column("model")
        for column in ("bits_per_note", "comparable", *GROUPS, "notes"):
            table.add_column(column.replace("bits_per_note", "overall"), justify="right")
        for r in (r for r in mine if r["source"] == "all"):
            table.add_row(r["model"], *(f"{r[c]:.3f}" for c in ("bits_per_note", "comparable", *GROUPS)), f"{r['notes']:,}")
        console.print(table)
        sources = sorted({r["source"] for r in mine} - {"all"})
        table = Table(title=f"{task}: bits per note per source ({split} split)")
        table.add_column("model")
        for source in sources:
            table.add_column(source, justify="right")
        for model in dict.fromkeys(r["model"] for r in mine):
            by_source = {r["source"]: r for r in mine if r["model"] == model}
            table.add_row(model, *(f"{by_source[s]['bits_per_note']:.3f}" if s in by_source else "-" for s in sources))
        console.print(table)
