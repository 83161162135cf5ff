"""The shipped model: it loads without pickle, is the documented size, knows real music of every
source far better than chance, and writes valid pieces in several styles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harmonixr.data.corpus import CorpusPiece
from harmonixr.evaluation.likelihood import Scorer
from harmonixr.generation.modes import Generator
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.training.batches import scoring_windows
from harmonixr.training.config import ObjectiveConfig
from harmonixr.training.examples import ExampleMaker
from tests.conftest import SHARED

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "harmonixr-small"


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator(SHIPPED)


def test_it_is_the_documented_model(gen: Generator) -> None:
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 30 * 2**20
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= {p.name for p in SHIPPED.iterdir()}
    assert gen.max_len >= 1024, "a context of at least 1,024 notes"


def _bits_per_note(gen: Generator, path: Path, style: str) -> float:
    piece = gen.piece(path, style)
    corpus_piece = CorpusPiece(piece.notes, piece.bars_meta(), piece.tracks, style, "", str(path), "test")
    windows = list(scoring_windows(ExampleMaker(gen.vocab, gen.max_len, ObjectiveConfig()), corpus_piece))
    return Scorer(gen.vocab).score(gen.model, windows, ["x"] * len(windows))["all"].per_note()["bits_per_note"]


def test_it_predicts_a_real_chorale_far_better_than_chance(gen: Generator, music21_midi) -> None:  # noqa: ANN001
    chance = sum(np.log2(gen.vocab.sizes[f]) for f in ("dbar", "pos", "track", "pitch", "dur", "vel", "micro"))
    bits = _bits_per_note(gen, music21_midi["bach/bwv66.6"], "chorale")
    assert bits < 0.4 * chance, (bits, chance)


@pytest.mark.parametrize("name, style", [("groove/drummer1/session1/102_funk_95_beat_4-4.mid", "funk"),
                                         ("freedoom/d_dm01.mid", "game")])
def test_it_knows_drums_and_arrangements_shared(gen: Generator, name: str, style: str) -> None:
    chance = sum(np.log2(gen.vocab.sizes[f]) for f in ("dbar", "pos", "track", "pitch", "dur", "vel", "micro"))
    assert _bits_per_note(gen, SHARED / name, style) < 0.5 * chance


def test_new_pieces_decode_in_several_styles(gen: Generator) -> None:
    for style, programs in (("pop", [0, 33, -1]), ("chorale", [52, 52, 52, 52]), ("rock", [-1])):
        if style not in gen.vocab.styles:
            continue
        for result in gen.generate(programs, style, bars=4, tempo=100, n=2, sampling=SamplingConfig(top_p=0.95), seed=0):
            notes = [n for t in result.score.tracks for n in t.notes]
            assert len(notes) >= 8 and all(0 <= n.pitch <= 127 and 1 <= n.velocity <= 127 and n.duration > 0 for n in notes)
