"""Post-processing of a finished score, and the bit of music theory the constraints need.

Each function returns a new :class:`symusic.Score` (the input is never modified): transpose,
tempo scale, velocity scale, quantize to a grid, snap pitches to a scale. Drum tracks are never
transposed or snapped. :func:`estimate_key` is the Krumhansl-Schmuckler key finder (duration-
weighted pitch-class profile correlated with the Krumhansl-Kessler major and minor profiles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from symusic import Note, Score

from harmonixr.errors import HarmonixrError

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"DB": "C#", "EB": "D#", "GB": "F#", "AB": "G#", "BB": "A#"}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Krumhansl & Kessler (1982) key profiles, tonic first.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0-11
    mode: str  # "major" or "minor"

    @classmethod
    def parse(cls, text: str) -> Key:
        """``"C major"``, ``"f# minor"``, ``"Bb"`` (major when the mode is left out)."""
        parts = text.strip().split()
        if not parts or len(parts) > 2:
            raise HarmonixrError(f"key {text!r}: expected e.g. 'C major' or 'F# minor'")
        name = parts[0].upper().replace("♯", "#").replace("♭", "B")
        name = _FLATS.get(name, name)
        mode = parts[1].lower() if len(parts) == 2 else "major"
        if name not in NOTE_NAMES or mode not in SCALES:
            raise HarmonixrError(f"key {text!r}: unknown tonic or mode (modes: {', '.join(SCALES)})")
        return cls(NOTE_NAMES.index(name), mode)

    @property
    def pitch_classes(self) -> frozenset[int]:
        return frozenset((self.tonic + step) % 12 for step in SCALES[self.mode])

    @property
    def tonic_chord(self) -> tuple[int, ...]:
        """The pitch classes of its tonic triad, root first (A minor: A, C, E)."""
        return tuple((self.tonic + step) % 12 for step in SCALES[self.mode][::2][:3])

    def __str__(self) -> str:
        return f"{NOTE_NAMES[self.tonic]} {self.mode}"


def estimate_key(score: Score) -> Key:
    """The best-correlating major or minor key of the melodic notes (duration-weighted)."""
    profile = np.zeros(12)
    for track in score.tracks:
        if track.is_drum:
            continue
        notes = track.notes.numpy()
        np.add.at(profile, notes["pitch"] % 12, notes["duration"].astype(float))
    if not profile.any():
        return Key(0, "major")
    best = max(((np.corrcoef(profile, np.roll(template, tonic))[0, 1], tonic, mode)
                for mode, template in (("major", _MAJOR), ("minor", _MINOR)) for tonic in range(12)))
    return Key(best[1], best[2])


def transpose(score: Score, semitones: int) -> Score:
    """Melodic tracks moved by ``semitones``; pitches that would leave 0-127 move by octaves instead."""
    out = score.copy()
    for track in out.tracks:
        if not track.is_drum:
            _map_pitches(track, lambda p: _fold(p + semitones))
    return out


def scale_tempo(score: Score, factor: float) -> Score:
    """Every tempo multiplied by ``factor`` (notes keep their ticks: the music plays faster or slower)."""
    if factor <= 0:
        raise HarmonixrError(f"tempo factor must be > 0, got {factor}")
    out = score.copy()
    for tempo in out.tempos:
        tempo.qpm = tempo.qpm * factor
    return out


def scale_velocity(score: Score, factor: float) -> Score:
    """Velocities multiplied by ``factor``, kept within 1-127."""
    out = score.copy()
    for track in out.tracks:
        notes = track.notes.numpy()
        notes["velocity"] = np.clip(np.round(notes["velocity"] * factor), 1, 127).astype(notes["velocity"].dtype)
        track.notes = Note.from_numpy(**notes)
    return out


def velocities_to_mean(velocities: np.ndarray, mean: float) -> np.ndarray:
    """``velocities`` scaled so that their mean is ``mean`` (the shape of the dynamics kept),
    rounded and clipped to 1-127: how an asked loudness is met exactly."""
    if not len(velocities):
        return velocities
    scaled = np.asarray(velocities, dtype=np.float64) * (mean / max(float(np.mean(velocities)), 1.0))
    return np.clip(np.round(scaled), 1, 127).astype(np.asarray(velocities).dtype)


def score_to_mean_velocity(score: Score, mean: float, tracks: list[int] | None = None) -> Score:
    """A copy whose notes of ``tracks`` (None: all), taken together, have mean velocity ``mean``
    (:func:`velocities_to_mean`)."""
    out = score.copy()
    notes = [n for k, t in enumerate(out.tracks) if tracks is None or k in tracks for n in t.notes]
    for note, velocity in zip(notes, velocities_to_mean(np.array([n.velocity for n in notes]), mean).tolist()):
        note.velocity = int(velocity)
    return out


def quantize(score: Score, steps_per_beat: int = 4) -> Score:
    """Onsets and durations snapped to 1/``steps_per_beat`` of a quarter note (durations >= 1 step)."""
    out = score.copy()
    step = out.ticks_per_quarter / steps_per_beat
    for track in out.tracks:
        notes = track.notes.numpy()
        notes["time"] = (np.round(notes["time"] / step) * step).astype(notes["time"].dtype)
        notes["duration"] = (np.maximum(np.round(notes["duration"] / step), 1) * step).astype(notes["duration"].dtype)
        track.notes = Note.from_numpy(**notes)
    return out


def snap_to_scale(score: Score, key: Key | None = None) -> Score:
    """Melodic pitches outside ``key``'s scale (default: the estimated key) moved to the nearest
    scale tone (down on a tie)."""
    key = key or estimate_key(score)
    allowed = key.pitch_classes
    nearest = {pc: min(((d, pc - d) for d in range(-6, 7) if (pc - d) % 12 in allowed), key=lambda x: (abs(x[0]), -x[0]))[0]
               for pc in range(12)}
    out = score.copy()
    for track in out.tracks:
        if not track.is_drum:
            _map_pitches(track, lambda p: int(np.clip(p - nearest[p % 12], 0, 127)))
    return out


def _fold(pitch: int) -> int:
    """``pitch`` moved by octaves into 0-127."""
    while pitch < 0:
        pitch += 12
    while pitch > 127:
        pitch -= 12
    return pitch


def _map_pitches(track, fn) -> None:
    notes = track.notes.numpy()
    notes["pitch"] = np.array([fn(int(p)) for p in notes["pitch"]], dtype=notes["pitch"].dtype)
    track.notes = Note.from_numpy(**notes)
