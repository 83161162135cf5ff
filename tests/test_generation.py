"""The generation modes with the shipped model, on real pieces: what is outside the region is the
original's exactly, what is inside is new and stays inside, constraints hold, seeds reproduce."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from symusic import Score

from harmonixr.cli import main
from harmonixr.data.events import NOTE
from harmonixr.generation.modes import Generator, MusicRules, PromptLog, control_tokens
from harmonixr.generation.piece import GenerationError, Piece, Region
from harmonixr.generation.postprocess import Key
from harmonixr.sampling.sampler import SamplingConfig

from conftest import MUSIC21_KEYS, POP909, POP909_FILES, assert_kept, notes_of

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "harmonixr-small"
SAMPLING = SamplingConfig(temperature=1.0, top_p=0.95)


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator(SHIPPED)


@pytest.mark.parametrize("key", MUSIC21_KEYS)
def test_infill_of_bars_keeps_the_rest_of_a_real_piece(key, gen, music21_midi, tmp_path) -> None:
    original = Score(str(music21_midi[key]))
    piece = gen.piece(original)
    first = max(1, piece.bars // 3)
    region = Region.parse(f"{first + 1}-{min(first + 2, piece.bars)}", gen.vocab.grid)
    results = gen.infill(piece, region, 2, SAMPLING, seed=0)
    assert len(results) == 2
    for result in results:
        new = assert_kept(original, result.score, result.start_tick, result.end_tick, set(range(len(original.tracks))))
        assert new == result.notes
        path = tmp_path / "out.mid"
        result.score.dump_midi(str(path))
        assert Score(str(path)).note_num() == result.score.note_num()  # a valid MIDI file


def test_infill_of_some_tracks_keeps_the_others_inside_the_hole(gen, music21_midi) -> None:
    original = Score(str(music21_midi["bach/bwv66.6"]))  # soprano, alto, tenor, bass
    piece = gen.piece(original, "chorale")
    results = gen.infill(piece, Region.parse("3-5", gen.vocab.grid, (1, 2)), 3, SAMPLING, seed=1)
    for result in results:
        assert result.tracks == (1, 2) and result.finished
        assert assert_kept(original, result.score, result.start_tick, result.end_tick, {1, 2}) == result.notes > 0
    assert len({tuple(notes_of(r.score.tracks[1])) for r in results}) > 1, "variations differ"


def test_a_beat_span_stays_inside_its_beats(gen, music21_midi) -> None:
    original = Score(str(music21_midi["bach/bwv66.6"]))
    piece = gen.piece(original, "chorale")
    region = Region.parse("3:2-4:3", gen.vocab.grid)  # bar 3 beat 2 up to bar 4 beat 3
    assert region.start == (2, gen.vocab.grid) and region.end == (3, 2 * gen.vocab.grid)
    for result in gen.infill(piece, region, 4, SAMPLING, seed=2):
        assert (result.start_tick, result.end_tick) == (piece.tick(2, 12), piece.tick(3, 24))
        assert assert_kept(original, result.score, result.start_tick, result.end_tick, {0, 1, 2, 3}) == result.notes


@pytest.mark.parametrize("layout", ["context", "spm"])
def test_infill_prompts_follow_the_model_layout(layout, gen, music21_midi) -> None:
    """The same hole in either layout: the same tokens around it, in the layout's order, and a fill
    that stays in the hole."""
    original = Score(str(music21_midi["bach/bwv66.6"]))
    laid_out = copy.copy(gen)
    laid_out.layout, laid_out.recorder = layout, PromptLog()
    piece = laid_out.piece(original, "chorale")
    region = Region.parse("5-5", gen.vocab.grid)  # one bar: one prompt (a longer hole of 4 voices comes in parts)
    result = laid_out.infill(piece, region, 1, SAMPLING, seed=0)[0]
    assert result.finished
    assert assert_kept(original, result.score, result.start_tick, result.end_tick, {0, 1, 2, 3}) == result.notes > 0
    ((prompt, bar0),) = laid_out.recorder.prompts
    body = prompt[len(piece.header):]
    v = gen.vocab
    if layout == "context":
        assert body[-1] == v.fill_id and body.count(v.hole_id) == 2
        return
    # the music from bar 5 on (hole marked), Infill_Fill, then the bars before: the fill follows bar 4
    assert body[0] == v.hole_id and body.count(v.hole_id) == 3 and body[-1] != v.fill_id
    fill_at = body.index(v.fill_id)
    assert body[fill_at + 1] == v.bar_id and body[fill_at + 1 :].count(v.bar_id) == region.start[0] - bar0 > 0


@pytest.mark.parametrize("name", POP909_FILES[:2])
def test_pop909_piano_refilled_under_kept_melody(name, gen) -> None:
    original = Score(str(POP909 / name))
    piece = gen.piece(original, "pop")
    results = gen.infill(piece, Region.parse("9-12", gen.vocab.grid, (2,)), 2, SAMPLING, seed=0)
    for result in results:
        assert assert_kept(original, result.score, result.start_tick, result.end_tick, {2}) == result.notes > 0


def test_continue_keeps_the_primer_and_writes_after_it(gen, music21_midi) -> None:
    original = Score(str(music21_midi["essenFolksong/altdeu10#2"]))
    piece = gen.piece(original, "folk-german")
    for result in gen.continue_(piece, bars=6, after_bar=3, n=2, sampling=SAMPLING, seed=0):
        assert result.finished and result.notes > 0
        assert assert_kept(original, result.score, result.start_tick, None, set(range(len(original.tracks)))) == result.notes
        assert result.start_tick == piece.tick(3)


def test_generate_obeys_its_constraints(gen) -> None:
    key = Key.parse("D minor")
    rules = MusicRules(pitch_range=(60, 84), scale=key.pitch_classes, max_polyphony=1)
    results = gen.generate([73], "folk-celtic", bars=8, tempo=100, time_signature=(6, 8), n=3,
                           sampling=SAMPLING, seed=0, rules=rules, controls=control_tokens(gen.tokenizer, 100))
    for result in results:
        score = result.score
        assert [(t.numerator, t.denominator) for t in score.time_signatures] == [(6, 8)]
        assert [round(t.qpm) for t in score.tempos] == [100] and score.tracks[0].program == 73
        notes = notes_of(score.tracks[0])
        assert notes and all(60 <= p <= 84 and p % 12 in key.pitch_classes for _, _, p, _ in notes)
        onsets = [t for t, *_ in notes]
        assert len(set(onsets)) == len(onsets), "one note at a time"
        assert max(onsets) < 8 * 3 * score.ticks_per_quarter, "8 bars of 6/8"


def test_add_track_writes_only_the_new_part_in_its_bars(gen, music21_midi) -> None:
    original = Score(str(music21_midi["essenFolksong/altdeu10#2"]))
    piece = gen.piece(original, "folk-german")
    result = gen.add_track(piece, 33, Region.parse("1-4", gen.vocab.grid), "Bass", n=1, sampling=SAMPLING, seed=0)[0]
    assert len(result.score.tracks) == len(original.tracks) + 1
    new = result.score.tracks[-1]
    assert (new.name, new.program) == ("Bass", 33) and len(new.notes) == result.notes > 0
    added = {len(original.tracks)}  # all its notes inside the region, the original tracks untouched
    assert assert_kept(original, result.score, result.start_tick, result.end_tick, added) == result.notes


def test_same_seed_same_midi_other_seed_other_music(gen, music21_midi, tmp_path) -> None:
    piece = gen.piece(Score(str(music21_midi["bach/bwv66.6"])), "chorale")
    region = Region.parse("2-3", gen.vocab.grid)
    a, b, c = (gen.infill(piece, region, 1, SAMPLING, seed)[0].score.dumps_midi() for seed in (5, 5, 6))
    assert a == b and a != c
    args = ["infill", str(music21_midi["bach/bwv66.6"]), "--bars", "2-3", "--seed", "5", "--style", "chorale"]
    assert main([*args, "--out", str(tmp_path / "x.mid")]) == 0
    assert main([*args, "--out", str(tmp_path / "y.mid")]) == 0
    assert (tmp_path / "x.mid").read_bytes() == (tmp_path / "y.mid").read_bytes()


def test_bad_requests_are_refused_with_a_reason(gen, music21_midi, tmp_path) -> None:
    piece = gen.piece(Score(str(music21_midi["bach/bwv66.6"])), "chorale")
    with pytest.raises(GenerationError, match="starts at bar"):
        gen.infill(piece, Region.parse(f"{piece.bars + 3}-{piece.bars + 4}", gen.vocab.grid))
    with pytest.raises(GenerationError, match="does not exist"):
        gen.infill(piece, Region.parse("1-2", gen.vocab.grid, (9,)))
    with pytest.raises(GenerationError, match="empty"):
        Region.parse("4-2", gen.vocab.grid)
    with pytest.raises(GenerationError, match="style"):
        Piece.empty(gen.vocab, [0], style="gabber")
    broken = tmp_path / "broken.mid"
    broken.write_bytes(Path(music21_midi["bach/bwv66.6"]).read_bytes()[:200])
    assert main(["infill", str(broken), "--bars", "1-2", "--out", str(tmp_path / "o.mid")]) == 2
    assert not (tmp_path / "o.mid").exists()


def test_refine_rewrites_unlikely_beats_and_keeps_the_piece(gen, music21_midi) -> None:
    from harmonixr.generation.refine import note_bits, refine

    original = Score(str(music21_midi["essenFolksong/altdeu10#2"]))
    piece = gen.piece(original, "folk-german")
    _, scores = note_bits(gen, piece)
    assert len(scores) == original.note_num() and all(s.bits > 0 for s in scores)
    result = refine(gen, piece, rounds=1, max_holes=3, candidates=3, seed=0)
    assert len(result.details["bits_per_note"]) == 2
    assert result.details["bits_per_note"][1] <= result.details["bits_per_note"][0] + 1.0
    assert len(result.score.tracks) == len(original.tracks)
    assert abs(result.score.note_num() - original.note_num()) <= 0.2 * original.note_num()


def test_lookahead_keeps_the_continuation_that_best_predicts_the_music_after(gen, music21_midi) -> None:
    from harmonixr.generation.refine import lookahead_infill, note_bits, window_start

    original = Score(str(music21_midi["bach/bwv66.6"]))
    piece = gen.piece(original, "chorale")
    result = lookahead_infill(gen, piece, 3, 2, candidates=3, sampling=SAMPLING, seed=0)
    assert assert_kept(original, result.score, result.start_tick, result.end_tick, set(range(len(original.tracks)))) \
        == result.notes > 0
    bits = result.details["bits_after"]
    assert len(bits) == 3 and all(b > 0 for b in bits) and len(set(bits)) > 1
    assert result.details["bars_after"] == (5, 9)  # the 4 bars after the hole fit beside it in one window
    filled = gen.piece(result.score, "chorale")
    kept = note_bits(gen, filled, min(window_start(gen, filled, 9), 3), windows=1)[1]
    assert sum(s.bits for s in kept if 5 <= s.event.bar < 9) == pytest.approx(min(bits), rel=1e-4)
    again = lookahead_infill(gen, piece, 3, 2, candidates=3, sampling=SAMPLING, seed=0)
    assert notes_of(again.score.tracks[0]) == notes_of(result.score.tracks[0])


def test_window_start_is_the_earliest_bar_whose_window_reaches_the_bar_asked(gen, music21_midi) -> None:
    from harmonixr.generation.refine import note_bits, window_start

    piece = gen.piece(Score(str(music21_midi["mozart/k155/movement2"])), "classical")  # longer than a window
    end = max(e.bar for e in piece.events if e.kind == NOTE) - 1  # a bar with notes after it
    start = window_start(gen, piece, end + 1)
    assert 0 < start < end
    reached = max(s.event.bar for s in note_bits(gen, piece, start, windows=1)[1])
    assert reached >= end  # from ``start`` one window holds every bar up to ``end``
    assert max(s.event.bar for s in note_bits(gen, piece, start - 1, windows=1)[1]) < end  # a bar earlier: not


def test_demo_writes_midi_png_and_wav(tmp_path) -> None:
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out)]) == 0
    mids = sorted(out.glob("*.mid"))
    assert len(mids) == 6
    for mid in mids:
        assert Score(str(mid)).note_num() > 0
        assert mid.with_suffix(".png").stat().st_size > 10_000
        wav = mid.with_suffix(".wav")
        import wave

        with wave.open(str(wav)) as w:
            frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        assert w.getnframes() > w.getframerate() and np.abs(frames).max() > 100, wav.name


def test_lengths_in_notes_and_a_primer_of_notes(gen, music21_midi) -> None:
    results = gen.generate([0], "folk-german", bars=32, n=2, sampling=SAMPLING, seed=3, notes=20)
    assert [r.notes for r in results] == [20, 20] and all(r.finished for r in results)
    original = Score(str(music21_midi["essenFolksong/altdeu10#2"]))
    piece = gen.piece(original, "folk-german")
    result = gen.continue_(piece, bars=4, after_notes=7, sampling=SAMPLING, seed=0)[0]
    kept = sorted(n.time for n in result.score.tracks[0].notes if n.time < result.start_tick)
    assert kept == sorted(n.time for n in original.tracks[0].notes)[:7]
    assert assert_kept(original, result.score, result.start_tick, None, {0}) == result.notes > 0


def test_untrusted_files_are_parsed_in_a_child_process(music21_midi) -> None:
    from dataclasses import replace

    from harmonixr.config import LimitsConfig
    from harmonixr.data.safe_load import load_score_isolated
    from harmonixr.data.validate import Reason, RejectError

    path = music21_midi["bach/bwv66.6"]
    assert load_score_isolated(path, LimitsConfig()).note_num() == Score(str(path)).note_num()
    for limits, reasons in ((replace(LimitsConfig(), parse_timeout_s=0.01), {Reason.TIMEOUT}),
                            (replace(LimitsConfig(), worker_memory_mb=16), {Reason.OUT_OF_MEMORY, Reason.CRASHED})):
        with pytest.raises(RejectError) as caught:
            load_score_isolated(path, limits)
        assert caught.value.reason in reasons and str(path) in str(caught.value)


def test_an_empty_track_of_the_file_is_filled_in_place(gen, music21_midi) -> None:
    from symusic import Track

    original = Score(str(music21_midi["bach/bwv66.6"]))
    original.tracks.append(Track("Descant", 73, False))  # a part the user left empty
    piece = gen.piece(original, "chorale")
    result = gen.infill(piece, Region.parse("1-4", gen.vocab.grid, (4,)), 1, SAMPLING, seed=0)[0]
    assert len(result.score.tracks) == 5 and result.score.tracks[4].name == "Descant"
    assert assert_kept(original, result.score, result.start_tick, result.end_tick, {4}) == result.notes > 0
    assert len(piece.original.tracks) == 5 and piece.original.tracks[4].note_num() == 0  # the piece is unchanged
