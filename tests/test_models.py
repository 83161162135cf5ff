"""The models: causality, padding, Llama layout, the n-gram's probabilities, checkpoints."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from harmonixr.data.events import Vocab
from harmonixr.models.baselines import EncoderDecoder, build_model, logits_and_targets
from harmonixr.models.config import ModelConfig
from harmonixr.models.ngram import NGramModel
from harmonixr.models.structure import Structure
from harmonixr.training.batches import collate
from harmonixr.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from harmonixr.training.examples import Example


@pytest.fixture(scope="module")
def structure(tokenizer) -> Structure:
    return Structure(Vocab(tokenizer))


def tiny(kind: str, tokenizer, **changes) -> ModelConfig:
    base = dict(kind=kind, vocab_size=len(tokenizer), d_model=32, n_layers=2, n_heads=4, ffn_hidden=64,
                max_len=128, dropout=0.0, encoder_layers=1)
    return ModelConfig(**{**base, **changes})


def example(ids: list[int], split: int) -> Example:
    mask = np.arange(len(ids)) > split
    return Example(np.asarray(ids), mask, 0, "plain", split)


def random_ids(tokenizer, n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [tokenizer.bos_id, *rng.integers(4, len(tokenizer), n - 1).tolist()]


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_decoder_only_models_are_causal(kind, tokenizer, structure) -> None:
    torch.manual_seed(0)
    model = build_model(tiny(kind, tokenizer), structure.sizes).eval()
    ids = torch.tensor([random_ids(tokenizer, 40, 1)])
    feats = torch.from_numpy(structure.features(ids[0].tolist()))[None]
    changed, changed_feats = ids.clone(), feats.clone()
    changed[0, 30:] = 5
    changed_feats[0, 30:] = 1
    a, b = model(ids, feats), model(changed, changed_feats)
    torch.testing.assert_close(a[:, :30], b[:, :30])
    assert not torch.allclose(a[:, 30:], b[:, 30:])


def test_encoder_decoder_ignores_padding_and_sees_the_whole_context(tokenizer, structure) -> None:
    torch.manual_seed(0)
    model = build_model(tiny("encdec", tokenizer), structure.sizes).eval()
    assert isinstance(model, EncoderDecoder)
    short, long = random_ids(tokenizer, 30, 2), random_ids(tokenizer, 60, 3)
    alone = collate([example(short, 20)], structure, ["x"], tokenizer.pad_id)
    batched = collate([example(short, 20), example(long, 45)], structure, ["x", "y"], tokenizer.pad_id)
    la, ta = logits_and_targets(model, alone)
    lb, tb = logits_and_targets(model, batched)
    n = int((ta[0] != -100).sum())
    torch.testing.assert_close(la[0, :n], lb[0, :n], atol=1e-5, rtol=1e-4)
    # a token early in the encoder's context changes the first decoded prediction (bidirectional)
    edited = list(short)
    edited[3] = 7
    le, _ = logits_and_targets(model, collate([example(edited, 20)], structure, ["x"], tokenizer.pad_id))
    assert not torch.allclose(la[0, 0], le[0, 0])


def test_transformer_has_the_llama_layout_and_tied_embeddings(tokenizer, structure) -> None:
    model = build_model(tiny("transformer", tokenizer), structure.sizes)
    names = {n for n, _ in model.named_parameters()}
    for expected in ("embed_tokens.weight", "layers.0.self_attn.q_proj.weight", "layers.0.mlp.gate_proj.weight",
                     "layers.0.input_layernorm.weight", "layers.1.post_attention_layernorm.weight", "norm.weight"):
        assert expected in names
    assert not any(n.endswith(".bias") for n in names), "the Llama layout has no biases"
    assert model.lm_head.weight is model.embed_tokens.weight
    untied = build_model(tiny("transformer", tokenizer, tie_embeddings=False), structure.sizes)
    assert untied.lm_head.weight is not untied.embed_tokens.weight


def test_ngram_is_a_probability_distribution_and_learns_patterns(tokenizer) -> None:
    pattern = [tokenizer.bos_id] + [10, 11, 12, 13] * 30
    model = NGramModel(len(tokenizer), order=4).fit([example(pattern, 0), example(random_ids(tokenizer, 200, 5), 0)])
    context = np.asarray([tokenizer.bos_id, 10, 11, 12, 0], dtype=np.int64)
    probs = []
    for w in range(len(tokenizer)):
        context[-1] = w
        probs.append(model.prob(context, np.array([4]))[0])
    assert sum(probs) == pytest.approx(1.0, abs=1e-9)
    assert int(np.argmax(probs)) == 13 and max(probs) > 0.9


def test_ngram_save_and_load(tokenizer, tmp_path) -> None:
    ex = example(random_ids(tokenizer, 300, 6), 0)
    model = NGramModel(len(tokenizer), order=3).fit([ex])
    loaded = NGramModel.load(model.save(tmp_path / "ng"))
    np.testing.assert_array_equal(model.nll(ex)[1], loaded.nll(ex)[1])


@pytest.mark.parametrize("kind", ["transformer", "lstm", "encdec"])
def test_checkpoint_round_trip_gives_identical_logits(kind, tokenizer, structure, tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model(tiny(kind, tokenizer), structure.sizes).eval()
    batch = collate([example(random_ids(tokenizer, 50, 4), 10)], structure, ["x"], tokenizer.pad_id)
    save_checkpoint(tmp_path / "ck", model, tokenizer, {"feature_sizes": structure.sizes})
    loaded = load_checkpoint(tmp_path / "ck")
    torch.testing.assert_close(logits_and_targets(model, batch)[0], logits_and_targets(loaded.model, batch)[0])
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]


def test_an_interrupted_swap_falls_back_to_the_old_checkpoint(tokenizer, structure, tmp_path) -> None:
    model = build_model(tiny("transformer", tokenizer), structure.sizes)
    save_checkpoint(tmp_path / "latest", model, tokenizer, {"feature_sizes": structure.sizes})
    (tmp_path / "latest").rename(tmp_path / "latest.old")  # killed between the two renames
    assert load_checkpoint(tmp_path / "latest").model_config.kind == "transformer"


def test_a_pickle_named_like_a_checkpoint_is_refused(tokenizer, structure, tmp_path) -> None:
    model = build_model(tiny("transformer", tokenizer), structure.sizes)
    folder = save_checkpoint(tmp_path / "ck", model, tokenizer, {"feature_sizes": structure.sizes})

    class Bomb:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    (folder / "model.safetensors").write_bytes(pickle.dumps({"weights": Bomb()}))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(folder)
