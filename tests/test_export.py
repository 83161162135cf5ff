"""The Llama export: transformers loads it and gives our logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harmonixr.cli import main
from harmonixr.data.events import Vocab
from harmonixr.models.config import ModelConfig
from harmonixr.models.structure import Structure
from harmonixr.models.transformer import MusicTransformer
from harmonixr.training.checkpoint import save_checkpoint

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("features", [("type", "phase", "beat", "bar", "track"), ()])
def test_exported_llama_gives_the_same_logits(features, tokenizer, tmp_path) -> None:
    structure = Structure(Vocab(tokenizer))
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=len(tokenizer), d_model=48, n_layers=2, n_heads=4, ffn_hidden=96,
                      max_len=128, dropout=0.0, features=features)
    model = MusicTransformer(cfg, structure.sizes).eval()
    for p in model.parameters():  # break the symmetric init so that every weight matters
        p.data.add_(torch.randn_like(p) * 0.05)
    save_checkpoint(tmp_path / "ck", model, tokenizer, {"feature_sizes": structure.sizes})
    assert main(["export", str(tmp_path / "ck"), "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    llama = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "hf").eval()
    rng = np.random.default_rng(0)
    ids = [tokenizer.bos_id, *rng.integers(4, len(tokenizer), 99).tolist()]
    idx = torch.tensor([ids])
    feats = torch.from_numpy(structure.features(ids))[None]
    with torch.no_grad():
        ours = model(idx, feats)
        theirs = llama(inputs_embeds=model.embed(idx, feats)).logits if features else llama(input_ids=idx).logits
    assert (ours - theirs).abs().max().item() < 1e-4
