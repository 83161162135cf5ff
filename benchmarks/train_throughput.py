"""Training throughput of the shipped model's shape on real packed batches: positions per second and
achieved FLOP/s against the bf16 (and fp32) matmul peak measured in the same run, for fp32, bf16
autocast, and bf16 with ``torch.compile``.

    python benchmarks/train_throughput.py [--config configs/default.yaml] [--steps 6]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from rich.console import Console
from rich.table import Table

from harmonixr.config import load_yaml
from harmonixr.data.corpus import Corpus
from harmonixr.models.checkpoint import build_model
from harmonixr.models.transformer import field_nll
from harmonixr.runtime import autocast, set_threads
from harmonixr.training.batches import TrainStream
from harmonixr.training.config import TrainConfig
from harmonixr.training.flops import flops_per_position, matmul_peak


def measure(config: TrainConfig, dtype: torch.dtype | None, compiled: bool, steps: int) -> tuple[float, float]:
    """(positions/s, FLOP/s) over ``steps`` steps after two warm-up steps (compilation included there)."""
    corpus = Corpus(config.data.folders)
    cfg = dataclasses.replace(config.model, max_len=config.data.block_size)
    model = build_model(cfg, corpus.vocab).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    stream = TrainStream(corpus, config.data.block_size, config.data.batch_size, config.objective, 0)
    loss_fn = torch.compile(field_nll) if compiled else field_nll
    device = torch.device("cpu")
    per = flops_per_position(model.cfg, config.data.block_size)
    batches = [stream.batch(step) for step in range(steps + 2)]
    began, positions = 0.0, 0
    for step, batch in enumerate(batches):
        if step == 2:
            began = time.perf_counter()
        with autocast(device, dtype):
            nll, _ = loss_fn(model, batch.rows, batch.target)
            loss = nll.sum() / max(batch.positions, 1)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 2:
            positions += batch.rows.shape[0] * (batch.rows.shape[1] - 1)
    seconds = time.perf_counter() - began
    return positions / seconds, positions * per / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_threads(args.threads)
    config = load_yaml(TrainConfig, args.config)
    peaks = {name: matmul_peak(torch.device("cpu"), dtype) for name, dtype in (("fp32", None), ("bf16", torch.bfloat16))}
    table = Table(title=f"training throughput, {args.config}: batch {config.data.batch_size} x {config.data.block_size}, "
                        f"{args.threads} threads; matmul peak {peaks['bf16'] / 1e9:.0f} GFLOP/s bf16, "
                        f"{peaks['fp32'] / 1e9:.0f} fp32")
    for column in ("precision", "positions/s", "GFLOP/s", "of the bf16 peak", "of its own dtype's peak"):
        table.add_column(column, justify="right")
    for name, dtype, compiled in (("fp32", None, False), ("bf16", torch.bfloat16, False),
                                  ("bf16 + torch.compile", torch.bfloat16, True)):
        rate, flops = measure(config, dtype, compiled, args.steps)
        own = peaks["bf16" if dtype is not None else "fp32"]
        table.add_row(name, f"{rate:,.0f}", f"{flops / 1e9:.0f}", f"{flops / peaks['bf16']:.0%}", f"{flops / own:.0%}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
