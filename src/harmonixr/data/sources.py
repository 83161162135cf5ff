"""Sources of pieces: any folder of MIDI files, with an optional metadata CSV.

The bundled music21 corpus is converted once to such a folder (see
:mod:`harmonixr.data.music21_corpus`), so every source goes down the same path.

The metadata CSV has a ``path`` column (relative to the folder, or absolute) and any of
``style`` (or ``genre``), ``collection``, ``composer``, ``title``, ``group`` and ``split``.
MAESTRO's own CSV works as is: its ``midi_filename`` column is read as ``path``, ``canonical_title``
as ``title``, ``canonical_composer`` as ``composer`` and its ``split`` (train/validation/test) is
respected. Files not listed in the CSV are still used, with the folder's default style.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from harmonixr.errors import HarmonixrError
from harmonixr.tokens.vocab import normalize_style

MIDI_SUFFIXES = (".mid", ".midi")
METADATA_FILE = "metadata.csv"
SPLITS = ("train", "val", "test")
# Column aliases: the first name is ours; the others are what known datasets call it.
COLUMN_ALIASES = {
    "path": ("path", "midi_filename", "file", "filename"),
    "style": ("style", "genre"),
    "collection": ("collection",),
    "composer": ("composer", "canonical_composer"),
    "title": ("title", "canonical_title"),
    "group": ("group",),
    "split": ("split",),
}
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "test": "test"}
# Folders known by name, so that ``--source ../shared/data/pop909`` is labelled without a CSV.
KNOWN_FOLDER_STYLES = {"pop909": "pop", "freedoom": "game", "giantmidi": "piano-performance", "groove": "drums"}
# Folders whose metadata file has another name (the Groove MIDI Dataset's labels and split).
KNOWN_FOLDER_METADATA = {"groove": "info.csv"}


class SourceError(HarmonixrError):
    """A source that cannot be read (missing folder, bad metadata CSV)."""


@dataclass(frozen=True)
class PieceRef:
    """One input file with its labels; ``split``/``group`` are empty when to be computed."""

    path: str
    source: str
    style: str = "unknown"
    collection: str = ""
    composer: str = ""
    title: str = ""
    group: str = ""
    split: str = ""


def folder_source(
    folder: str | Path,
    metadata: str | Path | None = None,
    style: str | None = None,
    source_name: str | None = None,
) -> list[PieceRef]:
    """All ``.mid``/``.midi`` files under ``folder`` (recursively, sorted), labelled.

    ``metadata`` defaults to ``folder/metadata.csv`` when that file exists. ``style`` is the
    default style of unlisted files (default: the known style of the folder's name, or unknown).
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise SourceError(f"{folder}: not a directory")
    name = source_name or folder.name
    default_style = normalize_style(style or KNOWN_FOLDER_STYLES.get(folder.name.lower(), "unknown"))
    known = folder / KNOWN_FOLDER_METADATA.get(folder.name.lower(), METADATA_FILE)
    if metadata is None and known.is_file():
        metadata = known
    labels = read_metadata(metadata, folder) if metadata else {}
    refs = []
    for path in _walk_midi(folder):
        base = PieceRef(path=str(path), source=name, style=default_style,
                        collection=name, title=path.stem)
        listed = labels.get(str(path))
        refs.append(_merge(base, listed) if listed else base)
    return refs


def _walk_midi(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in MIDI_SUFFIXES and path.is_file():
            yield path.resolve()


def _merge(base: PieceRef, listed: dict[str, str]) -> PieceRef:
    changes = {k: v for k, v in listed.items() if v and k != "path"}
    if "style" in changes:  # a sub-style after a slash ("funk/groove1") keeps its style
        changes["style"] = normalize_style(changes["style"].split("/")[0])
    return replace(base, **changes)


def read_metadata(csv_path: str | Path, folder: Path) -> dict[str, dict[str, str]]:
    """Read a metadata CSV into ``{absolute path: {column: value}}`` (see the module doc)."""
    csv_path = Path(csv_path)
    try:
        with csv_path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            columns = {ours: next((a for a in aliases if a in header), None)
                       for ours, aliases in COLUMN_ALIASES.items()}
            if columns["path"] is None:
                raise SourceError(f"{csv_path}: no path column (one of {COLUMN_ALIASES['path']}) in {header}")
            labels: dict[str, dict[str, str]] = {}
            for line, row in enumerate(reader, start=2):
                row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                entry = {ours: row.get(col, "") for ours, col in columns.items() if col}
                if entry.get("split"):
                    split = SPLIT_ALIASES.get(entry["split"].lower())
                    if split is None:
                        raise SourceError(f"{csv_path}:{line}: unknown split {entry['split']!r}")
                    entry["split"] = split
                path = Path(entry["path"])
                labels[str((path if path.is_absolute() else folder / path).resolve())] = entry
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{csv_path}: cannot read metadata CSV: {exc}") from exc
    return labels


def write_metadata(refs: list[PieceRef], csv_path: str | Path, folder: str | Path) -> None:
    """Write the labels of ``refs`` as a metadata CSV (paths relative to ``folder``), atomically."""
    csv_path, folder = Path(csv_path), Path(folder)
    tmp = csv_path.with_suffix(".csv.tmp")
    names = ["path", "style", "collection", "composer", "title", "group", "split"]
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for ref in refs:
            row = {n: getattr(ref, n) for n in names}
            row["path"] = str(Path(ref.path).relative_to(folder))
            writer.writerow(row)
    tmp.replace(csv_path)
