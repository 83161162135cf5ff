"""The model: causality, the Llama layout, chained heads, the n-gram's probabilities, checkpoints."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from harmonixr.models.checkpoint import CheckpointError, build_model, load_checkpoint, save_checkpoint
from harmonixr.models.config import ModelConfig
from harmonixr.models.ngram import NGramModel, flatten
from harmonixr.models.transformer import field_nll, rotary_tables
from harmonixr.tokens.prompt import Rows
from harmonixr.tokens.vocab import COL, COLUMNS, FIELDS, NOTE, NoteVocab


def tiny(**changes) -> ModelConfig:
    return ModelConfig(**{**dict(d_model=32, n_layers=2, n_heads=2, ffn_hidden=64, head_hidden=32, max_len=128), **changes})


def random_rows(vocab: NoteVocab, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.stack([rng.integers(1, f.size, n) for f in vocab.columns], axis=1)
    rows[:, COL["type"]] = NOTE
    return rows


def test_the_backbone_is_causal(vocab: NoteVocab) -> None:
    torch.manual_seed(0)
    model = build_model(tiny(), vocab).eval()
    rows = torch.from_numpy(random_rows(vocab, 40, 1))[None]
    changed = rows.clone()
    changed[0, 30:, COL["pitch"]] = 5
    a, b = model(rows), model(changed)
    torch.testing.assert_close(a[:, :30], b[:, :30])
    assert not torch.allclose(a[:, 30:], b[:, 30:])


def test_each_field_head_sees_the_fields_chosen_before_it_and_no_later_one(vocab: NoteVocab) -> None:
    torch.manual_seed(0)
    model = build_model(tiny(), vocab).eval()
    for p in model.parameters():  # break the symmetric init so that every weight matters
        p.data.add_(torch.randn_like(p) * 0.05)
    rows = torch.from_numpy(random_rows(vocab, 12, 2))[None]
    h = model(rows[:, :-1])
    base = model.heads(h, model.embed, rows[:, 1:])
    for k, name in enumerate(FIELDS):
        changed = rows.clone()
        changed[0, 1:, COL[name]] = (changed[0, 1:, COL[name]] % 5) + 1
        after = model.heads(h, model.embed, changed[:, 1:])
        for j in range(len(FIELDS)):
            same = torch.allclose(base[j], after[j])
            assert same == (j <= k), f"head {FIELDS[j]} after changing {name}"


PREFILL_IN_A_FRESH_PROCESS = """
import sys, numpy as np, torch
from harmonixr.models.checkpoint import load_checkpoint
from harmonixr.sampling.decoder import prefill
torch.set_num_threads(2)
model = load_checkpoint(sys.argv[1]).model
rows = np.load(sys.argv[2])
sys.stdout.write(prefill(model, rows, model.cfg.max_len, torch.bfloat16)[1].tobytes().hex())
"""


def test_the_position_tables_are_the_float64_ones_rounded_once() -> None:
    """No multi-threaded float32 ``cos`` in them: in about 1 process in 16 on 2 threads it rounded
    other last bits, and the same seed gave other notes."""
    cos, sin = rotary_tables(64, 1024, 10000.0)
    angles = np.arange(1024)[:, None] / 10000.0 ** (np.arange(0, 64, 2) / 64)
    assert np.array_equal(cos.numpy(), np.cos(np.concatenate([angles, angles], 1)).astype(np.float32))
    assert np.array_equal(sin.numpy(), np.sin(np.concatenate([angles, angles], 1)).astype(np.float32))


def test_fresh_processes_prefill_a_prompt_to_the_same_bits(vocab: NoteVocab, tmp_path) -> None:
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ckpt", build_model(tiny(max_len=512), vocab), vocab, {})
    np.save(tmp_path / "rows.npy", random_rows(vocab, 300, 2))
    runs = {subprocess.run([sys.executable, "-c", PREFILL_IN_A_FRESH_PROCESS, str(tmp_path / "ckpt"),
                            str(tmp_path / "rows.npy")], capture_output=True, text=True, check=True, timeout=120).stdout
            for _ in range(3)}
    assert len(runs) == 1 and len(runs.pop()) > 0


def test_the_model_has_the_llama_layout(vocab: NoteVocab) -> None:
    model = build_model(tiny(), vocab)
    names = {n for n, _ in model.named_parameters()}
    for expected in ("layers.0.self_attn.q_proj.weight", "layers.0.mlp.gate_proj.weight", "layers.0.input_layernorm.weight",
                     "layers.1.post_attention_layernorm.weight", "norm.weight", "embed.table.weight"):
        assert expected in names
    assert not any(n.endswith(".bias") for n in names), "the Llama layout has no biases"
    assert model.cfg.parameters() == sum(p.numel() for p in model.parameters())


def test_field_nll_counts_the_fields_a_row_has(vocab: NoteVocab) -> None:
    model = build_model(tiny(), vocab).eval()
    rows = random_rows(vocab, 10, 3)
    rows[-1, 1:] = 0
    rows[-1, COL["type"]] = 2  # EOS: a type and nothing else
    target = np.ones(10, dtype=bool)
    target[0] = False
    nll, mask = field_nll(model, torch.from_numpy(rows)[None], torch.from_numpy(target)[None])
    assert nll.shape == (9, len(FIELDS)) and mask[:-1].all() and mask[-1].tolist() == [True] + [False] * 7
    assert (nll[~mask] == 0).all() and (nll[mask] > 0).all()


def test_ngram_is_a_probability_distribution_and_learns_patterns(vocab: NoteVocab) -> None:
    pattern = np.tile(random_rows(vocab, 4, 4), (30, 1))
    example = Rows(pattern, np.ones(len(pattern), dtype=bool))
    model = NGramModel(vocab, order=4)
    model.fit([flatten(example, model.offsets)])
    bits, is_note = model.field_bits(example)
    assert bits.shape == (len(pattern), len(FIELDS)) and is_note.all()
    assert bits[-20:].mean() < 0.2, "a repeated pattern becomes nearly certain"
    context = np.zeros(5, dtype=np.int64)
    total = sum(model.prob(np.r_[context[:-1], w], np.array([4]))[0] for w in range(model.vocab_size))
    assert total == pytest.approx(1.0, abs=1e-9)


def test_ngram_save_and_load(vocab: NoteVocab, tmp_path) -> None:
    example = Rows(random_rows(vocab, 60, 6), np.ones(60, dtype=bool))
    model = NGramModel(vocab, order=3)
    model.fit([flatten(example, model.offsets)])
    loaded = NGramModel.load(model.save(tmp_path / "ng"))
    np.testing.assert_array_equal(model.field_bits(example)[0], loaded.field_bits(example)[0])


def test_checkpoint_round_trip_gives_identical_outputs(vocab: NoteVocab, tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model(tiny(), vocab).eval()
    rows = torch.from_numpy(random_rows(vocab, 30, 7))[None]
    meta = {"train": {"lr": 1e-3, "folders": ["a", "b"]}, "program_parts": [[0, 46, 80, 3.78, 3, 0.365]],
            "drum_kits": [], "drum_grooves": [["rock", [[0, [[36, 0.5, 100, 0, 1.0], [42, 0.5, 80, 0, 0.0]]]]]]}
    save_checkpoint(tmp_path / "ck", model, vocab, meta)
    loaded = load_checkpoint(tmp_path / "ck")
    torch.testing.assert_close(model(rows), loaded.model(rows))
    assert {k: loaded.meta[k] for k in meta} == meta
    lines = (tmp_path / "ck" / "config.json").read_text().splitlines()
    assert '  ["rock", [[0, [[36, 0.5, 100, 0, 1.0], [42, 0.5, 80, 0, 0.0]]]]]' in lines, "a table's row on one line"
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert len(COLUMNS) == rows.shape[-1]


def test_an_interrupted_swap_falls_back_to_the_old_checkpoint(vocab: NoteVocab, tmp_path) -> None:
    model = build_model(tiny(), vocab)
    save_checkpoint(tmp_path / "latest", model, vocab, {})
    (tmp_path / "latest").rename(tmp_path / "latest.old")  # killed between the two renames
    assert load_checkpoint(tmp_path / "latest").model_config.d_model == 32


def test_a_pickle_named_like_a_checkpoint_is_refused(vocab: NoteVocab, tmp_path) -> None:
    folder = save_checkpoint(tmp_path / "ck", build_model(tiny(), vocab), vocab, {})

    class Bomb:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    (folder / "model.safetensors").write_bytes(pickle.dumps({"weights": Bomb()}))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(folder)


def test_an_old_token_level_checkpoint_is_refused_by_name(vocab: NoteVocab, tmp_path) -> None:
    folder = save_checkpoint(tmp_path / "ck", build_model(tiny(), vocab), vocab, {})
    config = (folder / "config.json").read_text().replace('"format": 2', '"format": 1')
    (folder / "config.json").write_text(config)
    with pytest.raises(CheckpointError, match="note-level"):
        load_checkpoint(folder)
