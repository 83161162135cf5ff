"""The vocabulary: computed from config, invariants, header, slots, save/load."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from harmonixr.config import TokenizerSpec
from harmonixr.data.quantize import normalize
from harmonixr.data.tokenize import INFILL_TOKENS, HarmonixrTokenizer, TokenizeError
from tests.conftest import assert_same_notes, make_score

MELODY = [(i * 240, 240, 60 + (i % 12), 90) for i in range(32)]
BASS = [(i * 960, 960, 36 + (i % 5), 70) for i in range(8)]


def test_vocabulary_is_computed_from_the_spec() -> None:
    base = HarmonixrTokenizer(TokenizerSpec())
    more_styles = HarmonixrTokenizer(replace(TokenizerSpec(), styles=(*TokenizerSpec().styles, "jazz")))
    finer = HarmonixrTokenizer(replace(TokenizerSpec(), num_velocities=64))
    assert len(more_styles) == len(base) + 1 and "Style_jazz" in more_styles.vocab
    assert len(finer) == len(base) + 32
    assert base.pad_id == 0 and len(base) < 2**16
    assert all(token in base.vocab for token in INFILL_TOKENS)
    assert {base.token_type(i) for i in range(len(base))} >= {
        "Pitch", "Velocity", "Duration", "Position", "Bar", "Tempo", "TimeSig", "Program", "Style",
        "CtlTempo", "CtlDensity", "CtlLow", "CtlHigh", "CtlLoud", "Instrument", "Infill"}


def test_header_then_body(tokenizer: HarmonixrTokenizer) -> None:
    score, _ = normalize(make_score([(33, False, BASS), (0, False, MELODY), (0, True, MELODY[:8])]), tokenizer)
    tokens = [tokenizer.id_to_token[i] for i in tokenizer.encode(score, "Folk German")]
    assert tokens[:2] == ["BOS_None", "Style_folk-german"]
    assert [t.split("_")[0] for t in tokens[2:7]] == ["CtlTempo", "CtlDensity", "CtlLow", "CtlHigh", "CtlLoud"]
    assert tokens[7:10] == ["Instrument_33", "Instrument_0", "Instrument_Drums"]
    assert tokens[10] == "Bar_None" and tokens[-1] == "EOS_None"


def test_same_program_tracks_stay_separate(tokenizer: HarmonixrTokenizer) -> None:
    score, _ = normalize(make_score([(0, False, MELODY), (0, False, BASS), (0, False, MELODY[::2])]), tokenizer)
    decoded = tokenizer.decode(tokenizer.encode(score))
    assert len(decoded.tracks) == 3
    assert_same_notes(score, decoded)


def test_controls_follow_the_music(tokenizer: HarmonixrTokenizer) -> None:
    soft = make_score([(0, False, [(t, d, p, 30) for t, d, p, _ in MELODY])], bpm=70)
    loud = make_score([(0, False, [(t, d, p + 24, 120) for t, d, p, _ in MELODY])], bpm=170)
    c_soft = tokenizer.controls(normalize(soft, tokenizer)[0], bars=8)
    c_loud = tokenizer.controls(normalize(loud, tokenizer)[0], bars=8)
    assert c_loud.loudness > c_soft.loudness and c_loud.tempo > c_soft.tempo
    assert c_loud.high_octave == c_soft.high_octave + 2 and c_loud.density == c_soft.density


def test_unknown_style_and_empty_body_are_refused(tokenizer: HarmonixrTokenizer) -> None:
    score, _ = normalize(make_score([(0, False, MELODY)]), tokenizer)
    with pytest.raises(TokenizeError, match="not in the vocabulary"):
        tokenizer.encode(score, "dubstep")
    with pytest.raises(TokenizeError, match="no body"):
        tokenizer.decode([tokenizer.bos_id, tokenizer.vocab["Style_pop"], tokenizer.eos_id])


def test_save_and_load_give_the_same_vocabulary(tmp_path, tokenizer: HarmonixrTokenizer) -> None:
    path = tokenizer.save(tmp_path)
    loaded = HarmonixrTokenizer.from_file(tmp_path)
    assert path.name == "tokenizer.json" and loaded.vocab == tokenizer.vocab and loaded.spec == tokenizer.spec
    tampered = json.loads(path.read_text())
    tampered["vocab"]["Pitch_60"], tampered["vocab"]["Pitch_61"] = tampered["vocab"]["Pitch_61"], tampered["vocab"]["Pitch_60"]
    path.write_text(json.dumps(tampered))
    with pytest.raises(TokenizeError, match="saved vocabulary differs"):
        HarmonixrTokenizer.from_file(tmp_path)
    (tmp_path / "bad.json").write_text('{"config": {}}')
    with pytest.raises(TokenizeError, match="not a Harmonixr tokenizer"):
        HarmonixrTokenizer.from_file(tmp_path / "bad.json")


def test_ids_fit_uint16_shards(tokenizer: HarmonixrTokenizer) -> None:
    score, _ = normalize(make_score([(0, False, MELODY)]), tokenizer)
    ids = tokenizer.encode(score)
    assert ids.dtype == np.uint16 and int(ids.max()) < len(tokenizer)
