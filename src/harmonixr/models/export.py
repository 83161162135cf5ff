"""Export the main model as a standard ``LlamaForCausalLM`` checkpoint (``transformers``).

The Transformer blocks, final norm, token embedding and head map one to one onto Llama's
parameters. The structural embeddings have no Llama counterpart: they are written beside the
checkpoint (``harmonixr_structure.safetensors``), and the exported model gives our logits when fed
``inputs_embeds = embed_tokens(ids) + sum_f structure_f(features_f)`` (what
:meth:`MusicTransformer.embed` computes); a model trained without features takes ``input_ids``.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from harmonixr.models.transformer import MusicTransformer
from harmonixr.training.checkpoint import load_checkpoint

STRUCTURE_FILE = "harmonixr_structure.safetensors"
TOKENIZER_FILE = "harmonixr_tokenizer.json"  # not tokenizer.json, which transformers reads as its own


def llama_config(model: MusicTransformer):
    from transformers import LlamaConfig

    cfg = model.cfg
    return LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.ffn_hidden,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_heads,
        max_position_embeddings=cfg.max_len, rms_norm_eps=model.norm.eps, rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings, attention_bias=False, mlp_bias=False, hidden_act="silu",
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )


def llama_state_dict(model: MusicTransformer) -> dict:
    """Our parameters under Llama's names (structure tables left out)."""
    out = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("structure."):
            continue
        out[name if name.startswith("lm_head.") else f"model.{name}"] = tensor
    return out


def export_hf(checkpoint: str | Path, out: str | Path) -> Path:
    """Write ``out`` (a ``save_pretrained`` folder) from a checkpoint of the main model."""
    from transformers import LlamaForCausalLM

    loaded = load_checkpoint(checkpoint)
    model = loaded.model
    if not isinstance(model, MusicTransformer):
        raise ValueError(f"{checkpoint}: only the decoder-only Transformer exports to Llama, not {loaded.model_config.kind}")
    llama = LlamaForCausalLM(llama_config(model))
    missing, unexpected = llama.load_state_dict(llama_state_dict(model), strict=False)
    if unexpected or [m for m in missing if not m.startswith("lm_head.")]:
        raise RuntimeError(f"Llama export: missing {missing}, unexpected {unexpected}")
    out = Path(out)
    llama.save_pretrained(out)
    tables = {f"{name}.weight": table.weight.detach().contiguous()
              for name, table in zip(model.cfg.features, model.structure.tables)}
    if tables:
        save_file(tables, str(out / STRUCTURE_FILE))
    loaded.tokenizer.save(out / TOKENIZER_FILE)
    (out / "harmonixr.json").write_text(json.dumps({"features": list(model.cfg.features),
                                                    "feature_sizes": loaded.meta["feature_sizes"],
                                                    "infill_layout": loaded.infill_layout}, indent=1))
    return out
