"""The evaluation report, small, on real pieces with the shipped model: every section is there and
its numbers are sane; the infill quality metrics on constructed cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from symusic import Score

from harmonixr.cli import main
from harmonixr.evaluation.infill_quality import (
    MARGIN_BARS,
    chord_shares,
    compare_notes,
    duration_error,
    hole_starts,
    kept_chords,
    longest_silence,
    median_durations,
    paired,
    shortest_piece,
    silences,
)

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "harmonixr-small"


def test_note_metrics_on_constructed_fills() -> None:
    truth = [(0, 60, 80), (480, 64, 80), (960, 67, 80), (1440, 72, 80)]
    same = compare_notes(truth, truth, 0, 1920, 40)
    assert same["f1"] == same["pitch_class_overlap"] == same["rhythm_overlap"] == 1.0 and same["velocity_distance"] == 0
    shifted = compare_notes([(t + 40, p, v + 20) for t, p, v in truth], truth, 0, 1920, 40)
    assert shifted["f1"] == 0 and shifted["pitch_class_overlap"] == 1.0 and shifted["rhythm_overlap"] == 0
    assert shifted["velocity_distance"] == 20
    half = compare_notes(truth[:2], truth, 0, 1920, 40)
    assert half["precision"] == 1.0 and half["recall"] == 0.5 and half["f1"] == pytest.approx(2 / 3)
    assert compare_notes([], truth, 0, 1920, 40)["f1"] == 0


def test_paired_differences_average_fills_per_hole_and_count_wins() -> None:
    row = lambda method, hole, f1, pc: {"method": method, "hole": hole, "f1": f1, "pitch_class_overlap": pc}  # noqa: E731
    rows = [row("m", 0, 0.5, 0.9), row("m", 0, 0.3, 0.7), row("b", 0, 0.2, 0.8),  # hole 0: m 0.4 / 0.8 vs b
            row("m", 1, 0.1, 0.5), row("b", 1, 0.3, 0.5),
            row("m", 2, 0.6, 0.6), row("b", 2, 0.3, 0.4),
            row("b", 3, 0.9, 0.9)]  # filled by b only: not compared
    result = paired(rows, "m", "b")
    assert result["holes"] == 3
    assert result["f1"] == pytest.approx((0.2 - 0.2 + 0.3) / 3)
    assert result["f1_se"] == pytest.approx(np.std([0.2, -0.2, 0.3], ddof=1) / np.sqrt(3))
    assert result["f1_won_lost"] == "2/1" and result["pitch_class_overlap_won_lost"] == "1/0"
    assert result["pitch_class_overlap"] == pytest.approx((0.0 + 0.0 + 0.2) / 3)


def test_paired_standard_error_is_over_pieces_when_a_piece_holds_several_holes() -> None:
    row = lambda method, hole, piece, f1: {"method": method, "hole": hole, "piece": piece,  # noqa: E731
                                           "f1": f1, "pitch_class_overlap": 0.5}
    diffs = {(0, 0): 0.4, (1, 0): 0.2, (2, 1): -0.1, (3, 2): 0.3, (4, 2): 0.1}  # (hole, piece): m - b
    rows = [r for (h, p), d in diffs.items() for r in (row("m", h, p, 0.5 + d), row("b", h, p, 0.5))]
    result = paired(rows, "m", "b")
    assert result["holes"] == 5 and result["pieces"] == 3 and result["f1_won_lost"] == "4/1"
    assert result["f1"] == pytest.approx(np.mean(list(diffs.values())))
    assert result["f1_se"] == pytest.approx(np.std([0.3, -0.1, 0.2], ddof=1) / np.sqrt(3))


def test_holes_spread_over_a_piece_leave_bars_on_both_sides_and_never_overlap() -> None:
    for bars in (1, 2, 4, 8):
        for per_piece in (1, 2, 3):
            shortest = shortest_piece(bars, per_piece)
            assert not hole_starts(shortest - 1, bars, per_piece)
            for piece_bars in range(shortest, shortest + 40):
                firsts = hole_starts(piece_bars, bars, per_piece)
                assert len(firsts) == per_piece, (piece_bars, bars, per_piece)
                assert firsts[0] >= MARGIN_BARS and firsts[-1] + bars + MARGIN_BARS <= piece_bars
                assert all(b - a >= bars for a, b in zip(firsts, firsts[1:]))
            # one hole: the middle of the piece, as the protocol has it
            assert hole_starts(shortest + 7, bars, 1) == [(shortest + 7) // 2 - bars // 2]


def test_chord_and_duration_measures_on_a_constructed_song() -> None:
    """Strings in octaves at 3 of 4 onsets (quarter notes), a bass in eighths, drums (not counted);
    a fill whose strings play single half notes: chords at none of its onsets, notes twice as long."""
    from symusic import Note, Track

    def song(octaves: bool, length: int) -> Score:
        score = Score(480)
        strings, bass, drums = Track("Strings", 48, False), Track("Bass", 33, False), Track("Drums", 0, True)
        for k in range(4):
            strings.notes.extend(Note(k * 480, length, p, 70) for p in ((60, 72) if octaves and k < 3 else (60,)))
            drums.notes.extend([Note(k * 480, 60, 36, 90), Note(k * 480, 60, 42, 90)])
        bass.notes.extend(Note(k * 240, 200, 36, 90) for k in range(8))
        score.tracks.extend([strings, bass, drums])
        return score

    original, fill = song(True, 480), song(False, 960)
    assert chord_shares(original, 0, 1920) == [0.75, 0.0, None] and chord_shares(original, 1920, 3840) == [None] * 3
    assert median_durations(original, 0, 1920) == [480.0, 200.0, None]
    row = {"chords": chord_shares(fill, 0, 1920), "truth_chords": chord_shares(original, 0, 1920),
           "durations": median_durations(fill, 0, 1920), "truth_durations": median_durations(original, 0, 1920)}
    assert kept_chords([row], 0.75) == (0.0, 1)
    share, compared = kept_chords([row], 0.8)  # no original track chords at 80% of its onsets
    assert np.isnan(share) and compared == 0
    assert duration_error([row]) == (0.5, 2)  # |log2 2| for the strings, 0 for the bass
    assert kept_chords([{**row, "chords": None}], 0.75)[1] == 0  # a copy has no per-track measures


def test_the_longest_silence_of_a_fill_counts_its_seams() -> None:
    """longest_silence: the longest time in the hole with no onset on any track, from the last onset
    before it to the first after it; silences() compares a fill's with the original's."""
    from conftest import make_score

    band = make_score([(0, False, [(t, 240, 60, 80) for t in (0, 480, 960, 2880, 3840)]),
                       (33, False, [(t, 240, 36, 80) for t in (960, 1440)])])  # quarter notes at 480 ticks
    assert longest_silence(band, 960, 3840) == 2880 - 1440  # between two onsets inside
    assert longest_silence(band, 1920, 2880) == 2880 - 1440  # from the last onset before the hole
    assert longest_silence(band, 3000, 3600) == 3840 - 2880  # across the whole hole, seams included
    rows = [{"silence": 3.0, "truth_silence": 1.0}, {"silence": 1.5, "truth_silence": 1.0},
            {"silence": None, "truth_silence": 1.0}]
    assert silences(rows) == (2.25, 1.0, 0.5)  # a copy (no score) left out; one fill a quarter note or more longer


@pytest.mark.slow
def test_small_report_has_every_section(training_corpus, tmp_path) -> None:
    config = tmp_path / "report.yaml"
    config.write_text("infill_pieces: 2\ninfill_samples: 2\nstats_pieces: 3\nstats_bars: 4\nclassifier_train: 6\n"
                      "control_trials: 3\nlistening: 1\nholes_per_piece: 1\ninfill_bars: 1\n")
    out = tmp_path / "report"
    assert main(["evaluate", str(SHIPPED), "--data", str(training_corpus), "--out", str(out), "--config", str(config)]) == 0
    numbers = json.loads((out / "metrics.json").read_text())
    tasks = {r["task"] for r in numbers["likelihood"]}
    assert tasks == {"next-note", "infill", "infill, left context only"}
    assert all(0 < r["bits_per_note"] < 60 for r in numbers["likelihood"])
    methods = {r["method"]: r for r in numbers["infill_quality"] if r["source"] == "all"}
    assert set(methods) == {"harmonixr, piece-aware", "harmonixr, best of both",
                            "harmonixr, both sides, sampled", "harmonixr, both sides, sampled, rhythm free",
                            "harmonixr, both sides, greedy", "harmonixr, left context only, sampled",
                            "harmonixr, left context only, greedy",
                            "repeat the bar before", "copy the bars before"}
    pairs = {(r["method"], r["against"]) for r in numbers["infill_paired"] if r["source"] == "all"}
    assert ("harmonixr, both sides, greedy", "harmonixr, left context only, greedy") in pairs
    assert ("harmonixr, piece-aware", "copy the bars before") in pairs
    assert ("harmonixr, both sides, sampled", "harmonixr, left context only, sampled") in pairs and len(pairs) == 13
    assert ("harmonixr, both sides, sampled", "harmonixr, both sides, sampled, rhythm free") in pairs  # the ablation
    assert all(0 <= r["f1"] <= 1 and 0 <= r["pitch_class_overlap"] <= 1 for r in methods.values())
    assert len(numbers["controls"]) == 5 and "fifths_vs_semitones" in numbers["embeddings"]
    page = (out / "report.html").read_text()
    for heading in ("1. Likelihood", "2. Infill quality", "3. Generated vs real", "4. Style consistency",
                    "5. Control adherence", "6. Pictures", "7. Listen"):
        assert heading in page
    assert page.count("data:audio/wav;base64,") == 2 and "data:image/png;base64," in page and "plotly" in page
    for name in ("likelihood.csv", "infill_quality.csv", "infill_paired.csv", "controls.csv", "infill_fills.csv"):
        assert (out / name).stat().st_size > 0
