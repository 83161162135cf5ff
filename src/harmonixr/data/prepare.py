"""``harmonixr prepare``: sources -> validated, normalized, split note shards.

Every file is processed in an isolated worker (:mod:`harmonixr.data.isolation`): parse and
validate, normalize, fingerprint and split, encode as note rows against the bar timeline
(:mod:`harmonixr.tokens.notes`). Augmentation happens while training (transposition, velocity
and tempo changes on the rows themselves), so nothing is stored twice. The parent writes a
shard as soon as all its files are back, so a killed run loses at most the shards in flight and a
re-run picks up where it stopped. One bad file never stops the run: it becomes a row of
``rejects.csv``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harmonixr.config import PrepareConfig, from_dict, to_dict
from harmonixr.data import music21_corpus, shards
from harmonixr.data.isolation import Failure, IsolatedPool
from harmonixr.data.normalize import normalize
from harmonixr.data.sources import PieceRef, folder_source
from harmonixr.data.splits import assign_split, content_hash, tune_fingerprint
from harmonixr.data.validate import (
    Reason,
    RejectError,
    load_midi,
    reject_row,
    score_seconds,
)
from harmonixr.errors import HarmonixrError
from harmonixr.progress import progress_bar
from harmonixr.tokens.notes import encode_score
from harmonixr.tokens.timeline import Timeline
from harmonixr.tokens.vocab import NoteVocab, VocabError

STATE_FILE = "prepare.json"
MUSIC21 = "music21"


class PrepareError(HarmonixrError):
    """The run cannot start (bad source, output prepared with another config)."""


@dataclass
class PrepareSummary:
    """What a run produced (also what ``harmonixr stats`` prints)."""

    out: Path
    files: int
    kept_pieces: int
    rows: int
    notes: int
    rejects: list[dict]
    seconds: float
    convert_seconds: float = 0.0
    skipped_shards: int = 0


@dataclass(frozen=True)
class Music21Selection:
    """Which part of the bundled corpus to use (all of it by default)."""

    collections: tuple[str, ...] | None = None
    per_collection: int | None = None


# -- sources -------------------------------------------------------------------------------
def resolve_sources(
    sources: list[str], config: PrepareConfig, metadata: str | None = None, style: str | None = None,
    selection: Music21Selection = Music21Selection(), show_progress: bool = True,
) -> tuple[list[PieceRef], list[dict], float]:
    """Turn ``--source`` values into labelled piece references (music21 converted on demand)."""
    refs: list[PieceRef] = []
    failures: list[dict] = []
    convert_seconds = 0.0
    folders = [s for s in sources if s != MUSIC21]
    if metadata and len(folders) != 1:
        raise PrepareError("--metadata applies to exactly one folder source; put metadata.csv in each folder instead")
    for source in sources:
        if source == MUSIC21:
            start = time.perf_counter()
            got, failed = convert_music21(config, selection, show_progress)
            convert_seconds = time.perf_counter() - start
            refs += got
            failures += failed
        else:
            if not Path(source).is_dir():
                raise PrepareError(f"--source {source}: not 'music21' and not a directory")
            refs += folder_source(source, metadata=metadata, style=style)
    return refs, failures, convert_seconds


def convert_music21(config: PrepareConfig, selection: Music21Selection, show_progress: bool) -> tuple[list[PieceRef], list[dict]]:
    """Convert (once; cached and resumable) the selected music21 pieces to MIDI."""
    folder = music21_corpus.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    items = music21_corpus.list_items(selection.collections, selection.per_collection)
    todo = music21_corpus.pending(items, folder)
    if todo:
        jobs = [(item, str(folder)) for item in todo]
        with IsolatedPool(music21_corpus.convert_to_cache, workers=config.workers,
                          timeout_s=config.limits.parse_timeout_s * 5,
                          memory_mb=config.limits.worker_memory_mb) as pool, \
                progress_bar("converting music21 corpus", len(jobs), show_progress) as advance:
            for index, result in pool.map_unordered(jobs):
                if isinstance(result, Failure):
                    result = {"key": todo[index].key, "error": f"{result.kind}: {result.detail}"}
                music21_corpus.append_index(folder, [result])  # flushed: a kill loses nothing done
                advance(1)
    return music21_corpus.finish(items, folder)


# -- the per-file worker ---------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(arg: tuple[str, dict]) -> None:
    vocab_path, config = arg
    _WORKER["vocab"] = NoteVocab.from_file(vocab_path)
    _WORKER["config"] = from_dict(PrepareConfig, config)


def process_file(ref: PieceRef) -> tuple[list[dict], list[tuple[np.ndarray, np.ndarray]], dict | None]:
    """Worker: one file -> (manifest rows, (notes, bars) arrays, reject or None)."""
    vocab: NoteVocab = _WORKER["vocab"]
    config: PrepareConfig = _WORKER["config"]
    try:
        row, arrays = encode_piece(ref, vocab, config)
        return [row], [arrays], None
    except RejectError as exc:
        return [], [], exc.row()
    except VocabError as exc:
        return [], [], reject_row(ref.path, Reason.ERROR, str(exc))


def bar_rows(timeline: Timeline, vocab: NoteVocab) -> np.ndarray:
    """(B, 2) the stored meter and tempo features of each bar."""
    return np.stack([timeline.meter_values(vocab), timeline.tempo_values(vocab)], axis=1)


def encode_piece(ref: PieceRef, vocab: NoteVocab, config: PrepareConfig) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """Parse, validate, normalize, split and encode one file (raises RejectError)."""
    score = load_midi(ref.path, config.limits)
    normalized, report = normalize(score, vocab, ref.path)
    digest = content_hash(normalized)
    group = ref.group or tune_fingerprint(normalized, config.split) or f"content:{digest[:16]}"
    split = ref.split or assign_split(group, config.split, ref.source)
    notes, tracks, timeline = encode_score(normalized, vocab)
    row = {
        "piece_id": digest[:16], "source": ref.source, "path": ref.path, "style": ref.style,
        "collection": ref.collection, "composer": ref.composer, "title": ref.title, "group": group, "split": split,
        "notes": len(notes), "tracks": len(tracks.slots(vocab)), "bars": timeline.bars,
        "seconds": score_seconds(normalized), "programs": json.dumps(tracks.programs), "drums": tracks.drums,
        "content_hash": digest, **report.as_dict(),
    }
    return row, (notes, bar_rows(timeline, vocab))


# -- the run ---------------------------------------------------------------------------------
def prepare(
    sources: list[str], out: str | Path, config: PrepareConfig = PrepareConfig(), *,
    metadata: str | None = None, style: str | None = None,
    selection: Music21Selection = Music21Selection(), show_progress: bool = True,
    on_shard: Callable[[str], None] | None = None,
) -> PrepareSummary:
    """Prepare ``sources`` into the folder ``out``; resumes a run interrupted earlier."""
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    refs, failures, convert_seconds = resolve_sources(sources, config, metadata, style, selection, show_progress)
    if not refs and not failures:
        raise PrepareError(f"no MIDI files found in {sources}")
    styles = tuple(dict.fromkeys([*config.tokenizer.styles, *sorted({r.style for r in refs})]))
    config = replace(config, tokenizer=replace(config.tokenizer, styles=styles))
    vocab_path = _freeze_config(out, config)
    plan = _plan(refs, config)
    todo = {name: chunk for name, chunk in plan.items() if not shards.shard_done(out, name)}
    buffers: dict[str, dict] = {name: {"left": len(chunk), "rows": [], "arrays": [], "rejects": []}
                                for name, chunk in todo.items()}
    jobs = [(name, ref) for name, chunk in todo.items() for ref in chunk]
    if jobs:
        with IsolatedPool(process_file, workers=config.workers, timeout_s=config.limits.parse_timeout_s,
                          memory_mb=config.limits.worker_memory_mb, init=_init_worker,
                          init_arg=(str(vocab_path), to_dict(config))) as pool, \
                progress_bar("preparing", len(jobs), show_progress) as advance:
            for index, result in pool.map_unordered([ref for _, ref in jobs]):
                name, ref = jobs[index]
                buffer = buffers[name]
                if isinstance(result, Failure):
                    buffer["rejects"].append(reject_row(ref.path, result.kind, result.detail))
                else:
                    rows, arrays, reject = result
                    buffer["rows"] += rows
                    buffer["arrays"] += arrays
                    if reject:
                        buffer["rejects"].append(reject)
                buffer["left"] -= 1
                if buffer["left"] == 0:
                    order = {r.path: k for k, r in enumerate(todo[name])}
                    _write_sorted(out, name, buffer, order)
                    del buffers[name]
                    if on_shard:
                        on_shard(name)
                advance(1)
    manifest, rejects = shards.merge(out, list(plan), earlier_rejects=failures)
    rows = manifest.to_pylist() if manifest.num_rows else []
    return PrepareSummary(
        out=out, files=len(refs) + len(failures), kept_pieces=len(rows),
        rows=len(rows), notes=sum(r["notes"] for r in rows), rejects=rejects,
        seconds=time.perf_counter() - start, convert_seconds=convert_seconds,
        skipped_shards=len(plan) - len(todo),
    )


def _write_sorted(out: Path, name: str, buffer: dict, order: dict[str, int]) -> None:
    """Write a shard with its rows in plan order (results arrive in completion order)."""
    pairs = sorted(zip(buffer["rows"], buffer["arrays"]), key=lambda p: order[p[0]["path"]])
    shards.write_shard(out, name, [p[0] for p in pairs], [p[1] for p in pairs],
                       sorted(buffer["rejects"], key=lambda r: order.get(r["path"], 0)))


def _plan(refs: list[PieceRef], config: PrepareConfig) -> dict[str, list[PieceRef]]:
    """Cut the (sorted) files into shards named by their content and the config."""
    refs = sorted(refs, key=lambda r: (r.source, r.path))
    # Through from_dict, as a YAML file is read: 60 and 60.0 in a float field name the same shards.
    canonical = to_dict(from_dict(PrepareConfig, to_dict(config)))
    config_hash = _hash(json.dumps(canonical, sort_keys=True))
    plan = {}
    for start in range(0, len(refs), config.files_per_shard):
        chunk = refs[start : start + config.files_per_shard]
        key = config_hash + "".join(f"{r.path}|{r.style}|{r.split}|{r.group}\n" for r in chunk)
        plan[f"shard-{start // config.files_per_shard:05d}-{_hash(key)[:10]}"] = chunk
    return plan


def _freeze_config(out: Path, config: PrepareConfig) -> Path:
    """Save the config and tokenizer, or check they match those of an earlier run."""
    state_path = out / STATE_FILE
    wanted = to_dict(config)
    if state_path.is_file():
        previous = json.loads(state_path.read_text())
        if previous != wanted:
            changed = sorted(k for k in wanted if previous.get(k) != wanted[k])
            raise PrepareError(
                f"{out} was prepared with another configuration (differs in {changed}); "
                "use a new --out folder or delete this one"
            )
    vocab_path = NoteVocab(config.tokenizer).save(out)
    tmp = state_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(wanted, indent=2))
    tmp.replace(state_path)
    return vocab_path


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()
