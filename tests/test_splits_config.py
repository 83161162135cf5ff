"""Splits by piece group, augmentation draws, and the typed YAML config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harmonixr.config import AugmentConfig, ConfigError, PrepareConfig, SplitConfig, load_yaml
from harmonixr.data.augment import apply_variant, draw_variants
from harmonixr.data.splits import assign_split, content_hash, tune_fingerprint
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


def test_variants_are_deterministic_and_keep_drums(tokenizer) -> None:
    score = make_score([(0, False, TUNE), (0, True, [(i * 480, 120, 36, 100) for i in range(8)])])
    config = AugmentConfig(copies=3)
    first = draw_variants(score, "piece-1", config, (21, 108))
    assert first == draw_variants(score, "piece-1", config, (21, 108)) != draw_variants(score, "piece-2", config, (21, 108))
    assert len(first) == 3 and all(v.transpose != 0 and -5 <= v.transpose <= 6 for v in first)
    shifted = apply_variant(score, first[0])
    assert [n.pitch for n in shifted.tracks[1].notes] == [36] * 8, "drums are never transposed"
    assert shifted.tempos[0].qpm == pytest.approx(120 * first[0].tempo_scale)
    high = make_score([(0, False, [(0, 480, 105, 80), (480, 480, 30, 80)] + TUNE)])
    assert all(-5 <= v.transpose <= 3 for v in draw_variants(high, "x", AugmentConfig(copies=8), (21, 108)))


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
    path.write_text("augment:\n  transpose: [-3, 3]\n  copies: 1\n")
    assert load_yaml(PrepareConfig, path).augment == AugmentConfig(copies=1, transpose=(-3, 3))
