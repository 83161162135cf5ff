"""Validation of MIDI files: every rejection names the file, a reason code and the detail.

Checks run cheapest first, so a hostile file is refused before it costs parse time or memory:
file size -> chunk structure (a byte scan, no parsing) -> symusic parse -> content limits
(notes, tracks, tempos, duration).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from symusic import Score

from harmonixr.config import LimitsConfig
from harmonixr.errors import HarmonixrError


class Reason(str, Enum):
    """Why a file was rejected (the ``reason`` column of the rejects report)."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_MIDI = "not_midi"
    TRUNCATED = "truncated"
    UNREADABLE = "unreadable"
    NO_NOTES = "no_notes"
    TOO_MANY_NOTES = "too_many_notes"
    TOO_MANY_TRACKS = "too_many_tracks"
    TOO_LONG = "too_long"
    ABSURD_TEMPO = "absurd_tempo"
    DUPLICATE = "duplicate"
    CONVERSION_FAILED = "conversion_failed"
    CRASHED = "crashed"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    ERROR = "error"


def reject_row(path: str | Path, reason: Reason | str, detail: str) -> dict[str, str]:
    """A row of the rejects report (``rejects.csv``): file, reason code, detail."""
    return {"path": str(path), "reason": Reason(reason).value, "detail": detail}


class RejectError(HarmonixrError):
    """A file that cannot be used, with a machine-readable reason and a human-readable detail."""

    def __init__(self, path: str | Path, reason: Reason, detail: str) -> None:
        super().__init__(f"{path}: {reason.value}: {detail}")
        self.path, self.reason, self.detail = str(path), reason, detail

    def row(self) -> dict[str, str]:
        """This rejection as a row of the rejects report."""
        return reject_row(self.path, self.reason, self.detail)


@dataclass(frozen=True)
class MidiLayout:
    """What the byte scan learned: format, declared and present track chunks, ticks per quarter."""

    format: int
    declared_tracks: int
    track_chunks: int
    ticks_per_quarter: int


def unwrap_rmid(data: bytes) -> bytes:
    """Return the SMF inside a RIFF ``RMID`` wrapper, or ``data`` unchanged."""
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":
        pos = 12
        while pos + 8 <= len(data):
            kind, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
            if kind == b"data":
                return data[pos + 8 : pos + 8 + size]
            pos += 8 + size + (size & 1)
    return data


