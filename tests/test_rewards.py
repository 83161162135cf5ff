"""Reward functions on constructed passages: the better passage scores higher, every term in [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
from symusic import Score

from conftest import make_score
from harmonixr.rl import rewards as r

C_MAJOR_TUNE = [60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72, 67, 64, 62, 60]


def melody(pitches: list[int], step: int = 480, start: int = 0, velocity: int = 80) -> list[tuple[int, int, int, int]]:
    return [(start + k * step, step, p, velocity) for k, p in enumerate(pitches)]


def test_in_key_prefers_the_tune_to_the_same_tune_with_wrong_notes() -> None:
    right = make_score([(0, False, melody(C_MAJOR_TUNE))])
    wrong = make_score([(0, False, melody([p + (1 if k % 3 == 1 else 0) for k, p in enumerate(C_MAJOR_TUNE)]))])
    assert r.in_key(right) == 1.0 > r.in_key(wrong)


def test_consonance_and_chord_tones_prefer_triads_to_clusters() -> None:
    triads = make_score([(0, False, [(k * 480, 480, p, 80) for k in range(4) for p in (60, 64, 67)])])
    clusters = make_score([(0, False, [(k * 480, 480, p, 80) for k in range(4) for p in (60, 61, 62)])])
    assert r.consonance(triads) == 1.0 > r.consonance(clusters)
    assert r.chord_tones(triads) == pytest.approx(1.0)
    assert r.chord_tones(clusters) < 0.8


def test_rhythm_terms_prefer_the_grid_and_repeated_bars() -> None:
    steady = make_score([(0, False, melody(C_MAJOR_TUNE, step=240))])  # eighths, every bar alike
    ragged = make_score([(0, False, [(int(k * 240 + (37 if k % 2 else 0) + 61 * (k % 5)), 200, 60, 80) for k in range(16)])])
    assert r.on_grid(steady) == 1.0 > r.on_grid(ragged)
    assert r.bar_regularity(steady) == 1.0 > r.bar_regularity(ragged)


def test_smoothness_prefers_steps_to_leaps() -> None:
    steps = make_score([(0, False, melody(C_MAJOR_TUNE))])
    leaps = make_score([(0, False, melody([60, 84, 48, 79, 41, 90, 55, 86]))])
    assert r.smoothness(steps) > 0.6 and r.smoothness(leaps) < 0.1


def test_novelty_and_copying_against_a_corpus() -> None:
    corpus = [make_score([(0, False, melody(C_MAJOR_TUNE))])]
    index = r.PhraseIndex(corpus, n=4, max_n=16)
    copied = make_score([(0, False, melody([p + 5 for p in C_MAJOR_TUNE]))])  # the same tune, transposed
    fresh = make_score([(0, False, melody([60, 67, 59, 71, 62, 57, 69, 64, 55, 65, 72, 61]))])
    assert r.novelty(copied, index) == 0.0 and r.longest_copy(copied, index) == len(C_MAJOR_TUNE) - 1
    assert r.novelty(fresh, index) == 1.0 and r.longest_copy(fresh, index) == 0


def test_batch_diversity() -> None:
    same = [make_score([(0, False, melody(C_MAJOR_TUNE))])] * 3
    varied = [make_score([(0, False, melody([p + k for p in C_MAJOR_TUNE]))]) for k in (0, 1, 6)]
    assert r.batch_diversity(same) == 0.0 < r.batch_diversity(varied) <= 1.0


def test_edge_fit_prefers_a_fill_that_continues_the_line() -> None:
    context = melody([60, 62, 64, 65]) + melody([67, 65, 64, 62], start=8 * 480)
    smooth = make_score([(0, False, context + melody([67, 69, 67, 65], start=4 * 480))])
    jumpy = make_score([(0, False, context + melody([96, 98, 30, 28], start=4 * 480))])
    assert r.edge_fit(smooth, 4 * 480, 8 * 480) > 0.8 > r.edge_fit(jumpy, 4 * 480, 8 * 480)


def test_every_term_is_in_range_on_a_real_piece(music21_midi) -> None:
    score = Score(str(music21_midi["bach/bwv66.6"]))
    values = [r.in_key(score), r.consonance(score), r.chord_tones(score), r.on_grid(score),
              r.bar_regularity(score), r.smoothness(score), r.edge_fit(score, 1920, 3840),
              r.bounded_syncopation(score), r.voice_leading(score)]
    assert all(0.0 <= v <= 1.0 for v in values) and np.mean(values) > 0.3
    assert r.in_key(score) > 0.9 and r.consonance(score) > 0.7  # a Bach chorale is in key and consonant


def test_weighted_total_uses_only_the_weighted_terms() -> None:
    score = make_score([(0, False, melody(C_MAJOR_TUNE))])
    weights = r.RewardWeights(chord_tones=0, bar_regularity=0, on_grid=0, smoothness=0, syncopation=0,
                              voice_leading=0, style=1.0)
    terms = r.reward_terms(score, weights)
    assert set(terms) == {"in_key", "consonance", "total"}  # no index, region or model: those terms are left out
    assert terms["total"] == pytest.approx((terms["in_key"] + terms["consonance"]) / 2)
    index = r.PhraseIndex([score], n=4)
    context = r.RewardContext(index, style_model=lambda s, style: 0.25 if style == "pop" else 1.0)
    full = r.reward_terms(score, r.RewardWeights(style=2.0), context, (0, 1920), style="pop")
    assert {"novelty", "edge_fit", "style", "syncopation", "voice_leading"} <= set(full)
    assert full["novelty"] == 0.0 and full["style"] == 0.25 and 0 <= full["total"] <= 1


def test_syncopation_is_free_up_to_its_bound() -> None:
    straight = make_score([(0, False, melody(C_MAJOR_TUNE))])
    pushed = make_score([(0, False, [(k * 480 + 240, 480, 60, 80) for k in range(16)])])  # every note across a beat
    some = make_score([(0, False, melody(C_MAJOR_TUNE[:12]) + [(k * 480 + 240 + 12 * 480, 480, 62, 80) for k in range(2)])])
    assert r.bounded_syncopation(straight) == 1.0 == r.bounded_syncopation(some)
    assert r.bounded_syncopation(pushed) == 0.0


def test_voice_leading_prefers_near_chords() -> None:
    near = make_score([(0, False, [(0, 480, p, 80) for p in (60, 64, 67)] + [(480, 480, p, 80) for p in (60, 65, 69)])])
    far = make_score([(0, False, [(0, 480, p, 80) for p in (60, 64, 67)] + [(480, 480, p, 80) for p in (78, 82, 85)])])
    assert r.voice_leading(near) > 0.7 > 0.2 > r.voice_leading(far)
