"""The model's shape, as a typed config (saved as ``config.json`` in every checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass

from harmonixr.models.structure import FEATURES

MODEL_KINDS = ("transformer", "lstm", "encdec")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters. ``vocab_size`` is filled in from the tokenizer."""

    kind: str = "transformer"  # one of MODEL_KINDS (the n-gram baseline is not a torch model)
    vocab_size: int = 0
    d_model: int = 192
    n_layers: int = 6
    n_heads: int = 6
    ffn_hidden: int = 512  # SwiGLU hidden size
    max_len: int = 512  # longest sequence (rotary tables are built for it)
    dropout: float = 0.1
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    features: tuple[str, ...] = FEATURES  # structural embeddings added to the token embedding
    encoder_layers: int = 3  # encdec only: encoder depth (n_layers is the decoder's)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model.kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        unknown = set(self.features) - set(FEATURES)
        if unknown:
            raise ValueError(f"model.features: unknown {sorted(unknown)}; known: {list(FEATURES)}")
        if self.kind != "lstm" and self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
