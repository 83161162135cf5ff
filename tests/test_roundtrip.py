"""Round trips on real pieces: MIDI -> normalize -> tokens -> MIDI keeps every note."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmonixr.config import AugmentConfig
from harmonixr.data.augment import apply_variant, draw_variants
from harmonixr.data.quantize import normalize
from harmonixr.data.tokenize import HarmonixrTokenizer
from harmonixr.data.validate import load_midi
from tests.conftest import assert_same_notes, make_score, note_table, real_piece_params


@pytest.mark.parametrize("real_file", real_piece_params(), indirect=True)
def test_tokens_decode_to_the_normalized_piece(real_file: Path, tokenizer: HarmonixrTokenizer, limits) -> None:
    normalized, _ = normalize(load_midi(real_file, limits), tokenizer, str(real_file))
    ids = tokenizer.encode(normalized, "unknown")
    decoded = tokenizer.decode(ids)
    assert_same_notes(normalized, decoded)
    assert [(ts.numerator, ts.denominator) for ts in decoded.time_signatures] == \
        [(ts.numerator, ts.denominator) for ts in normalized.time_signatures]
    assert [round(t.qpm, 1) for t in decoded.tempos] == [round(t.qpm, 1) for t in normalized.tempos]


@pytest.mark.parametrize("real_file", real_piece_params(), indirect=True)
def test_normalization_keeps_every_note_of_the_original(real_file: Path, tokenizer: HarmonixrTokenizer, limits) -> None:
    """Pitch and program exact, onset/duration on the grid, velocity within its bin."""
    original = load_midi(real_file, limits)
    normalized, report = normalize(original, tokenizer, str(real_file))
    spec = tokenizer.spec
    step = 1 / spec.grid_per_beat  # quarter notes; 6/8 pieces get a finer grid, never a coarser one
    velocity_bin = 128 / spec.num_velocities
    kept = [t for t in original.tracks if t.note_num()]
    assert [t.program for t in normalized.tracks] == [t.program for t in kept]
    assert [t.name for t in normalized.tracks] == [t.name for t in kept]
    for before, after in zip(note_table(_only(original, kept)), note_table(normalized)):
        if report.overlaps_trimmed == 0 and report.pitches_folded == 0:
            assert len(after) == len(before)
        # every original note has a normalized note of the same pitch at the grid-snapped onset
        # (one step either way: a note exactly between two grid points may go to either side),
        # with a velocity within half a velocity bin
        found: dict[tuple[int, int], list[float]] = {}
        for t, _, p, v in after:
            found.setdefault((int(p), round(t / step)), []).append(v)
        originals = Counter((int(p), round(t / step)) for t, _, p, _ in before)
        lost = []
        for t, _, p, v in before:
            key = (int(p), round(t / step))
            candidates = found.get(key) or found.get((key[0], key[1] - 1)) or found.get((key[0], key[1] + 1))
            if not candidates:
                lost.append((t, p))
            elif originals[key] == 1:  # duplicates keep the loudest (test_validate checks that)
                assert min(abs(c - v) for c in candidates) <= velocity_bin / 2 + 0.5
        if report.pitches_folded == 0:
            assert lost == [], f"{len(lost)} notes lost, e.g. {lost[:3]}"
        assert np.all(after[:, 1] > 0), "no zero-length notes"


def _only(score, tracks):
    out = score.copy()
    out.tracks.clear()
    for track in tracks:
        out.tracks.append(track.copy())
    return out


@pytest.mark.parametrize("real_file", real_piece_params()[:4] + real_piece_params()[-2:], indirect=True)
def test_augmented_variants_round_trip_and_stay_in_range(real_file: Path, tokenizer: HarmonixrTokenizer, limits) -> None:
    normalized, _ = normalize(load_midi(real_file, limits), tokenizer)
    variants = draw_variants(normalized, "piece", AugmentConfig(copies=3), tokenizer.spec.pitch_range)
    assert variants, "a real piece always has some transposition that fits"
    for variant in variants:
        piece = tokenizer.quantize(apply_variant(normalized, variant))
        assert_same_notes(piece, tokenizer.decode(tokenizer.encode(piece)))
        before, after = np.concatenate(note_table(normalized)), np.concatenate(note_table(piece))
        np.testing.assert_array_equal(after[:, 2], before[:, 2] + variant.transpose)
        low, high = tokenizer.spec.pitch_range
        assert after[:, 2].min() >= low and after[:, 2].max() <= high


_note = st.tuples(st.integers(0, 4 * 480 * 8), st.integers(0, 3 * 480), st.integers(0, 127), st.integers(1, 127))
_track = st.tuples(st.sampled_from([0, 0, 24, 40, 73]), st.booleans(), st.lists(_note, min_size=1, max_size=40))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tracks=st.lists(_track, min_size=1, max_size=5), tpq=st.sampled_from([96, 120, 384, 480, 960]),
       ts=st.sampled_from([(4, 4), (3, 4), (6, 8), (2, 2), (5, 4), (7, 8)]), bpm=st.floats(30, 300))
def test_random_scores_round_trip_exactly(tracks, tpq, ts, bpm, tokenizer: HarmonixrTokenizer) -> None:
    """Property: whatever the notes, a normalized score survives tokens unchanged."""
    score = make_score(tracks, tpq=tpq, bpm=bpm, ts=ts)
    try:
        normalized, _ = normalize(score, tokenizer)
    except Exception as exc:  # only "nothing left" is an acceptable refusal
        assert "no notes" in str(exc)
        return
    assert_same_notes(normalized, tokenizer.decode(tokenizer.encode(normalized)))
