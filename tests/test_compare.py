"""Bits per note: the accounting adds up, every model scores the same notes, the CLI writes tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harmonixr.cli import main
from harmonixr.evaluation.compare import build_eval_set
from harmonixr.evaluation.likelihood import GROUPS
from harmonixr.models.baselines import build_model
from harmonixr.models.config import ModelConfig
from harmonixr.training.batches import Corpus
from harmonixr.training.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def checkpoints(training_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    corpus = Corpus([training_corpus])
    folder = tmp_path_factory.mktemp("models")
    paths = []
    for kind in ("transformer", "lstm", "encdec"):
        torch.manual_seed(0)
        cfg = ModelConfig(kind=kind, vocab_size=len(corpus.tokenizer), d_model=32, n_layers=1, n_heads=4,
                          ffn_hidden=64, max_len=128, encoder_layers=1)
        model = build_model(cfg, corpus.structure.sizes)
        paths.append(save_checkpoint(folder / kind, model, corpus.tokenizer, {"feature_sizes": corpus.structure.sizes}))
    # the transformer again, as if trained in the "spm" infill layout: it scores the holes laid out so
    paths.append(save_checkpoint(folder / "spm", load_checkpoint(paths[0]).model, corpus.tokenizer,
                                 {"feature_sizes": corpus.structure.sizes, "infill_layout": "spm"}))
    assert main(["ngram", "--data", str(training_corpus), "--examples", "200", "--order", "4",
                 "--out", str(folder / "ngram")]) == 0
    return [*paths, folder / "ngram"]


def test_every_model_scores_the_same_notes_and_the_parts_add_up(training_corpus, checkpoints, tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    args = [str(p) for p in checkpoints] + ["--data", str(training_corpus), "--block-size", "128", "--out", str(out)]
    assert main(["compare", *args]) == 0
    printed = capsys.readouterr().out
    assert "next-token: bits per note" in printed and "infill: bits per note per style" in printed
    rows = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".csv").is_file()
    for task in ("next-token", "infill"):
        overall = [r for r in rows if r["task"] == task and r["style"] == "all"]
        assert len(overall) == 5, "one row per model"
        assert len({r["notes"] for r in overall}) == 1, "all models score the same notes, in either layout"
        assert overall[0]["notes"] > 0
        for r in overall:
            assert r["bits_per_note"] == pytest.approx(sum(r[g] for g in GROUPS))
            assert r["pitch"] > 0 and r["velocity"] > 0 and r["duration"] > 0
    same_weights = [r for r in rows if r["path"] in (str(checkpoints[0]), str(checkpoints[3])) and r["style"] == "all"]
    plain = [r["bits_per_note"] for r in same_weights if r["task"] == "next-token"]
    infill = [r["bits_per_note"] for r in same_weights if r["task"] == "infill"]
    assert plain[0] == pytest.approx(plain[1]) and infill[0] != pytest.approx(infill[1]), "only the holes' layout differs"


def test_the_plain_set_covers_every_note_of_the_split(training_corpus) -> None:
    corpus = Corpus([training_corpus])
    evalset = build_eval_set(corpus, "test", 512, holes_per_piece=2)  # every bar fits 512 tokens
    notes = sum(int(corpus.vocab.is_pitch[e.ids[e.target_mask]].sum()) for e in evalset.plain)
    expected = sum(int(corpus.vocab.is_pitch[shards.tokens(r)].sum()) for shards, r in corpus.rows("test"))
    assert evalset.pieces == 2 and notes == expected
    assert all(e.fill_start > 0 for e in evalset.infill) and len(evalset.infill) <= 4
