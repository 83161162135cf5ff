"""Normalization: a parsed score becomes what the note vocabulary can represent, in its own ticks.

After :func:`normalize`, :func:`harmonixr.tokens.notes.encode_score` writes every note (onset to
1/16 of a grid step, pitch, duration bin, exact velocity, track) and decoding gives them back.
The steps, in order:

1. empty tracks are dropped; drum tracks are merged into one; if more melodic tracks remain than
   there are track slots, tracks of the same program are merged (and the file is rejected when
   that is still too many);
2. melodic pitches outside the vocabulary's range are folded by octaves into it; drum hits outside
   the drum range are dropped; zero-length notes get one tick;
3. overlapping notes of the same pitch in one track are trimmed so that the earlier one ends where
   the later one starts (identical onsets keep the longer note);
4. time signatures no meter can have (numerator 0, a denominator that is not a power of two) are
   dropped.

Onsets are not moved: the grid position and the offset from it are both kept (micro-timing), so
performed MIDI keeps its feel. Velocity, tempo changes, time signatures, programs, track names and
drums are all kept.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from symusic import Note, Score, TimeSignature, Track

from harmonixr.data.validate import Reason, RejectError
from harmonixr.tokens.vocab import METERS, NoteVocab

MEANINGFUL_DENOMINATORS = (1, 2, 4, 8, 16, 32, 64)
# Drum sounds General MIDI lacks, as its nearest: the hi-hat edge hits of Roland's kits (the Groove
# dataset's 22 and 26, 10% of its drum notes), which a GM synth plays as silence (the bundled
# SoundFont renders nothing), become GM's closed and open hi-hat, as the dataset's own mapping does.
GM_DRUM_SOUNDS = {22: 42, 26: 46}


@dataclass
class NormalizeReport:
    """What normalization changed, counted (the manifest keeps these per piece)."""

    tracks_merged: int = 0
    pitches_folded: int = 0
    drums_dropped: int = 0
    drums_to_gm: int = 0  # drum hits moved to their General MIDI sound (GM_DRUM_SOUNDS)
    zero_length_fixed: int = 0
    overlaps_trimmed: int = 0
    unsupported_time_signatures: int = 0
    invalid_time_signatures_dropped: int = 0  # numerator 0, or a denominator that is not 1, 2, 4 ... 64

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def gm_drums(pitches: np.ndarray) -> np.ndarray:
    """Drum ``pitches`` with the sounds General MIDI lacks moved to their GM equivalent (:data:`GM_DRUM_SOUNDS`)."""
    out = np.array(pitches, copy=True)
    for sound, gm in GM_DRUM_SOUNDS.items():
        out[pitches == sound] = gm
    return out


def normalize(score: Score, vocab: NoteVocab, path: str = "<score>") -> tuple[Score, NormalizeReport]:
    """Return a normalized copy of ``score`` (the input is not modified) and what changed."""
    report = NormalizeReport()
    spec = vocab.spec
    score = score.copy()
    _merge_tracks(score, spec.max_tracks, report, path)
    low, high = spec.pitch_range
    drum_low, drum_high = spec.drums_pitch_range
    for track in score.tracks:
        notes = track.notes.numpy()
        if track.is_drum:
            moved = gm_drums(notes["pitch"])
            report.drums_to_gm += int((moved != notes["pitch"]).sum())
            notes["pitch"] = moved
            keep = (notes["pitch"] >= drum_low) & (notes["pitch"] <= drum_high)
            report.drums_dropped += int((~keep).sum())
            notes = {k: v[keep] for k, v in notes.items()}
        else:
            pitch = notes["pitch"].astype(np.int32)
            folded = _fold_octaves(pitch, low, high)
            report.pitches_folded += int((folded != pitch).sum())
            notes["pitch"] = folded.astype(notes["pitch"].dtype)
        zero = notes["duration"] <= 0
        report.zero_length_fixed += int(zero.sum())
        notes["duration"] = np.where(zero, 1, notes["duration"]).astype(notes["duration"].dtype)
        notes["velocity"] = np.clip(notes["velocity"], 1, 127).astype(notes["velocity"].dtype)
        report.overlaps_trimmed += _trim_same_pitch_overlaps(notes)
        track.notes = Note.from_numpy(**notes)
    report.invalid_time_signatures_dropped = _drop_invalid_time_signatures(score)
    report.unsupported_time_signatures = sum((ts.numerator, ts.denominator) not in METERS for ts in score.time_signatures)
    score.tracks = [t for t in score.tracks if t.note_num() > 0]
    if sum(t.note_num() for t in score.tracks) == 0:
        raise RejectError(path, Reason.NO_NOTES, "no notes left after normalization")
    return score, report


def _drop_invalid_time_signatures(score: Score) -> int:
    """Remove time signatures no meter can have (a damaged meta event); return how many."""
    valid = [ts for ts in score.time_signatures
             if ts.numerator >= 1 and ts.denominator in MEANINGFUL_DENOMINATORS]
    dropped = len(score.time_signatures) - len(valid)
    if dropped:
        _set_time_signatures(score, valid)
    return dropped


def _set_time_signatures(score: Score, signatures: list[TimeSignature]) -> None:
    score.time_signatures.clear()
    for ts in signatures:
        score.time_signatures.append(ts)


def _fold_octaves(pitch: np.ndarray, low: int, high: int) -> np.ndarray:
    """Move each pitch by whole octaves into ``[low, high]`` (the range spans >= one octave)."""
    assert high - low >= 11, "pitch range must span an octave"
    below, above = pitch < low, pitch > high
    pitch = pitch.copy()
    pitch[below] += 12 * ((low - pitch[below] + 11) // 12)
    pitch[above] -= 12 * ((pitch[above] - high + 11) // 12)
    return pitch


def _trim_same_pitch_overlaps(notes: dict[str, np.ndarray]) -> int:
    """Trim, in place, notes that overlap a later note of the same pitch; return how many changed.

    Notes with the same onset and pitch are duplicates: the longest one is kept (the loudest of
    equally long ones).
    """
    if len(notes["time"]) < 2:
        return 0
    order = np.lexsort((-notes["velocity"].astype(np.int32), -notes["duration"], notes["time"], notes["pitch"]))
    time, duration, pitch = notes["time"][order], notes["duration"][order].copy(), notes["pitch"][order]
    same_pitch = pitch[1:] == pitch[:-1]
    gap = time[1:] - time[:-1]
    overlap = same_pitch & (time[:-1] + duration[:-1] > time[1:])
    duplicate = same_pitch & (gap == 0)
    trimmed = overlap & ~duplicate
    duration[:-1][trimmed] = gap[trimmed]
    keep = np.ones(len(time), dtype=bool)
    keep[1:][duplicate] = False
    changed = int(trimmed.sum() + duplicate.sum())
    for key in notes:
        notes[key] = notes[key][order][keep]
    notes["duration"] = duration[keep].astype(notes["duration"].dtype)
    return changed


def _merge_tracks(score: Score, max_tracks: int, report: NormalizeReport, path: str) -> None:
    """Drop empty tracks, merge drum tracks, and merge same-program tracks if slots run out."""
    tracks = [t for t in score.tracks if t.note_num() > 0]
    drums = [t for t in tracks if t.is_drum]
    melodic = [t for t in tracks if not t.is_drum]
    if len(drums) > 1:
        report.tracks_merged += len(drums) - 1
        drums = [_merge(drums, name=drums[0].name or "Drums")]
    if len(melodic) > max_tracks:
        by_program: dict[int, list[Track]] = {}
        for track in melodic:
            by_program.setdefault(track.program, []).append(track)
        report.tracks_merged += len(melodic) - len(by_program)
        melodic = [_merge(group, name=group[0].name) for group in by_program.values()]
        if len(melodic) > max_tracks:
            raise RejectError(
                path, Reason.TOO_MANY_TRACKS,
                f"{len(melodic)} instruments after merging same-program tracks > {max_tracks} track slots",
            )
    score.tracks = melodic + drums


def _merge(tracks: list[Track], name: str) -> Track:
    merged = Track(name, tracks[0].program, tracks[0].is_drum)
    for track in tracks:
        merged.notes.extend(track.notes)
    merged.notes.sort()
    return merged
