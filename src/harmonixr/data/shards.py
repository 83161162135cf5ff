"""Note storage: memory-mappable shards plus ``manifest.parquet``.

A prepared folder holds::

    tokenizer.json          the vocabulary (the spec and the value tokens it builds)
    prepare.json            the config it was prepared with (a re-run with another is refused)
    shards/<name>.notes.bin int16 note rows (bar, pos, micro, track, pitch, dur, vel), pieces back to back
    shards/<name>.bars.bin  int16 bar rows (meter feature, tempo feature), pieces back to back
    shards/<name>.parquet   one row per piece, with its offsets; written last, so it marks the shard done
    shards/<name>.rejects.jsonl
    manifest.parquet        every kept row (duplicates removed), the index the loaders read
    rejects.csv             file, reason, detail

Every file is written to a temporary name and renamed, so a killed run never leaves a half file
under a final name; a re-run skips the shards whose parquet exists.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harmonixr.data.validate import Reason, reject_row
from harmonixr.tokens.notes import NOTE_WIDTH

MANIFEST = "manifest.parquet"
REJECTS = "rejects.csv"
SHARD_DIR = "shards"
REJECT_FIELDS = ("path", "reason", "detail")
STORE_DTYPE = np.int16
BAR_WIDTH = 2  # meter, tempo


def shard_paths(folder: Path, name: str) -> tuple[Path, Path, Path, Path]:
    """(notes, bars, rows, rejects) files of shard ``name``."""
    base = folder / SHARD_DIR / name
    return (base.with_suffix(".notes.bin"), base.with_suffix(".bars.bin"), base.with_suffix(".parquet"),
            base.with_suffix(".rejects.jsonl"))


def shard_done(folder: Path, name: str) -> bool:
    """Whether shard ``name`` was completely written by an earlier run."""
    return shard_paths(folder, name)[2].is_file()


def write_shard(folder: Path, name: str, rows: list[dict], pieces: list[tuple[np.ndarray, np.ndarray]],
                rejects: list[dict]) -> None:
    """Write one shard: the note and bar files, the rejects, then the rows (the 'done' marker).
    ``pieces``: per row, its notes (N, 7) and bars (B, 2)."""
    notes_path, bars_path, rows_path, rejects_path = shard_paths(folder, name)
    notes_path.parent.mkdir(parents=True, exist_ok=True)
    note_offset = bar_offset = 0
    for row, (notes, bars) in zip(rows, pieces, strict=True):
        row.update(shard=name, note_offset=note_offset, bar_offset=bar_offset)
        note_offset += len(notes)
        bar_offset += len(bars)
    for path, arrays, width in ((notes_path, [p[0] for p in pieces], NOTE_WIDTH), (bars_path, [p[1] for p in pieces], BAR_WIDTH)):
        data = np.concatenate(arrays).astype(STORE_DTYPE) if arrays else np.zeros((0, width), STORE_DTYPE)
        _atomic_bytes(path, np.ascontiguousarray(data).tobytes())
    _atomic_bytes(rejects_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects).encode())
    table = pa.Table.from_pylist(rows) if rows else pa.table({"shard": pa.array([], pa.string())})
    tmp = rows_path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(rows_path)


def merge(folder: Path, names: list[str], earlier_rejects: Sequence[dict] = ()) -> tuple[pa.Table, list[dict]]:
    """Merge the shards ``names`` (in order) into ``manifest.parquet`` and ``rejects.csv``.

    ``earlier_rejects`` (files refused before any shard, e.g. failed conversions) head the report.

    Pieces whose content hash was already seen in an earlier row are dropped and reported as
    duplicates of the first file. Shard files not in ``names`` (an older plan) are deleted.
    """
    tables, rejects = [], list(earlier_rejects)
    for name in names:
        _notes, _bars, rows_path, rejects_path = shard_paths(folder, name)
        table = pq.read_table(rows_path)
        if table.num_rows:
            tables.append(table)
        rejects += [json.loads(line) for line in rejects_path.read_text(encoding="utf-8").splitlines() if line]
    manifest = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
    if manifest.num_rows:
        manifest, duplicates = _drop_duplicates(manifest)
        rejects += duplicates
    tmp = folder / (MANIFEST + ".tmp")
    pq.write_table(manifest, tmp)
    tmp.replace(folder / MANIFEST)
    write_rejects(folder / REJECTS, rejects)
    keep = set(names)
    for path in (folder / SHARD_DIR).glob("*"):
        if path.name.split(".")[0] not in keep:
            path.unlink()
    return manifest, rejects


def _drop_duplicates(manifest: pa.Table) -> tuple[pa.Table, list[dict]]:
    piece_ids = manifest.column("piece_id").to_pylist()
    paths = manifest.column("path").to_pylist()
    first_path: dict[str, str] = {}
    keep: list[bool] = []
    duplicates: list[dict] = []
    for piece_id, path in zip(piece_ids, paths):
        owner = first_path.setdefault(piece_id, path)
        keep.append(owner == path)
        already_reported = bool(duplicates) and duplicates[-1]["path"] == path  # a piece's rows are adjacent
        if owner != path and not already_reported:
            duplicates.append(reject_row(path, Reason.DUPLICATE, f"same notes as {owner}"))
    return manifest.filter(pa.array(keep)), duplicates


def write_rejects(path: Path, rejects: list[dict]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=REJECT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rejects)
    tmp.replace(path)


def read_rejects(folder: Path) -> list[dict]:
    path = folder / REJECTS
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class NoteShards:
    """Read access to a prepared folder: the manifest, and each row's notes and bars as memory map views."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{manifest_path}: no manifest (run `harmonixr prepare` first)")
        self.manifest = pq.read_table(manifest_path)
        self._maps: dict[tuple[str, int], np.ndarray] = {}

    def __len__(self) -> int:
        return self.manifest.num_rows

    def rows(self, split: str | None = None) -> list[dict]:
        """Manifest rows as dicts, optionally of one split."""
        rows = self.manifest.to_pylist()
        return [r for r in rows if split is None or r["split"] == split]

    def _view(self, shard: str, which: int, width: int) -> np.ndarray:
        if (shard, which) not in self._maps:
            path = shard_paths(self.folder, shard)[which]
            self._maps[shard, which] = np.memmap(path, dtype=STORE_DTYPE, mode="r").reshape(-1, width)
        return self._maps[shard, which]

    def notes(self, row: dict) -> np.ndarray:
        """The note rows of a manifest row, (N, 7) int64."""
        view = self._view(row["shard"], 0, NOTE_WIDTH)
        return np.asarray(view[row["note_offset"] : row["note_offset"] + row["notes"]], dtype=np.int64)

    def bars(self, row: dict) -> np.ndarray:
        """The bar rows (meter, tempo feature values) of a manifest row, (B, 2) int64."""
        view = self._view(row["shard"], 1, BAR_WIDTH)
        return np.asarray(view[row["bar_offset"] : row["bar_offset"] + row["bars"]], dtype=np.int64)
