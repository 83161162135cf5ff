"""Typed configuration: dataclasses loaded from YAML, with unknown keys and wrong types refused.

Every tunable number of the data pipeline lives here, with its default and its meaning, so that a
YAML file (``configs/prepare.yaml``) can change any of them and nothing else needs editing.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from harmonixr.errors import HarmonixrError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


class ConfigError(HarmonixrError):
    """A configuration file or dict does not match the dataclass it is loaded into."""


@dataclass(frozen=True)
class LimitsConfig:
    """What a MIDI file may contain before it is rejected; checked before any expensive work."""

    max_file_bytes: int = 16 * 1024 * 1024  # bigger files are refused before parsing
    max_tracks: int = 256  # MTrk chunks in the file
    max_notes: int = 200_000
    max_seconds: float = 3600.0  # duration of the piece
    min_bpm: float = 10.0  # a tempo outside [min_bpm, max_bpm] is "absurd"
    max_bpm: float = 1000.0
    min_notes: int = 8  # fewer notes than this is "no notes" (not music worth learning)
    parse_timeout_s: float = 60.0  # per file, in the isolated worker
    worker_memory_mb: int = 4096  # address-space limit of each isolated worker


@dataclass(frozen=True)
class TokenizerSpec:
    """The note-level vocabulary, computed from these fields (see :mod:`harmonixr.tokens.vocab`)."""

    grid_per_quarter: int = 12  # onset grid: 16ths (3 steps) and 8th/16th triplets (4, 2) are exact
    micro_bins: int = 17  # onset offset from the grid, in 1/16 of a step, -8..8 (odd: 0 is a bin)
    max_bar_quarters: int = 16  # longer bars are cut into bars of this length
    max_dbar: int = 63  # bars between two consecutive notes at most (a longer silence ends a window)
    # Durations in grid steps: every step up to 4 quarters, then coarser (step, up to) pairs.
    duration_steps: tuple[tuple[int, int], ...] = ((1, 48), (3, 144), (12, 384))
    pitch_range: tuple[int, int] = (21, 108)  # melodic notes outside are moved by octaves into it
    drums_pitch_range: tuple[int, int] = (21, 96)  # drum hits outside are dropped (Groove uses 22 and 26 for hi-hat edges)
    max_tracks: int = 16  # melodic track slots; drums are one extra slot
    styles: tuple[str, ...] = (
        "unknown", "chorale", "baroque", "classical", "romantic", "modern", "renaissance",
        "medieval", "folk-german", "folk-chinese", "folk-celtic", "folk-american", "pop",
    )
    tempo_bins: int = 32  # the tempo feature of every position: log-spaced bins over tempo_range
    tempo_range: tuple[int, int] = (40, 250)
    # Piece-level control bins (a value v falls in bin i when edges[i-1] <= v < edges[i]).
    tempo_edges: tuple[float, ...] = (60, 76, 92, 108, 124, 140, 160)
    density_edges: tuple[float, ...] = (2, 4, 6, 8, 12, 16, 24, 32, 48)  # notes per bar
    loudness_edges: tuple[float, ...] = (40, 52, 64, 76, 88, 100, 112)  # mean velocity
    # Per-track hole controls: onsets per bar (bin 0: silent), mean velocity, polyphony.
    track_density_edges: tuple[float, ...] = (0.01, 0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
    track_loudness_edges: tuple[float, ...] = (32, 44, 56, 64, 72, 80, 88, 96, 104, 112)
    max_polyphony: int = 8  # the polyphony control's top bin (8 or more)


@dataclass(frozen=True)
class SplitConfig:
    """Deterministic split by piece group (a tune and all its variants land on one side)."""

    val: float = 0.05
    test: float = 0.05
    salt: str = "harmonixr-split-v1"
    fingerprint_intervals: int = 16  # melody intervals in the tune fingerprint
    min_fingerprint_intervals: int = 8  # fewer than this: group by content instead
    # Small sources hold out more, so that their test split has enough pieces to measure on.
    test_by_source: tuple[tuple[str, float], ...] = (("freedoom", 0.12), ("giantmidi", 0.2))


@dataclass(frozen=True)
class PrepareConfig:
    """Everything ``harmonixr prepare`` does, end to end."""

    limits: LimitsConfig = field(default_factory=LimitsConfig)
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    split: SplitConfig = field(default_factory=SplitConfig)
    workers: int = 2
    files_per_shard: int = 512


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, recursively, refusing unknown keys and bad types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None) and value is None:
                return None
        non_none = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(non_none[0], value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-data (YAML/JSON-safe) form of a config dataclass; tuples become lists."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(obj)


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Load dataclass ``cls`` from a YAML file; errors name the file and the offending key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    return from_dict(cls, data, where=str(path))


def replace_fields(obj: T, **changes: Any) -> T:
    """A copy of a (frozen) config dataclass with ``changes`` applied."""
    return dataclasses.replace(obj, **changes)
