"""Splits by piece group, training augmentation, and the typed YAML config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harmonixr.config import ConfigError, PrepareConfig, SplitConfig, load_yaml
from harmonixr.data.corpus import CorpusPiece
from harmonixr.data.splits import assign_split, content_hash, tune_fingerprint
from harmonixr.tokens.notes import PITCH, TRACK, Tracks
from harmonixr.tokens.prompt import Bars
from harmonixr.training.config import ObjectiveConfig
from harmonixr.training.examples import ExampleMaker
from tests.conftest import make_score

TUNE = [(i * 480, 480, p, 80) for i, p in enumerate([60, 62, 64, 65, 67, 65, 64, 62, 60, 67, 72, 71, 69, 67, 65, 64, 62, 60])]
ROOT = Path(__file__).resolve().parents[1]


def test_fingerprint_ignores_transposition_rhythm_and_repeated_notes() -> None:
    base = tune_fingerprint(make_score([(0, False, TUNE)]), SplitConfig())
    transposed = [(t, d, p + 5, v) for t, d, p, v in TUNE]
    rebarred = [(t * 2, d, p, v) for t, d, p, v in TUNE]
    repeated = [n for t, d, p, v in TUNE for n in ((t * 2, d, p, v), (t * 2 + 480, d, p, v))]
    harmonized = make_score([(52, False, TUNE), (52, False, [(t, d, p - 12, v) for t, d, p, v in TUNE])])
    assert base is not None
    for notes in (transposed, rebarred, repeated):
        assert tune_fingerprint(make_score([(0, False, notes)]), SplitConfig()) == base
    assert tune_fingerprint(harmonized, SplitConfig()) == base, "the highest line is the tune"
    other = [(t, d, 120 - p, v) for t, d, p, v in TUNE]
    assert tune_fingerprint(make_score([(0, False, other)]), SplitConfig()) != base
    assert tune_fingerprint(make_score([(0, False, TUNE[:5])]), SplitConfig()) is None, "too short"


def test_content_hash_sees_notes_not_resolution() -> None:
    a = make_score([(0, False, TUNE)], tpq=480)
    b = make_score([(0, False, [(t // 4, d // 4, p, v) for t, d, p, v in TUNE])], tpq=120)
    c = make_score([(0, False, TUNE[:-1])])
    assert content_hash(a) == content_hash(b) != content_hash(c)


@settings(max_examples=5, deadline=None)
@given(salt=st.text(min_size=1, max_size=8))
def test_split_fractions_match_the_config(salt: str) -> None:
    config = SplitConfig(salt=salt)
    splits = [assign_split(f"group-{i}", config) for i in range(20_000)]
    assert abs(splits.count("test") / len(splits) - 0.05) < 0.01
    assert abs(splits.count("val") / len(splits) - 0.05) < 0.01
    assert splits == [assign_split(f"group-{i}", config) for i in range(20_000)], "deterministic"


def test_augmentation_transposes_melody_only_within_range_and_is_seeded(vocab) -> None:
    notes = np.array([[b, 0, 0, t, p, 5, 80] for b in range(8) for t, p in ((0, 100 + b % 3), (vocab.drum_slot, 36))])
    piece = CorpusPiece(notes, Bars(np.full(8, 5), np.full(8, 17)), Tracks([0], ["Piano"], True), "pop", "x", "x", "train")
    maker = ExampleMaker(vocab, 256, ObjectiveConfig())
    shifts = set()
    for seed in range(40):
        out = maker.augmented(piece, np.random.default_rng(seed))
        assert (out.notes[out.notes[:, TRACK] == vocab.drum_slot, PITCH] == 36).all(), "drums are never transposed"
        shift = set((out.notes[out.notes[:, TRACK] == 0, PITCH] - notes[notes[:, TRACK] == 0, PITCH]).tolist())
        assert len(shift) == 1 and -5 <= shift.pop() <= 6
        shifts.add(int(out.notes[0, PITCH] - notes[0, PITCH]))
        assert out.notes[:, PITCH].max() <= vocab.spec.pitch_range[1]
    assert max(shifts) <= 6 and len(shifts) > 3
    a, b = maker.augmented(piece, np.random.default_rng(1)), maker.augmented(piece, np.random.default_rng(1))
    assert np.array_equal(a.notes, b.notes)


def test_shipped_yaml_is_the_default_config() -> None:
    assert load_yaml(PrepareConfig, ROOT / "configs" / "prepare.yaml") == PrepareConfig()


def test_bad_config_is_refused_with_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("limits:\n  max_notez: 3\n")
    with pytest.raises(ConfigError, match=r"max_notez"):
        load_yaml(PrepareConfig, path)
    path.write_text("workers: two\n")
    with pytest.raises(ConfigError, match=r"workers: expected int"):
        load_yaml(PrepareConfig, path)
    path.write_text("split:\n  test: 0.1\n")
    assert load_yaml(PrepareConfig, path).split == SplitConfig(test=0.1)
