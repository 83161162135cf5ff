"""The main model: a decoder-only Transformer in the Llama layout, plus structural embeddings.

RMSNorm before each sub-layer, rotary positions, SwiGLU feed-forward, no biases, tied or untied
output embedding: parameter for parameter the layout of ``LlamaForCausalLM``, so the weights export
to it. The one addition is :class:`StructureEmbedding`: the embeddings of the musical features of
:mod:`harmonixr.models.structure` (beat phase, beat, bar, track, token type), summed into the token
embedding. Shapes: B batch, T time, C channels (d_model), H heads, D head size, F features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from harmonixr.models.config import ModelConfig
from harmonixr.models.structure import FEATURES


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotary_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, (max_len, head_dim), in the half-split layout ``LlamaForCausalLM`` uses."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)  # (D/2,)
    angles = torch.outer(torch.arange(max_len).float(), inv_freq)  # (max_len, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (max_len, D)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, T, D) queries or keys by the position tables (T, D)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class LayerCache:
    """One layer's slice of a :class:`KVCache`, positioned where the next tokens go."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor, start: int) -> None:
        self.k, self.v, self.start = k, v, start  # k, v: (B, H, max_len, D)

    def write(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (B, H, T, D) new keys/values; return all keys/values up to them."""
        end = self.start + k.shape[2]
        self.k[:, :, self.start : end] = k
        self.v[:, :, self.start : end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    """Preallocated keys and values of every layer, (L, B, H, max_len, D) each: no allocation
    per generated token. ``length`` is how many positions are filled."""

    def __init__(self, cfg: ModelConfig, batch: int, max_len: int, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> None:
        shape = (cfg.n_layers, batch, cfg.n_heads, max_len, cfg.d_model // cfg.n_heads)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    def layer(self, index: int) -> LayerCache:
        return LayerCache(self.k[index], self.v[index], self.length)

    def repeat(self, batch: int) -> KVCache:
        """A cache of ``batch`` rows, each a copy of row 0 (one prompt -> N variations)."""
        out = KVCache.__new__(KVCache)
        out.k = self.k[:, :1].repeat(1, batch, 1, 1, 1)
        out.v = self.v[:, :1].repeat(1, batch, 1, 1, 1)
        out.length = self.length
        return out


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.o_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, causal: bool = True,
                memory: torch.Tensor | None = None, keys: torch.Tensor | None = None,
                cache: LayerCache | None = None) -> torch.Tensor:
        """Self-attention over ``x`` (B, T, C), or cross-attention to ``memory`` (B, S, C).

        ``keys`` (B, S) bool, True where a key may be attended (padding is False); only used
        without ``causal`` (a causal decoder's padding sits at the end and is never attended).
        ``cache``: the layer's preallocated keys/values; ``x`` holds the tokens at positions
        ``cache.start ..`` and attends to everything cached before them (``cos``/``sin`` are the
        tables of those positions).
        """
        B, T, C = x.shape
        q = self.heads(self.q_proj(x))
        kv = x if memory is None else memory
        k, v = self.heads(self.k_proj(kv)), self.heads(self.v_proj(kv))
        if memory is None:  # rotary positions only make sense within one sequence
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        is_causal = causal and memory is None
        mask = None if is_causal or keys is None else keys[:, None, None, :]  # (B, 1, 1, S)
        if cache is not None:
            k, v = cache.write(k, v)  # (B, H, start + T, D)
            start = k.shape[2] - T
            is_causal = False
            if T > 1:  # query i sits at start + i and sees keys up to there
                mask = torch.arange(start + T, device=x.device)[None, :] <= start + torch.arange(T, device=x.device)[:, None]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """Pre-norm residual block: self-attention, optional cross-attention, SwiGLU."""

    def __init__(self, cfg: ModelConfig, cross: bool = False) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model)
        self.self_attn = Attention(cfg)
        self.cross_norm = RMSNorm(cfg.d_model) if cross else None
        self.cross_attn = Attention(cfg) if cross else None
        self.post_attention_layernorm = RMSNorm(cfg.d_model)
        self.mlp = SwiGLU(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, causal: bool = True,
                memory: torch.Tensor | None = None, keys: torch.Tensor | None = None,
                cache: LayerCache | None = None) -> torch.Tensor:
        """``keys`` masks padding of ``x`` (encoder) or of ``memory`` (decoder with cross-attention)."""
        x = x + self.drop(self.self_attn(self.input_layernorm(x), cos, sin, causal, keys=keys, cache=cache))
        if self.cross_attn is not None:
            x = x + self.drop(self.cross_attn(self.cross_norm(x), cos, sin, memory=memory, keys=keys))
        return x + self.drop(self.mlp(self.post_attention_layernorm(x)))


class StructureEmbedding(nn.Module):
    """Sum of one embedding per structural feature named in ``cfg.features``."""

    def __init__(self, cfg: ModelConfig, sizes: dict[str, int]) -> None:
        super().__init__()
        self.columns = [FEATURES.index(name) for name in cfg.features]
        self.tables = nn.ModuleList(nn.Embedding(sizes[name], cfg.d_model) for name in cfg.features)

    def forward(self, feats: torch.Tensor) -> torch.Tensor | float:
        """feats (B, T, F) -> (B, T, C), the sum of the chosen features' embeddings."""
        out: torch.Tensor | float = 0.0
        for column, table in zip(self.columns, self.tables):
            out = out + table(feats[..., column])
        return out


class TokenModel(nn.Module):
    """What every attention model here shares: token + structure embedding in, RMSNorm and a
    (tied) head out, and the rotary tables. Subclasses add their layers in between."""

    def __init__(self, cfg: ModelConfig, feature_sizes: dict[str, int]) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.structure = StructureEmbedding(cfg, feature_sizes)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm = RMSNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        cos, sin = rotary_tables(cfg.d_model // cfg.n_heads, cfg.max_len, cfg.rope_theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def embed(self, idx: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """Input embeddings (B, T, C): token plus structure (what ``inputs_embeds`` is to HF Llama)."""
        return self.embed_tokens(idx) + self.structure(feats)


class MusicTransformer(TokenModel):
    """Decoder-only Transformer over Harmonixr tokens; ``forward`` returns next-token logits."""

    def __init__(self, cfg: ModelConfig, feature_sizes: dict[str, int]) -> None:
        super().__init__(cfg, feature_sizes)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.apply(init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))

    def forward(self, idx: torch.Tensor, feats: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """idx (B, T), feats (B, T, F) -> logits (B, T, V).

        With ``cache``, ``idx`` are the tokens after the ``cache.length`` already cached ones; their
        keys and values are added to the cache and its length advanced.
        """
        T = idx.shape[1]
        start = cache.length if cache is not None else 0
        if start + T > self.cfg.max_len:
            raise ValueError(f"sequence of {start + T} tokens is longer than max_len {self.cfg.max_len}")
        x = self.drop(self.embed(idx, feats))  # (B, T, C)
        cos, sin = self.cos[start : start + T], self.sin[start : start + T]
        for index, layer in enumerate(self.layers):
            x = layer(x, cos, sin, cache=cache.layer(index) if cache is not None else None)
        if cache is not None:
            cache.length += T
        return self.lm_head(self.norm(x))


def init_weights(module: nn.Module) -> None:
    """Normal(0, 0.02) for linear and embedding weights (nanoGPT's choice)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
