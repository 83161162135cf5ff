"""Score several models on one split of one corpus: the table that decides between them.

``harmonixr compare CKPT [CKPT ...] --data DIR --split test`` loads each model (a checkpoint
directory, or an n-gram folder from ``harmonixr ngram``), scores the same examples with each
(:mod:`harmonixr.evaluation.likelihood`) and prints and writes bits per note, overall, per token
group and per style, for plain windows and for infill holes.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from harmonixr.evaluation.likelihood import GROUPS, Scorer, Tally
from harmonixr.models.ngram import NGRAM_META, NGramModel
from harmonixr.runtime import autocast_dtype, pick_device
from harmonixr.training.batches import Corpus, infill_examples, scoring_windows
from harmonixr.training.checkpoint import load_checkpoint
from harmonixr.training.config import ObjectiveConfig
from harmonixr.training.examples import Example, ExampleMaker

EVAL_OBJECTIVE = ObjectiveConfig(infill_rate=1.0, drop_style=0.0, drop_control=0.0)


@dataclass
class EvalSet:
    """The examples every model scores, with the style of each."""

    plain: list[Example]
    plain_styles: list[str]
    infill: list[Example]
    infill_styles: list[str]
    pieces: int


def build_eval_set(corpus: Corpus, split: str, block_size: int, holes_per_piece: int = 2,
                   max_pieces: int = 0, seed: int = 0, layout: str = "context") -> EvalSet:
    """Plain scoring windows of every piece of ``split`` and ``holes_per_piece`` infill examples each,
    laid out as ``layout`` (the same holes in every layout)."""
    rows = [(s, r) for s, r in corpus.rows(split) if r["variant"] == "original"]
    if max_pieces:
        rows = rows[:max_pieces]
    plain_maker = ExampleMaker(corpus.vocab, block_size, ObjectiveConfig())
    infill_maker = ExampleMaker(corpus.vocab, block_size, dataclasses.replace(EVAL_OBJECTIVE, infill_layout=layout))
    out = EvalSet([], [], [], [], len(rows))
    for index, (shards, row) in enumerate(rows):
        ids = np.asarray(shards.tokens(row))
        windows = list(scoring_windows(plain_maker, ids))
        holes = infill_examples(infill_maker, ids, holes_per_piece, seed=seed + index)
        out.plain += windows
        out.plain_styles += [row["style"]] * len(windows)
        out.infill += holes
        out.infill_styles += [row["style"]] * len(holes)
    return out


def load_scoring_model(path: str | Path, device: torch.device) -> tuple[str, torch.nn.Module | NGramModel, str]:
    """(label, model, infill layout) of a checkpoint directory or an n-gram folder."""
    path = Path(path)
    if (path / NGRAM_META).is_file():
        model = NGramModel.load(path)
        return f"n-gram (order {model.order})", model, "context"
    loaded = load_checkpoint(path, device)
    n_params = sum(p.numel() for p in loaded.model.parameters())
    label = f"{loaded.model_config.kind} {path.parent.name}/{path.name} ({n_params / 1e6:.1f}M)"
    return label, loaded.model, loaded.infill_layout


def compare(paths: list[str | Path], folders: list[str], split: str = "test", block_size: int = 512,
            holes_per_piece: int = 2, max_pieces: int = 0, device: str = "auto", left_only: bool = False) -> list[dict]:
    """One result row per (model, task, style): bits per note overall and per token group.

    ``left_only``: also the task ``infill, left context only``, the same holes with the music
    after each removed (:func:`without_right_context`).
    """
    corpus = Corpus(folders)
    dev = pick_device(device)
    scorer = Scorer(corpus.vocab, corpus.structure, device=dev, dtype=autocast_dtype("fp32", dev))
    tasks: dict[str, list] = {}  # by infill layout: each model scores the holes as it was trained
    rows: list[dict] = []
    for path in paths:
        label, model, layout = load_scoring_model(path, dev)
        if layout not in tasks:
            evalset = build_eval_set(corpus, split, block_size, holes_per_piece, max_pieces, layout=layout)
            tasks[layout] = [("next-token", evalset.plain, evalset.plain_styles),
                             ("infill", evalset.infill, evalset.infill_styles)]
            if left_only:
                tasks[layout].append(("infill, left context only",
                                      [without_right_context(e, corpus.vocab) for e in evalset.infill],
                                      evalset.infill_styles))
        for task, examples, styles in tasks[layout]:
            tallies: dict[str, Tally] = scorer.score(model, examples, styles)
            for style, tally in sorted(tallies.items()):
                rows.append({"model": label, "path": str(path), "task": task, "style": style,
                             "notes": tally.notes, "tokens": tally.tokens, **tally.per_note()})
    return rows


def without_right_context(example: Example, vocab) -> Example:  # noqa: ANN001 - Vocab
    """The same hole and fill without the music after the hole: the context stops at the end marker
    (as training trims contexts), so only what the music after the hole is worth changes. In the
    "spm" layout the bars before the hole, from ``Infill_Fill`` on, stay too."""
    ids = example.ids
    fill_token = int(np.flatnonzero(ids == vocab.fill_id)[0])
    marks = np.flatnonzero(ids[:fill_token] == vocab.hole_id)
    spm = marks[0] < np.flatnonzero(ids == vocab.bar_id)[0]  # a leading Infill_Hole
    if len(marks) < 2 + spm:  # an open-ended hole has no music after it anyway
        return example
    keep = np.r_[np.arange(marks[-1] + 1), np.arange(fill_token, len(ids))]
    dropped = fill_token - marks[-1] - 1
    return dataclasses.replace(example, ids=ids[keep], target_mask=example.target_mask[keep],
                               fill_start=example.fill_start - dropped)


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
    """Per task: models x token groups (all styles), then models x styles (bits per note)."""
    for task in ("next-token", "infill"):
        table = Table(title=f"{task}: bits per note ({split} split, all styles)")
        table.add_column("model")
        for column in ("bits_per_note", *GROUPS, "notes"):
            table.add_column(column.replace("bits_per_note", "overall"), justify="right")
        for r in (r for r in rows if r["task"] == task and r["style"] == "all"):
            table.add_row(r["model"], *(f"{r[c]:.3f}" for c in ("bits_per_note", *GROUPS)), f"{r['notes']:,}")
        console.print(table)
        styles = sorted({r["style"] for r in rows if r["task"] == task} - {"all"})
        table = Table(title=f"{task}: bits per note per style ({split} split)")
        table.add_column("model")
        for style in styles:
            table.add_column(style, justify="right")
        for model in dict.fromkeys(r["model"] for r in rows):
            by_style = {r["style"]: r for r in rows if r["task"] == task and r["model"] == model}
            table.add_row(model, *(f"{by_style[s]['bits_per_note']:.3f}" if s in by_style else "-" for s in styles))
        console.print(table)