def scan_midi_bytes(data: bytes, path: str | Path, limits: LimitsConfig) -> MidiLayout:
    """Check the Standard MIDI File chunk structure without parsing events.

    Raises :class:`RejectError` for empty, oversize, non-MIDI and truncated files and for files
    that declare more tracks than ``limits.max_tracks``.
    """
    if not data:
        raise RejectError(path, Reason.EMPTY, "file is empty (0 bytes)")
    if len(data) > limits.max_file_bytes:
        raise RejectError(path, Reason.TOO_LARGE, f"{len(data)} bytes > limit {limits.max_file_bytes}")
    if data[:4] != b"MThd":
        raise RejectError(path, Reason.NOT_MIDI, f"no MThd header (starts with {data[:4]!r})")
    if len(data) < 14:
        raise RejectError(path, Reason.TRUNCATED, f"header cut short ({len(data)} bytes)")
    (header_len,) = struct.unpack(">I", data[4:8])
    if header_len < 6:
        raise RejectError(path, Reason.NOT_MIDI, f"MThd length {header_len} < 6")
    fmt, declared, division = struct.unpack(">HHH", data[8:14])
    if fmt > 2:
        raise RejectError(path, Reason.NOT_MIDI, f"unknown SMF format {fmt}")
    if division & 0x8000:
        raise RejectError(path, Reason.UNREADABLE, "SMPTE time division is not supported")
    if division == 0:
        raise RejectError(path, Reason.UNREADABLE, "ticks per quarter note is 0")
    if declared > limits.max_tracks:
        raise RejectError(path, Reason.TOO_MANY_TRACKS, f"declares {declared} tracks > limit {limits.max_tracks}")
    pos, chunks = 8 + header_len, 0
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (size,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        if pos + 8 + size > len(data):
            raise RejectError(
                path, Reason.TRUNCATED,
                f"chunk {kind!r} at byte {pos} declares {size} bytes but only {len(data) - pos - 8} remain",
            )
        chunks += kind == b"MTrk"
        pos += 8 + size
    if chunks == 0:
        raise RejectError(path, Reason.TRUNCATED, "no MTrk chunk")
    if chunks < declared:
        raise RejectError(path, Reason.TRUNCATED, f"header declares {declared} tracks, file holds {chunks}")
    return MidiLayout(fmt, declared, chunks, division)


def parse_midi(data: bytes, path: str | Path, limits: LimitsConfig, repairs: list[str] | None = None) -> Score:
    """Scan, parse (symusic) and check a MIDI file's bytes.

    A file that symusic refuses as it is (a data byte above 127: a velocity, a controller value,
    a program) is parsed again with its payload sanitized (clamped into range); ``repairs``, when
    given, gets one line saying so, with the first bad value symusic met.

    Call this in an isolated worker (:mod:`harmonixr.data.isolation`) for untrusted files: the
    byte scan refuses what it can, but no Python check can promise the C++ parser never aborts.
    """
    data = unwrap_rmid(data)
    scan_midi_bytes(data, path, limits)
    try:
        score = Score.from_midi(data)
    except Exception as strict:  # noqa: BLE001 - symusic raises plain RuntimeError/ValueError with its message
        try:
            score = Score.from_midi(data, sanitize_data=True)
        except Exception as exc:  # noqa: BLE001
            raise RejectError(path, Reason.UNREADABLE, f"symusic could not parse it: {exc}") from exc
        if repairs is not None:
            first = str(strict).removeprefix("Get ").strip()
            repairs.append(f"values outside MIDI's 0-127 were clamped into range (the first: {first})")
    check_score(score, path, limits)
    return score


def load_midi(path: str | Path, limits: LimitsConfig, repairs: list[str] | None = None) -> Score:
    """Read, scan, parse and check the MIDI file at ``path`` (see :func:`parse_midi`)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise RejectError(path, Reason.TOO_LARGE, f"{size} bytes > limit {limits.max_file_bytes}")
        data = path.read_bytes()
    except OSError as exc:
        raise RejectError(path, Reason.UNREADABLE, f"cannot read file: {exc.strerror or exc}") from exc
    return parse_midi(data, path, limits, repairs)


def check_score(score: Score, path: str | Path, limits: LimitsConfig) -> None:
    """Check a parsed score's content against ``limits``; raise :class:`RejectError` if it fails."""
    if score.ticks_per_quarter <= 0:
        raise RejectError(path, Reason.UNREADABLE, f"ticks per quarter is {score.ticks_per_quarter}")
    notes = sum(track.note_num() for track in score.tracks)
    if notes == 0:
        raise RejectError(path, Reason.NO_NOTES, "no notes")
    if notes < limits.min_notes:
        raise RejectError(path, Reason.NO_NOTES, f"only {notes} notes (minimum {limits.min_notes})")
    if notes > limits.max_notes:
        raise RejectError(path, Reason.TOO_MANY_NOTES, f"{notes} notes > limit {limits.max_notes}")
    for tempo in score.tempos:
        if not limits.min_bpm <= tempo.qpm <= limits.max_bpm:
            raise RejectError(
                path, Reason.ABSURD_TEMPO,
                f"tempo {tempo.qpm:.2f} bpm at tick {tempo.time} outside [{limits.min_bpm:g}, {limits.max_bpm:g}]",
            )
    seconds = score_seconds(score)
    if seconds > limits.max_seconds:
        raise RejectError(path, Reason.TOO_LONG, f"{seconds:.0f} s > limit {limits.max_seconds:g} s")


def score_seconds(score: Score) -> float:
    """Duration of the score in seconds (end of its last event, through the tempo map)."""
    return float(score.to("second").end())
