"""``harmonixr stats``: pieces, notes and hours per style and split, and the reject reasons."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.data.shards import NoteShards, read_rejects
from harmonixr.tokens.notes import PITCH, TRACK

SPLIT_ORDER = ("train", "val", "test")
# The pitches a GM program plays (program_ranges): its tracks' notes from this quantile to 1 minus it,
# from the program's own tracks where it has LEAST_PARTS of them, else from its family's (8 programs).
RANGE_QUANTILE = 0.05
LEAST_PARTS = 20
FAMILY = 8  # GM programs per instrument family


def dataset_stats(folder: str | Path) -> dict:
    """Counts of a prepared folder: ``{"styles": {style: {split: {...}}}, "rejects": {reason: n}}``
    (pieces, notes, bars and seconds per style and split)."""
    data = NoteShards(folder)
    styles: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for row in data.rows():
        cell = styles[row["style"]][row["split"]]
        cell["pieces"] += 1
        cell["notes"] += row["notes"]
        cell["bars"] += row["bars"]
        cell["seconds"] += row["seconds"]
    rejects = Counter(r["reason"] for r in read_rejects(Path(folder)))
    return {"styles": {s: {k: dict(v) for k, v in d.items()} for s, d in styles.items()},
            "rejects": dict(rejects)}


def print_stats(folder: str | Path, console: Console | None = None) -> dict:
    """Print the tables of :func:`dataset_stats` and return the numbers."""
    console = console or Console()
    stats = dataset_stats(folder)
    table = Table(title=f"{folder}: kept pieces per style and split")
    for column in ("style", *[f"{s} pieces" for s in SPLIT_ORDER], "notes", "bars", "hours"):
        table.add_column(column, justify="left" if column == "style" else "right", no_wrap=column == "style")
    totals: Counter = Counter()
    for style in sorted(stats["styles"], key=lambda s: -sum(c.get("pieces", 0) for c in stats["styles"][s].values())):
        cells = stats["styles"][style]
        merged = sum((Counter(c) for c in cells.values()), Counter())
        totals.update(merged)
        for split in SPLIT_ORDER:
            totals[f"pieces_{split}"] += cells.get(split, {}).get("pieces", 0)
        table.add_row(style, *[f"{cells.get(s, {}).get('pieces', 0):,}" for s in SPLIT_ORDER],
                      f"{merged['notes']:,}", f"{merged['bars']:,}", f"{merged['seconds'] / 3600:,.1f}")
    table.add_row("[bold]total", *[f"[bold]{totals[f'pieces_{s}']:,}" for s in SPLIT_ORDER],
                  f"[bold]{totals['notes']:,}", f"[bold]{totals['bars']:,}", f"[bold]{totals['seconds'] / 3600:,.1f}")
    console.print(table)
    rejects = Table(title="rejected files per reason")
    rejects.add_column("reason")
    rejects.add_column("files", justify="right")
    for reason, count in sorted(stats["rejects"].items(), key=lambda kv: -kv[1]):
        rejects.add_row(reason, f"{count:,}")
    rejects.add_row("[bold]total", f"[bold]{sum(stats['rejects'].values()):,}")
    console.print(rejects)
    return stats


def program_ranges(corpus: Corpus, split: str = "train") -> list[tuple[int, int, int]]:
    """(program, lowest, highest) pitch that melodic tracks of each GM program play in ``split``:
    the :data:`RANGE_QUANTILE` and 1 - it quantiles of their notes, from the program's own tracks
    where there are :data:`LEAST_PARTS` of them, else from its family's; programs with too few of
    either are left out. A new part (``harmonixr add-track``) keeps to its program's range: the
    model alone, told "an electric bass", wrote a pop song's bass around middle C."""
    counts = np.zeros((128, 128), dtype=np.int64)  # (program, pitch) notes
    parts = np.zeros(128, dtype=np.int64)
    for shards, row in corpus.rows(split):
        piece = corpus.piece(shards, row)
        for slot, program in enumerate(piece.tracks.programs):
            mine = piece.notes[piece.notes[:, TRACK] == slot, PITCH]
            if program >= 0 and len(mine):
                counts[program] += np.bincount(mine, minlength=128)
                parts[program] += 1
    families = counts.reshape(128 // FAMILY, FAMILY, 128).sum(1)
    family_parts = parts.reshape(-1, FAMILY).sum(1)
    out = []
    for program in range(128):
        own = parts[program] >= LEAST_PARTS
        notes = counts[program] if own else families[program // FAMILY]
        if not own and family_parts[program // FAMILY] < LEAST_PARTS:
            continue
        share = np.cumsum(notes) / notes.sum()
        out.append((program, int(np.searchsorted(share, RANGE_QUANTILE)), int(np.searchsorted(share, 1 - RANGE_QUANTILE))))
    return out
