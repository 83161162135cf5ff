"""Augmentation of training pieces: transposition, tempo stretch, velocity scaling.

Variants are drawn deterministically from ``(seed, piece id, variant index)``, so a re-run writes
the same data. Drums are never transposed; a transposition that would push a melodic note out of
the vocabulary's pitch range is not drawn. Validation and test pieces are never augmented (the
caller, :mod:`harmonixr.data.prepare`, augments the train split only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from symusic import Note, Score, Tempo

from harmonixr.config import AugmentConfig


@dataclass(frozen=True)
class Variant:
    """One augmentation: semitones, tempo factor, velocity factor."""

    transpose: int
    tempo_scale: float
    velocity_scale: float

    def label(self) -> str:
        return f"t{self.transpose:+d}_tempo{self.tempo_scale:.3f}_vel{self.velocity_scale:.3f}"


def allowed_transpositions(score: Score, pitch_range: tuple[int, int], span: tuple[int, int]) -> list[int]:
    """Non-zero semitone shifts in ``span`` that keep every melodic note inside ``pitch_range``."""
    pitches = [t.notes.numpy()["pitch"] for t in score.tracks if not t.is_drum and t.note_num()]
    if not pitches:
        return []
    all_pitches = np.concatenate(pitches).astype(int)
    low, high = int(all_pitches.min()), int(all_pitches.max())
    return [k for k in range(span[0], span[1] + 1)
            if k != 0 and low + k >= pitch_range[0] and high + k <= pitch_range[1]]


def draw_variants(score: Score, piece_id: str, config: AugmentConfig,
                  pitch_range: tuple[int, int]) -> list[Variant]:
    """The ``config.copies`` variants of a piece (fewer if no transposition fits)."""
    digest = hashlib.sha256(f"{config.seed}:{piece_id}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    choices = allowed_transpositions(score, pitch_range, config.transpose)
    if not choices:
        return []
    shifts = rng.choice(choices, size=min(config.copies, len(choices)), replace=False)
    return [
        Variant(int(k), float(rng.uniform(*config.tempo_scale)), float(rng.uniform(*config.velocity_scale)))
        for k in shifts
    ]


def apply_variant(score: Score, variant: Variant) -> Score:
    """A transposed, tempo-stretched, velocity-scaled copy of ``score`` (the input is unchanged).

    The copy is not on the vocabulary's bins any more: pass it through the tokenizer's
    ``quantize`` before encoding.
    """
    out = score.copy()
    for track in out.tracks:
        notes = track.notes.numpy()
        if not track.is_drum:
            notes["pitch"] = (notes["pitch"].astype(np.int32) + variant.transpose).astype(notes["pitch"].dtype)
        velocity = np.rint(notes["velocity"].astype(np.float64) * variant.velocity_scale)
        notes["velocity"] = np.clip(velocity, 1, 127).astype(notes["velocity"].dtype)
        track.notes = Note.from_numpy(**notes)
    tempos = [Tempo(t.time, qpm=t.qpm * variant.tempo_scale) for t in out.tempos]
    out.tempos.clear()
    for tempo in tempos:
        out.tempos.append(tempo)
    return out
