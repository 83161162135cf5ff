"""Text prompts: every word sets something, is a filler, or is reported; contradictions are refused."""

from __future__ import annotations

import pytest
from symusic import Note, Score, Track

from harmonixr.generation.postprocess import Key
from harmonixr.generation.text import PromptError, parse_prompt, prompt_key, set_track_loudness, track_controls

STYLES = ("unknown", "jazz", "rock", "pop", "folk-celtic", "folk-german", "piano-performance", "hiphop")


def test_the_issue_prompt_sets_style_tempo_mode_density_instruments_and_a_track_control() -> None:
    p = parse_prompt("sad slow jazz piano, sparse, loud drums", STYLES)
    assert (p.style, p.tempo, p.mode, p.density, p.loudness) == ("jazz", 76.0, "minor", 4.0, None)
    assert p.instruments == [0, -1] and p.per_instrument == {-1: {"loudness": 100.0}}
    assert p.unknown == []
    assert [w for w, _ in p.uses] == ["sad", "slow", "jazz", "piano", "sparse", "drums", "loud drums"]


@pytest.mark.parametrize(("text", "field", "value"), [
    ("very slow", "tempo", 60.0), ("fast", "tempo", 140.0), ("93 bpm", "tempo", 93.0),
    ("happy", "mode", "major"), ("in f# minor", "key", Key(6, "minor")), ("in eb major", "mode", "major"),
    ("very sparse", "density", 2.0), ("busy", "density", 16.0), ("very quiet", "loudness", 35.0),
    ("loud", "loudness", 100.0), ("celtic", "style", "folk-celtic"), ("folk", "style", "folk-celtic"),
    ("hiphop", "style", "hiphop"), ("chords am f c g", "chords", "Am F C G"),
    ("jazz over dm7-g7-cmaj7, loud", "chords", "Dm7 G7 Cmaj7"), ("bb7 jazz", "chords", None),
])
def test_each_word_sets_its_field(text: str, field: str, value: object) -> None:
    assert getattr(parse_prompt(text, STYLES), field) == value


def test_words_not_understood_are_reported_never_dropped() -> None:
    p = parse_prompt("a fast groovy tune with wobbly synth", STYLES)
    assert p.tempo == 140.0 and p.instruments == [81]
    assert p.unknown == ["groovy", "wobbly"]
    assert "not understood: 'groovy', 'wobbly'" in p.summary()


@pytest.mark.parametrize(("text", "message"), [
    ("slow and fast", "two values of tempo: 'slow' and 'fast'"),
    ("sad piece in c major", "two values of mode: 'sad' and 'in c major'"),
    ("quiet but loud", "two values of loudness"),
    ("loud quiet drums", "two values of loudness: 'loud drums' and 'quiet drums'"),
    ("jazz rock", "two values of style"),
    ("zzz qqq", "no word the rules know"),
    ("chords am f, chords c g", "two values of chords"),
])
def test_contradictions_and_empty_prompts_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        parse_prompt(text, STYLES)


def test_a_modifier_binds_to_the_instrument_after_it_and_a_comma_ends_it() -> None:
    bound = parse_prompt("quiet bass", STYLES)
    assert bound.loudness is None and bound.per_instrument == {33: {"loudness": 50.0}}
    piece_wide = parse_prompt("quiet, bass", STYLES)
    assert piece_wide.loudness == 50.0 and piece_wide.per_instrument == {}


def test_track_controls_go_to_the_instrument_family_and_density_is_split() -> None:
    p = parse_prompt("dense, loud drums, quiet electric guitar", STYLES)
    programs = [0, 29, -1, 33]  # piano, overdriven guitar (guitar family), drums, bass
    controls = track_controls(p, programs, playing=[0, 1, 2])
    assert controls[2].loudness == 100.0 and controls[1].loudness == 50.0
    assert controls[0].density == pytest.approx(16 / 3) and controls[2].density == pytest.approx(16 / 3)
    assert 3 not in controls  # the bass is silent around the region and nothing was asked of it
    assert set(track_controls(p, programs, [0, 1, 2], rewritten=[1])) == {1}  # a fill of the guitar alone


def test_a_mode_alone_keeps_the_piece_key_or_moves_to_its_relative() -> None:
    score = Score(480)
    track = Track("melody", 0)
    for k, pitch in enumerate([67, 71, 74, 67, 72, 76, 79, 74]):  # G major
        track.notes.append(Note(k * 480, 480, pitch, 80))
    score.tracks.append(track)
    assert prompt_key(parse_prompt("happy", STYLES), score) == Key(7, "major")
    assert prompt_key(parse_prompt("sad", STYLES), score) == Key(4, "minor")  # E minor, G major's relative
    assert prompt_key(parse_prompt("sad", STYLES)) == Key(9, "minor")
    loud = set_track_loudness(score, parse_prompt("very loud piano", STYLES))
    assert sum(n.velocity for n in loud.tracks[0].notes) / 8 == pytest.approx(115, abs=1)


def test_chord_symbols_run_to_the_first_word_that_is_not_one() -> None:
    p = parse_prompt("pop piano, chords Am F C G and drums", STYLES)
    assert p.chords == "Am F C G" and p.instruments == [0, -1] and p.unknown == []
    assert ("chords am f c g", "chords Am-F-C-G") in p.uses
    assert parse_prompt("jazz chords x y", STYLES).unknown == ["chords", "x", "y"]  # no symbol: no chords
