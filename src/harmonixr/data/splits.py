"""Deterministic train/val/test splits by piece group.

Every variant of a piece must land on one side, or validation measures memory instead of music.
A piece's group is, in order of preference: the metadata's ``group`` column; else a *tune
fingerprint*, the first intervals of its melody with repeated notes collapsed (so the same tune
transposed, re-barred, re-harmonized or filed in two collections gets the same group); else, for
pieces too short to fingerprint, the piece's own content hash. The split is then a hash of the
group, so it never depends on which other files are in the run. A metadata ``split`` column wins.
"""

from __future__ import annotations

import hashlib

import numpy as np
from symusic import Score

from harmonixr.config import SplitConfig

MELODY_TRACK_NAMES = ("melody", "soprano", "cantus", "lead", "vocal", "voice")


def melody_track(score: Score) -> int | None:
    """Index of the melody track: one named like a melody, else the highest-sounding one."""
    melodic = [(i, t) for i, t in enumerate(score.tracks) if not t.is_drum and t.note_num()]
    if not melodic:
        return None
    for i, track in melodic:
        if any(name in track.name.lower() for name in MELODY_TRACK_NAMES):
            return i
    return max(melodic, key=lambda it: float(np.mean(it[1].notes.numpy()["pitch"])))[0]


def tune_fingerprint(score: Score, config: SplitConfig) -> str | None:
    """``"tune:<intervals>"`` from the melody's top line, or None when the melody is too short."""
    index = melody_track(score)
    if index is None:
        return None
    notes = score.tracks[index].notes.numpy()
    order = np.lexsort((-notes["pitch"].astype(int), notes["time"]))
    time, pitch = notes["time"][order], notes["pitch"][order].astype(int)
    top = pitch[np.concatenate(([True], time[1:] != time[:-1]))]  # highest note of each onset
    top = top[np.concatenate(([True], top[1:] != top[:-1]))]  # repeated notes collapse
    intervals = np.diff(top)[: config.fingerprint_intervals]
    if len(intervals) < config.min_fingerprint_intervals:
        return None
    return "tune:" + ",".join(str(int(i)) for i in intervals)


def content_hash(score: Score) -> str:
    """Hash of the notes (onset and duration in beats, pitch, velocity, drum flag) of every track."""
    digest = hashlib.sha1()
    for track in sorted(score.tracks, key=lambda t: (t.is_drum, t.program, t.name)):
        notes = track.notes.numpy()
        digest.update(bytes([track.is_drum]))
        for key in ("time", "duration"):
            digest.update((notes[key].astype(np.float64) / score.ticks_per_quarter).tobytes())
        digest.update(notes["pitch"].astype(np.int16).tobytes())
        digest.update(notes["velocity"].astype(np.int16).tobytes())
    return digest.hexdigest()


def assign_split(group: str, config: SplitConfig, source: str = "") -> str:
    """``train``, ``val`` or ``test`` from a hash of ``group`` (uniform, stable across runs); a
    source named in ``config.test_by_source`` holds out that share for test instead."""
    digest = hashlib.sha256(f"{config.salt}:{group}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < dict(config.test_by_source).get(source, config.test):
        return "test"
    if u < config.test + config.val:
        return "val"
    return "train"
