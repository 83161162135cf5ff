"""Neural baselines, trained by the same loop on the same batches as the main model.

- :class:`LSTMModel`: a stacked LSTM over the same tokens (pitch, velocity, duration, timing), in the
  spirit of the melody/performance RNNs; it sees tokens only, no structural features.
- :class:`EncoderDecoder`: for infill, an encoder reads the header and the context with the hole
  marked (bidirectionally) and a decoder writes the fill while cross-attending to it. On a plain
  window the encoder reads the header and the decoder writes the body.

:func:`build_model` makes any of them (or the main model) from a :class:`ModelConfig`, and
:func:`logits_and_targets` is the one call the training loop and the evaluation make.
"""

from __future__ import annotations

import torch
from torch import nn

from harmonixr.models.config import ModelConfig
from harmonixr.models.transformer import (
    Block,
    MusicTransformer,
    RMSNorm,
    TokenModel,
    init_weights,
)
from harmonixr.training.batches import IGNORE, Batch


class LSTMModel(nn.Module):
    """Token embedding -> ``n_layers`` LSTM of width ``d_model`` -> logits."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.lstm = nn.LSTM(cfg.d_model, cfg.d_model, cfg.n_layers, batch_first=True, dropout=cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        nn.init.normal_(self.embed_tokens.weight, std=0.02)

    def forward(self, idx: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) -> logits (B, T, V); ``feats`` is ignored."""
        x, _ = self.lstm(self.drop(self.embed_tokens(idx)))  # (B, T, C)
        return self.lm_head(self.drop(x))


class EncoderDecoder(TokenModel):
    """Bidirectional encoder over the context, causal decoder with cross-attention over the fill."""

    def __init__(self, cfg: ModelConfig, feature_sizes: dict[str, int]) -> None:
        super().__init__(cfg, feature_sizes)
        self.encoder = nn.ModuleList(Block(cfg) for _ in range(cfg.encoder_layers))
        self.encoder_norm = RMSNorm(cfg.d_model)
        self.decoder = nn.ModuleList(Block(cfg, cross=True) for _ in range(cfg.n_layers))
        self.apply(init_weights)

    def forward(self, src: torch.Tensor, src_feats: torch.Tensor, src_keys: torch.Tensor,
                tgt: torch.Tensor, tgt_feats: torch.Tensor) -> torch.Tensor:
        """src (B, S) with src_keys (B, S) True on real tokens; tgt (B, U) -> logits (B, U, V)."""
        S, U = src.shape[1], tgt.shape[1]
        memory = self.drop(self.embed(src, src_feats))  # (B, S, C)
        for layer in self.encoder:
            memory = layer(memory, self.cos[:S], self.sin[:S], causal=False, keys=src_keys)
        memory = self.encoder_norm(memory)
        x = self.drop(self.embed(tgt, tgt_feats))  # (B, U, C)
        for layer in self.decoder:
            x = layer(x, self.cos[:U], self.sin[:U], memory=memory, keys=src_keys)
        return self.lm_head(self.norm(x))

    def split_batch(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        """Cut each row of a decoder-only batch at ``batch.split`` into encoder and decoder parts."""
        B, T = batch.idx.shape
        S = int(batch.split.max())
        U = T - int(batch.split.min())
        device = batch.idx.device
        src = torch.zeros(B, S, dtype=torch.long, device=device)
        src_feats = torch.zeros(B, S, batch.feats.shape[-1], dtype=torch.long, device=device)
        tgt = torch.zeros(B, U, dtype=torch.long, device=device)
        tgt_feats = torch.zeros(B, U, batch.feats.shape[-1], dtype=torch.long, device=device)
        targets = torch.full((B, U), IGNORE, dtype=torch.long, device=device)
        for b, s in enumerate(batch.split.tolist()):
            src[b, :s], src_feats[b, :s] = batch.idx[b, :s], batch.feats[b, :s]
            tgt[b, : T - s], tgt_feats[b, : T - s] = batch.idx[b, s:], batch.feats[b, s:]
            targets[b, : T - s] = batch.targets[b, s:]
        src_keys = torch.arange(S, device=device)[None, :] < batch.split[:, None]
        return src, src_feats, src_keys, tgt, tgt_feats, targets


def build_model(cfg: ModelConfig, feature_sizes: dict[str, int]) -> nn.Module:
    """The model of ``cfg.kind``, freshly initialised."""
    if cfg.kind == "transformer":
        return MusicTransformer(cfg, feature_sizes)
    if cfg.kind == "lstm":
        return LSTMModel(cfg)
    return EncoderDecoder(cfg, feature_sizes)


def logits_and_targets(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T', V) logits and their (B, T') targets for any model kind (DDP-wrapped or not)."""
    inner = getattr(model, "module", model)
    if isinstance(inner, EncoderDecoder):
        src, src_feats, src_keys, tgt, tgt_feats, targets = inner.split_batch(batch)
        return model(src, src_feats, src_keys, tgt, tgt_feats), targets
    return model(batch.idx, batch.feats), batch.targets
