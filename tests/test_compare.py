"""Bits per note: the accounting adds up, every model scores the same notes, the CLI writes tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harmonixr.cli import main
from harmonixr.data.corpus import Corpus
from harmonixr.evaluation.compare import build_eval_set, without_right_context
from harmonixr.models.checkpoint import build_model, save_checkpoint
from harmonixr.models.config import ModelConfig
from harmonixr.tokens.vocab import COL, COLUMNS, ECHO_COLUMNS, FIELDS, FUTURE, LAG_COLUMNS, NOTE


@pytest.fixture(scope="module")
def checkpoints(training_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    corpus = Corpus([training_corpus])
    folder = tmp_path_factory.mktemp("models")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        cfg = ModelConfig(d_model=32, n_layers=1, n_heads=2, ffn_hidden=64, head_hidden=32, max_len=256)
        paths.append(save_checkpoint(folder / f"m{seed}", build_model(cfg, corpus.vocab), corpus.vocab, {}))
    assert main(["ngram", "--data", str(training_corpus), "--examples", "200", "--order", "4",
                 "--out", str(folder / "ngram")]) == 0
    return [*paths, folder / "ngram"]


@pytest.mark.slow
def test_every_model_scores_the_same_notes_and_the_parts_add_up(training_corpus, checkpoints, tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    args = [str(p) for p in checkpoints] + ["--data", str(training_corpus), "--block-size", "256", "--out", str(out)]
    assert main(["compare", *args]) == 0
    printed = capsys.readouterr().out
    assert "next-note: bits per note" in printed and "infill: bits per note per source" in printed
    rows = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".csv").is_file()
    for task in ("next-note", "infill", "infill, left context only"):
        overall = [r for r in rows if r["task"] == task and r["source"] == "all"]
        assert len(overall) == 3, "one row per model"
        assert len({r["notes"] for r in overall}) == 1 and overall[0]["notes"] > 0, "all models score the same notes"
        for r in overall:
            assert r["bits_per_note"] == pytest.approx(sum(r[f] for f in FIELDS))
            assert r["comparable"] == pytest.approx(r["bits_per_note"] - r["micro"] - r["vel"] + r["velocity_32"])
            assert r["pitch"] > 0 and r["vel"] >= r["velocity_32"] > 0 and r["dur"] > 0


def test_the_plain_set_covers_every_note_of_the_split(training_corpus) -> None:
    corpus = Corpus([training_corpus])
    evalset = build_eval_set(corpus, "test", 1024, holes_per_piece=2)
    notes = sum(int((e.rows[e.target, COL["type"]] == NOTE).sum()) for e in evalset.plain)
    assert evalset.pieces == 2 and notes == sum(r["notes"] for _, r in corpus.rows("test"))
    assert all(e.fill_start > 0 for e in evalset.infill) and len(evalset.infill) <= 4
    later = [COL[column] for column in LAG_COLUMNS if column.startswith("echo+")]
    heard = 0
    for example in evalset.infill:  # the left-only view drops the music after the hole's start, nothing else
        left = without_right_context(example, corpus.vocab)
        future = (example.rows[:, COL["segment"]] == FUTURE) & (example.rows[:, COL["type"]] == NOTE)
        assert len(left.rows) == len(example.rows) - future.sum()
        fields = [k for k in range(len(COLUMNS)) if COLUMNS[k] not in ECHO_COLUMNS]
        assert (left.rows[left.fill_start:, fields] == example.rows[example.fill_start:, fields]).all()
        heard += int((example.rows[example.fill_start:, later] > 0).sum())
        assert not (left.rows[:, later] > 0).any(), "no echo of the music after the hole is left"
    assert heard > 0, "the fills heard the music after the hole through their echoes"
