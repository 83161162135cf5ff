"""Bad input is refused with a named reason; odd-but-valid input is normalized, not lost."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from harmonixr.config import LimitsConfig
from harmonixr.data.isolation import Failure, IsolatedPool
from harmonixr.data.normalize import normalize
from harmonixr.data.validate import Reason, RejectError, load_midi, parse_midi
from tests.conftest import make_score, midi_bytes, note_table

SCALE = [(i * 480, 480, 60 + i, 80) for i in range(12)]


def reason_of(data: bytes, limits: LimitsConfig = LimitsConfig()) -> Reason:
    with pytest.raises(RejectError) as info:
        parse_midi(data, "x.mid", limits)
    assert str(info.value).startswith("x.mid: "), "the error names the file"
    return info.value.reason


def good_bytes() -> bytes:
    return midi_bytes(make_score([(0, False, SCALE)]))


def test_valid_file_parses() -> None:
    score = parse_midi(good_bytes(), "x.mid", LimitsConfig())
    assert score.tracks[0].note_num() == 12


@pytest.mark.parametrize("data, reason", [
    (b"", Reason.EMPTY),
    (b"RIFF1234WAVEfmt ", Reason.NOT_MIDI),
    (b"MThd\x00\x00\x00\x06\x00\x01", Reason.TRUNCATED),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x80\x00", Reason.UNREADABLE),  # SMPTE division
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x00\x00", Reason.UNREADABLE),  # 0 ticks per quarter
])
def test_header_problems_are_named(data: bytes, reason: Reason) -> None:
    assert reason_of(data) is reason


@pytest.mark.parametrize("cut", [20, 40, 0.5, -1])
def test_truncated_files_are_refused(cut) -> None:
    data = good_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (len(data) + cut if cut < 0 else cut)
    assert reason_of(data[:n]) is Reason.TRUNCATED


def test_bogus_chunk_length_is_truncation() -> None:
    data = bytearray(good_bytes())
    data[18:22] = struct.pack(">I", 10_000_000)  # first MTrk length
    assert reason_of(bytes(data)) is Reason.TRUNCATED


def test_declared_tracks_beyond_limit() -> None:
    data = bytearray(good_bytes())
    data[10:12] = struct.pack(">H", 5000)
    assert reason_of(bytes(data), LimitsConfig(max_tracks=256)) is Reason.TOO_MANY_TRACKS


def test_random_corruption_never_escapes_as_anything_but_reject() -> None:
    rng = np.random.default_rng(0)
    base = good_bytes()
    for _ in range(300):
        data = bytearray(base)
        for pos in rng.integers(0, len(data), size=rng.integers(1, 8)):
            data[pos] = int(rng.integers(0, 256))
        try:
            parse_midi(bytes(data), "fuzz.mid", LimitsConfig())
        except RejectError:
            pass


def test_no_notes_and_too_few_notes() -> None:
    assert reason_of(midi_bytes(make_score([(0, False, [])]))) is Reason.NO_NOTES
    assert reason_of(midi_bytes(make_score([(0, False, SCALE[:3])]))) is Reason.NO_NOTES


def test_absurd_tempo() -> None:
    assert reason_of(midi_bytes(make_score([(0, False, SCALE)], bpm=5000))) is Reason.ABSURD_TEMPO


def test_huge_times_are_too_long() -> None:
    notes = SCALE + [(2**30, 480, 60, 80)]
    assert reason_of(midi_bytes(make_score([(0, False, notes)]))) is Reason.TOO_LONG


def test_note_limit() -> None:
    assert reason_of(good_bytes(), LimitsConfig(max_notes=5)) is Reason.TOO_MANY_NOTES


def test_file_size_limit_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.mid"
    path.write_bytes(good_bytes() + b"\0" * 2000)
    with pytest.raises(RejectError) as info:
        load_midi(path, LimitsConfig(max_file_bytes=1000))
    assert info.value.reason is Reason.TOO_LARGE and str(path) in str(info.value)


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(RejectError) as info:
        load_midi(tmp_path / "nope.mid", LimitsConfig())
    assert info.value.reason is Reason.UNREADABLE


def test_zero_length_notes_get_the_shortest_duration(vocab) -> None:
    notes = SCALE[:-1] + [(12 * 480, 0, 72, 90)]
    score = parse_midi(midi_bytes(make_score([(0, False, notes)])), "z.mid", LimitsConfig())
    normalized, report = normalize(score, vocab)
    table = note_table(normalized)[0]
    assert report.zero_length_fixed == 1
    assert len(table) == 12 and table[:, 1].min() > 0  # one tick; the rows write it as the shortest bin
    assert 72 in table[:, 2]
    from harmonixr.tokens.notes import DUR, PITCH, encode_score

    notes, _, _ = encode_score(normalized, vocab)
    assert notes[notes[:, PITCH] == 72, DUR].tolist() == [0]


def test_overlapping_same_pitch_notes_are_trimmed(vocab) -> None:
    notes = [(0, 960, 60, 80), (480, 960, 60, 80), (480, 240, 60, 70), (0, 480, 64, 80),
             (1920, 480, 67, 50), (1920, 480, 67, 110)] + SCALE[5:]
    normalized, report = normalize(make_score([(0, False, notes)]), vocab)
    table = note_table(normalized)[0]
    c4, g4 = table[table[:, 2] == 60], table[(table[:, 2] == 67) & (table[:, 0] == 4.0)]
    assert report.overlaps_trimmed == 3  # one trimmed, two duplicate onsets removed
    assert c4[:, :2].tolist() == [[0.0, 1.0], [1.0, 2.0]], "earlier note ends where the later starts"
    assert len(g4) == 1 and g4[0, 3] >= 107, "of two identical notes, the louder stays"


def test_out_of_range_pitches_fold_and_drums_are_kept(vocab) -> None:
    score = make_score([(0, False, [(0, 480, 5, 80), (480, 480, 120, 80)] + SCALE),
                        (0, True, [(i * 240, 120, 36 + (i % 3), 100) for i in range(16)])])
    normalized, report = normalize(score, vocab)
    assert report.pitches_folded == 2
    melodic, drums = note_table(normalized)
    assert set(melodic[:2, 2]) <= set(range(21, 109)) and {5 + 24, 120 - 12} <= set(melodic[:, 2])
    assert normalized.tracks[1].is_drum and len(drums) == 16


# -- isolation: one bad input costs one item ---------------------------------------------------
def _abort_on_two(x: int) -> int:
    if x == 2:
        os.abort()
    return x * 10


def _sleep_on_one(x: int) -> int:
    if x == 1:
        time.sleep(30)
    return x


def _allocate(x: int) -> int:
    if x == 1:
        blob = bytearray(2 * 1024**3)  # beyond the worker's limit
        return len(blob)
    return x


def test_a_worker_abort_is_reported_and_the_run_goes_on() -> None:
    with IsolatedPool(_abort_on_two, workers=2, timeout_s=30) as pool:
        results = dict(pool.map_unordered(range(6)))
    assert isinstance(results[2], Failure) and results[2].kind == "crashed"
    assert "SIGABRT" in results[2].detail
    assert {k: v for k, v in results.items() if k != 2} == {0: 0, 1: 10, 3: 30, 4: 40, 5: 50}


def test_a_hang_times_out() -> None:
    start = time.monotonic()
    with IsolatedPool(_sleep_on_one, workers=1, timeout_s=1.5) as pool:
        results = dict(pool.map_unordered(range(3)))
    assert isinstance(results[1], Failure) and results[1].kind == "timeout"
    assert results[0] == 0 and results[2] == 2
    assert time.monotonic() - start < 20


def test_memory_limit_is_enforced() -> None:
    with IsolatedPool(_allocate, workers=1, timeout_s=30, memory_mb=1024) as pool:
        results = dict(pool.map_unordered(range(3)))
    assert isinstance(results[1], Failure) and results[1].kind in ("out_of_memory", "crashed")
    assert results[0] == 0 and results[2] == 2


def test_drum_sounds_general_midi_lacks_become_their_gm_sound(vocab) -> None:
    """Roland's hi-hat edge hits (22, 26: the Groove dataset's), which a GM synth plays as silence,
    become GM's closed and open hi-hat when a piece is read, and so do the model's own: the bundled
    SoundFont renders 22 and 26 as nothing and 42 and 46 as a hi-hat."""
    import numpy as np

    from harmonixr.data.normalize import GM_DRUM_SOUNDS, gm_drums

    hits = [(k * 240, 60, pitch, 90) for k, pitch in enumerate([36, 22, 38, 26, 42, 46, 36, 38])]
    score = parse_midi(midi_bytes(make_score([(0, True, hits)])), "kit.mid", LimitsConfig())
    normalized, report = normalize(score, vocab)
    heard = [n.pitch for n in sorted(normalized.tracks[0].notes, key=lambda n: n.time)]
    assert heard == [36, 42, 38, 46, 42, 46, 36, 38] and report.drums_to_gm == 2
    assert GM_DRUM_SOUNDS == {22: 42, 26: 46}
    assert gm_drums(np.array([22, 26, 35, 81])).tolist() == [42, 46, 35, 81]
