"""The shipped model (models/harmonixr-small): it loads without pickle, knows real music, and its
grammar-masked samples decode to MIDI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from harmonixr.data.events import Vocab
from harmonixr.data.quantize import normalize
from harmonixr.data.validate import load_midi
from harmonixr.evaluation.likelihood import Scorer
from harmonixr.models.structure import Structure
from harmonixr.sampling.grammar import Grammar, GrammarConstraint
from harmonixr.sampling.sampler import Sampler, SamplingConfig
from harmonixr.training.batches import scoring_windows
from harmonixr.training.checkpoint import load_checkpoint
from harmonixr.training.config import ObjectiveConfig
from harmonixr.training.examples import ExampleMaker

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "harmonixr-small"


@pytest.fixture(scope="module")
def shipped():
    loaded = load_checkpoint(SHIPPED)
    vocab = Vocab(loaded.tokenizer)
    return loaded, vocab, Structure(vocab)


def test_it_is_the_documented_model(shipped) -> None:
    loaded, _, _ = shipped
    assert loaded.model_config.kind == "transformer" and loaded.meta["step"] > 0
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 30 * 2**20
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= {p.name for p in SHIPPED.iterdir()}


def test_it_predicts_a_real_chorale_far_better_than_chance(shipped, music21_midi, limits) -> None:
    loaded, vocab, structure = shipped
    path = music21_midi["bach/bwv66.6"]
    score, _ = normalize(load_midi(path, limits), loaded.tokenizer, str(path))
    ids = loaded.tokenizer.encode(score, "chorale")
    windows = list(scoring_windows(ExampleMaker(vocab, 512, ObjectiveConfig()), ids))
    tally = Scorer(vocab, structure).score(loaded.model, windows, ["chorale"] * len(windows))["all"]
    bits_per_token = sum(tally.bits.values()) / tally.tokens
    assert bits_per_token < 0.4 * math.log2(len(loaded.tokenizer)), bits_per_token


def test_masked_samples_decode_in_two_styles(shipped) -> None:
    loaded, vocab, structure = shipped
    tok, v = loaded.tokenizer, loaded.tokenizer.vocab
    torch.manual_seed(0)
    sampler = Sampler(loaded.model, structure)
    for style, tracks in (("pop", [0, 0, 0]), ("chorale", [52, 52, 52, 52])):
        prompt = [tok.bos_id, v[f"Style_{style}"], *(v[f"Instrument_{p}"] for p in tracks)]
        outs = sampler.generate(prompt, 2, SamplingConfig(max_tokens=160, top_p=0.95), seed=0,
                                stop_ids=[tok.eos_id], constraint=GrammarConstraint(Grammar(vocab, tracks), 2))
        for out in outs:
            score = tok.decode(prompt + out)
            assert score.note_num() >= 10
            notes = [n for t in score.tracks for n in t.notes]
            assert all(21 <= n.pitch <= 108 and n.velocity > 0 and n.duration > 0 for n in notes)
