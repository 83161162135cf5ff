"""Export the backbone as a standard ``LlamaForCausalLM`` checkpoint (``transformers``), heads beside it.

The Transformer blocks and the final norm map one to one onto Llama's parameters. The row
embedding (one table, a row of each column summed) and the field heads have no Llama counterpart:
they are written beside the checkpoint (``harmonixr_heads.safetensors``), with the vocabulary and
the model config. Fed ``inputs_embeds`` = our row embedding, the exported model's last hidden
state equals our backbone's output (``tests/test_models.py``); our heads then write the notes.
The Llama embedding matrix is our row table (``input_ids`` name table rows, not notes) and its
LM head is tied to it, so nothing in the export is random.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from harmonixr.config import to_dict
from harmonixr.models.checkpoint import load_checkpoint
from harmonixr.models.transformer import NoteTransformer

HEADS_FILE = "harmonixr_heads.safetensors"
TOKENIZER_FILE = "harmonixr_tokenizer.json"  # not tokenizer.json, which transformers reads as its own


def llama_config(model: NoteTransformer):  # noqa: ANN201 - transformers.LlamaConfig
    from transformers import LlamaConfig

    cfg = model.cfg
    return LlamaConfig(
        vocab_size=model.embed.table.weight.shape[0], hidden_size=cfg.d_model, intermediate_size=cfg.ffn_hidden,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_heads,
        max_position_embeddings=cfg.max_len, rms_norm_eps=model.norm.eps,
        tie_word_embeddings=True, attention_bias=False, mlp_bias=False, hidden_act="silu",
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
        rope_theta=cfg.rope_theta,  # type: ignore[call-arg]  # 4.x's argument; 5.x files it under rope_parameters
    )


def llama_state_dict(model: NoteTransformer) -> dict:
    """Our backbone's parameters under Llama's names (the row table as the embedding matrix)."""
    out = {"model.embed_tokens.weight": model.embed.table.weight, "model.norm.weight": model.norm.weight}
    for name, tensor in model.layers.state_dict().items():
        out[f"model.layers.{name}"] = tensor
    return out


def export_hf(checkpoint: str | Path, out: str | Path) -> Path:
    """Write ``out`` (a ``save_pretrained`` folder plus our heads) from a checkpoint."""
    from transformers import LlamaForCausalLM

    loaded = load_checkpoint(checkpoint)
    model = loaded.model
    llama = LlamaForCausalLM(llama_config(model))
    missing, unexpected = llama.load_state_dict(llama_state_dict(model), strict=False)
    if unexpected or [m for m in missing if not m.startswith("lm_head.")]:
        raise RuntimeError(f"Llama export: missing {missing}, unexpected {unexpected}")
    out = Path(out)
    llama.save_pretrained(out)
    tensors = {f"heads.{k}": v.detach().contiguous() for k, v in model.heads.state_dict().items()}
    tensors["embed.table.weight"] = model.embed.table.weight.detach().contiguous()
    save_file(tensors, str(out / HEADS_FILE))
    loaded.vocab.save(out / TOKENIZER_FILE)
    (out / "harmonixr.json").write_text(json.dumps({"model": to_dict(model.cfg)}, indent=1))
    return out
