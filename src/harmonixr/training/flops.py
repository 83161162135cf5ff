"""Training compute: model FLOPs per position, and the matmul peak of this machine, measured.

FLOPs are counted as nanoGPT does for its MFU: ``6 N`` per position for the weight matrices
(forward, and twice that backward) plus ``12 L C T`` for attention over a block of ``T``
positions. Here ``N`` counts the backbone's matrices and the field heads, which run once per field
(the shared SwiGLU block K times, each projection once); embeddings are lookups and not counted.
The utilization the trainer logs is achieved FLOP/s over :func:`matmul_peak`, measured in the same
run with the same dtype.
"""

from __future__ import annotations

import time

import torch

from harmonixr.models.config import ModelConfig
from harmonixr.runtime import autocast
from harmonixr.tokens.vocab import FIELDS

PEAK_SIZE = 1024  # square matmul used to measure the peak
PEAK_SECONDS = 0.3


def matrix_parameters(cfg: ModelConfig) -> int:
    """Multiply-accumulates per position in the weight matrices (backbone and heads)."""
    d = cfg.d_model
    backbone = cfg.n_layers * (4 * d * d + 3 * d * cfg.ffn_hidden)
    heads = len(FIELDS) * 3 * d * cfg.head_hidden + d * sum(cfg.column_sizes.get(f, 0) for f in FIELDS)
    return backbone + heads + (4 * d * d if cfg.head_attention else 0)


def flops_per_position(cfg: ModelConfig, block: int) -> float:
    """Training FLOPs (forward and backward) per position of a block of ``block`` positions."""
    return 6.0 * matrix_parameters(cfg) + 12.0 * (cfg.n_layers + cfg.head_attention) * cfg.d_model * block


def matmul_peak(device: torch.device, dtype: torch.dtype | None, size: int = PEAK_SIZE,
                seconds: float = PEAK_SECONDS) -> float:
    """FLOP/s of repeated ``size`` x ``size`` matmuls in ``dtype`` (None: fp32) on ``device``, now."""
    generator = torch.Generator(device=device).manual_seed(0)  # its own: the run's random state is not touched
    a = torch.randn(size, size, device=device, generator=generator)
    b = torch.randn(size, size, device=device, generator=generator)
    with autocast(device, dtype):
        for _ in range(3):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        began, count = time.perf_counter(), 0
        while time.perf_counter() - began < seconds:
            a @ b
            count += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
    return 2.0 * size**3 * count / (time.perf_counter() - began)
