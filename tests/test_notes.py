"""The note vocabulary and its round trips on real pieces: MIDI -> normalize -> note rows -> MIDI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harmonixr.config import TokenizerSpec
from harmonixr.data.normalize import normalize
from harmonixr.data.validate import load_midi
from harmonixr.tokens.notes import BAR, MICRO, POS, decode_notes, encode_score, sort_notes
from harmonixr.tokens.timeline import timeline_of
from harmonixr.tokens.vocab import COLUMNS, FIELDS, NoteVocab, VocabError
from tests.conftest import make_score, real_piece_params


def test_vocabulary_is_computed_from_the_spec(vocab: NoteVocab) -> None:
    more = NoteVocab(replace(TokenizerSpec(), styles=(*TokenizerSpec().styles, "jazz")))
    finer = NoteVocab(replace(TokenizerSpec(), micro_bins=33))
    assert more.sizes["value"] == vocab.sizes["value"] + 1 and "Style_jazz" in more.value_id
    assert finer.sizes["micro"] == 34 and finer.micro_zero == 17
    assert set(FIELDS) <= set(COLUMNS) and vocab.sizes["vel"] == 128  # velocity is exact, 1-127
    assert vocab.durations[0] == 1 and vocab.durations[47] == 48  # every grid step up to 4 quarters
    with pytest.raises(AssertionError):
        NoteVocab(replace(TokenizerSpec(), micro_bins=16))  # even: "on the grid" would not be a bin


def test_saved_vocabulary_round_trips_and_a_changed_one_is_refused(vocab: NoteVocab, tmp_path: Path) -> None:
    path = vocab.save(tmp_path)
    assert NoteVocab.from_file(path).same_as(vocab)
    text = path.read_text().replace("Style_pop", "Style_pap")
    path.write_text(text)
    with pytest.raises(VocabError, match="differ"):
        NoteVocab.from_file(path)
    path.write_text("{}")
    with pytest.raises(VocabError, match="not a Harmonixr tokenizer"):
        NoteVocab.from_file(path)


def _notes(score) -> list[tuple[int, int, int, int, int]]:  # noqa: ANN001
    return sorted((k, n.time, n.pitch, n.velocity, n.duration) for k, t in enumerate(score.tracks) for n in t.notes)


@pytest.mark.parametrize("real_file", real_piece_params(), indirect=True)
def test_rows_decode_to_the_normalized_piece(real_file: Path, vocab: NoteVocab, limits) -> None:
    """Pitch, velocity and track exact; onsets within half a micro-timing bin (1/32 of a grid
    step); durations within half a duration bin; the meters and tempos of the file."""
    normalized, _ = normalize(load_midi(real_file, limits), vocab, str(real_file))
    notes, tracks, timeline = encode_score(normalized, vocab)
    decoded = decode_notes(notes, tracks, timeline, vocab)
    before, after = _notes(normalized), _notes(decoded)
    step = normalized.ticks_per_quarter / vocab.grid
    # a second note in the same grid cell, track and pitch cannot be written (rare: a drummer's flam)
    assert len(after) >= 0.97 * len(before)
    decoded_at: dict[tuple[int, int, int], list[int]] = {}
    for k, t, p, v, _ in after:
        decoded_at.setdefault((k, p, v), []).append(t)
    exact = 0
    for k, t, p, v, _ in before:
        times = np.asarray(decoded_at.get((k, p, v), [1 << 40]))
        exact += int(np.abs(times - t).min() <= step / 32 + 1)
    assert exact >= 0.97 * len(before)
    assert [(ts.numerator, ts.denominator) for ts in decoded.time_signatures] == \
        [m for i, m in enumerate(timeline.meters) if i == 0 or timeline.meters[i - 1] != m]
    names = [t.name for t in normalized.tracks if not t.is_drum] + [t.name for t in normalized.tracks if t.is_drum]
    assert [t.name for t in decoded.tracks] == [name or t.name for name, t in zip(names, decoded.tracks)]


@pytest.mark.parametrize("real_file", real_piece_params(), indirect=True)
def test_quantized_sources_sit_on_the_grid_and_performed_ones_keep_their_timing(real_file: Path, vocab: NoteVocab,
                                                                              limits) -> None:
    normalized, _ = normalize(load_midi(real_file, limits), vocab, str(real_file))
    notes, _, _ = encode_score(normalized, vocab)
    off_grid = float(np.mean(notes[:, MICRO] != 0))
    if "giantmidi" in str(real_file) or "groove" in str(real_file):
        assert off_grid > 0.5  # performed: most onsets are off the grid, and the rows say by how much
    elif "pop909" not in str(real_file) and "freedoom" not in str(real_file):
        assert off_grid < 0.1  # written music: only tuplets finer than the grid (and grace notes) are off it


_note = st.tuples(st.integers(0, 4 * 480 * 8), st.integers(0, 3 * 480), st.integers(0, 127), st.integers(1, 127))
_track = st.tuples(st.sampled_from([0, 0, 24, 40, 73]), st.booleans(), st.lists(_note, min_size=1, max_size=40))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tracks=st.lists(_track, min_size=1, max_size=5), tpq=st.sampled_from([96, 120, 384, 480, 960]),
       ts=st.sampled_from([(4, 4), (3, 4), (6, 8), (2, 2), (5, 4), (7, 8)]), bpm=st.floats(30, 300))
@example(tracks=[(0, False, [(196, 0, 14, 1), (197, 0, 2, 2)])], tpq=96, ts=(4, 4), bpm=30.0)  # one cell, one pitch
def test_random_scores_round_trip(tracks, tpq, ts, bpm, vocab: NoteVocab) -> None:
    """Property: whatever the notes, their rows are sorted, unique, in range, and decode to the
    same (track, pitch, velocity) notes at the same onsets (to a tick)."""
    score = make_score(tracks, tpq=tpq, bpm=bpm, ts=ts)
    try:
        normalized, _ = normalize(score, vocab)
    except Exception as exc:  # only "nothing left" is an acceptable refusal
        assert "no notes" in str(exc)
        return
    notes, tracks_, timeline = encode_score(normalized, vocab)
    assert np.array_equal(sort_notes(notes), notes)
    assert notes[:, POS].min() >= 0 and (notes[:, POS] < timeline.positions(vocab)[notes[:, BAR]]).all()
    decoded = decode_notes(notes, tracks_, timeline, vocab)
    kept = {(k, p, v, round(t * vocab.grid / tpq)) for k, t, p, v, _ in _notes(decoded)}
    pitched = {(k, p, round(t * vocab.grid / tpq)) for k, t, p, _, _ in _notes(decoded)}
    original = _notes(normalized)
    bar, pos, _ = timeline.locate(np.array([t for _, t, *_ in original], dtype=np.int64), vocab)
    cells = [(k, p, b, q) for (k, _, p, _, _), b, q in zip(original, bar.tolist(), pos.tolist())]
    for (k, t, p, v, _), cell in zip(original, cells):
        near = [round(t * vocab.grid / tpq) + o for o in (0, -1, 1)]
        if cells.count(cell) == 1:
            assert any((k, p, v, at) in kept for at in near)
        else:  # two notes of one pitch in one grid cell of a track: one is kept (sort_notes)
            assert any((k, p, at) in pitched for at in near)


@settings(max_examples=80, deadline=None)
@given(ticks=st.lists(st.integers(0, 200_000), min_size=1, max_size=50), tpq=st.sampled_from([96, 480, 960]),
       ts=st.sampled_from([(4, 4), (3, 4), (6, 8), (7, 8), (2, 2)]))
def test_locate_and_ticks_are_inverse(ticks, tpq, ts, vocab: NoteVocab) -> None:
    score = make_score([(0, False, [(t, 10, 60, 80) for t in ticks])], tpq=tpq, ts=ts)
    timeline = timeline_of(score, vocab)
    bar, pos, micro = timeline.locate(np.array(ticks), vocab)
    back = timeline.ticks(bar, pos, micro, vocab)
    assert np.all(np.abs(back - np.array(ticks)) <= tpq / vocab.grid / 32 + 1)
