"""The Llama export: transformers loads the backbone and gives our hidden states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harmonixr.cli import main
from harmonixr.models.checkpoint import build_model, save_checkpoint
from harmonixr.models.config import ModelConfig
from harmonixr.tokens.vocab import COL, NOTE, NoteVocab

transformers = pytest.importorskip("transformers")


def test_exported_llama_gives_the_same_hidden_states(vocab: NoteVocab, tmp_path) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=48, n_layers=2, n_heads=4, ffn_hidden=96, head_hidden=48, max_len=128)
    model = build_model(cfg, vocab).eval()
    for p in model.parameters():  # break the symmetric init so that every weight matters
        p.data.add_(torch.randn_like(p) * 0.05)
    save_checkpoint(tmp_path / "ck", model, vocab, {})
    assert main(["export", str(tmp_path / "ck"), "--format", "hf", "--out", str(tmp_path / "hf")]) == 0
    llama = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "hf").eval()
    rng = np.random.default_rng(0)
    rows = np.stack([rng.integers(1, f.size, 100) for f in vocab.columns], axis=1)
    rows[:, COL["type"]] = NOTE
    rows = torch.from_numpy(rows)[None]
    with torch.no_grad():
        ours = model(rows)
        theirs = llama.model(inputs_embeds=model.embed(rows)).last_hidden_state
    assert (ours - theirs).abs().max().item() < 1e-4
    assert (tmp_path / "hf" / "harmonixr_heads.safetensors").is_file()
