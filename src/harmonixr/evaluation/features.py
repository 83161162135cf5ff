"""Musical features of a score: what the statistics, the style classifier and the control check read.

:func:`piece_features` computes, for the melodic and drum notes of a :class:`symusic.Score`:

- ``pitch_class``: the 12-bin pitch-class histogram (melodic notes, sums to 1);
- ``pitch_range``: highest minus lowest melodic pitch;
- ``notes_per_bar``: notes per bar (bars from the time signature, 4/4 when there is none);
- ``polyphony``: mean number of notes sounding at each onset;
- ``duration``: histogram of note lengths in quarter notes (:data:`DURATION_EDGES`);
- ``ioi``: histogram of inter-onset intervals in quarter notes (:data:`IOI_EDGES`);
- ``velocity``: histogram of velocities in 8 bins of 16;
- scalars for the controls: ``tempo`` (the first tempo), ``mean_velocity``, ``low``, ``high``.

The scalar features are the Yang & Lerch (2018) set, reduced to what applies to multi-track MIDI.
"""

from __future__ import annotations

import numpy as np
from symusic import Score

DURATION_EDGES = np.array([0.0, 0.2, 0.3, 0.4, 0.6, 0.8, 1.1, 1.6, 2.1, 3.1, 4.1, 1e9])  # quarter notes
IOI_EDGES = np.array([1e-9, 0.2, 0.3, 0.4, 0.6, 0.8, 1.1, 1.6, 2.1, 4.1, 1e9])
VELOCITY_EDGES = np.arange(0, 129, 16)
HISTOGRAMS = ("pitch_class", "duration", "ioi", "velocity")
SCALARS = ("pitch_range", "notes_per_bar", "polyphony")


def _hist(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.histogram(values, bins=edges)[0].astype(float)
    return counts / max(counts.sum(), 1.0)


def bar_count(score: Score) -> float:
    """Length of the score in bars of its first time signature (4/4 without one)."""
    ts = score.time_signatures[0] if len(score.time_signatures) else None
    quarters_per_bar = ts.numerator * 4 / ts.denominator if ts is not None else 4.0
    return max(score.end() / score.ticks_per_quarter / quarters_per_bar, 1e-9)


def piece_features(score: Score) -> dict[str, np.ndarray | float]:
    """The features of ``score`` (see the module docstring); empty scores give zeros."""
    tpq = score.ticks_per_quarter
    melodic = [t.notes.numpy() for t in score.tracks if not t.is_drum and t.note_num()]
    every = [t.notes.numpy() for t in score.tracks if t.note_num()]
    pitch = np.concatenate([n["pitch"] for n in melodic]).astype(int) if melodic else np.zeros(0, int)
    start = np.concatenate([n["time"] for n in every]).astype(float) / tpq if every else np.zeros(0)
    length = np.concatenate([n["duration"] for n in every]).astype(float) / tpq if every else np.zeros(0)
    velocity = np.concatenate([n["velocity"] for n in every]).astype(float) if every else np.zeros(0)
    onsets = np.unique(start)
    sounding = [(np.sum((start <= t) & (start + length > t))) for t in onsets[:2000]]
    tempo = float(score.tempos[0].qpm) if len(score.tempos) else 120.0
    return {
        "pitch_class": _hist(pitch % 12, np.arange(13)),
        "pitch_range": float(pitch.max() - pitch.min()) if pitch.size else 0.0,
        "notes_per_bar": len(start) / bar_count(score),
        "polyphony": float(np.mean(sounding)) if sounding else 0.0,
        "duration": _hist(length, DURATION_EDGES),
        "ioi": _hist(np.diff(onsets), IOI_EDGES),
        "velocity": _hist(velocity, VELOCITY_EDGES),
        "tempo": tempo,
        "mean_velocity": float(velocity.mean()) if velocity.size else 0.0,
        "low": float(pitch.min()) if pitch.size else 0.0,
        "high": float(pitch.max()) if pitch.size else 0.0,
    }


def feature_vector(features: dict[str, np.ndarray | float]) -> np.ndarray:
    """All histograms and scalars as one vector (the style classifier's input)."""
    scalars = [np.log1p(features[name]) for name in SCALARS] + [features["tempo"] / 100, features["mean_velocity"] / 64]
    return np.concatenate([*(features[name] for name in HISTOGRAMS), np.asarray(scalars, dtype=float)])
