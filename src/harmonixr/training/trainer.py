"""The supervised training loop: AdamW, warmup + cosine, clipping, accumulation, validation,
early stopping, atomic ``latest``/``best`` checkpoints, exact resume, JSONL + TensorBoard logs, DDP.

Run alone (``harmonixr train --config ...``) or under ``torchrun --nproc_per_node N`` (each rank
draws its own windows; rank 0 validates, logs and writes checkpoints).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from harmonixr.config import to_dict
from harmonixr.data.corpus import Corpus
from harmonixr.data.stats import drum_grooves, drum_kits, drum_repeats, melodic_velocities, program_parts
from harmonixr.models.checkpoint import (
    build_model,
    load_model_weights,
    load_training_state,
    save_checkpoint,
    start_from,
)
from harmonixr.models.transformer import field_nll
from harmonixr.progress import progress_bar
from harmonixr.runtime import (
    agree,
    autocast,
    autocast_dtype,
    init_distributed,
    pick_device,
    set_threads,
)
from harmonixr.training.batches import Batch, TrainStream
from harmonixr.training.config import OptimConfig, TrainConfig
from harmonixr.training.flops import flops_per_position, matmul_peak

METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainResult:
    out: Path
    step: int
    best_val: float  # nats per learned position (a note's fields summed)
    stopped: str  # "max_steps", "time", "early_stop"


def lr_at(step: int, cfg: OptimConfig, max_steps: int, time_done: float = 0.0) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at ``max_steps`` (or, when
    ``time_done``, the share of a time budget used, is further along, at the end of the budget)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, max((step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps), time_done))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (not on norms or embeddings)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "embed" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def batch_loss(model: nn.Module, batch: Batch, nll_of: Callable = field_nll) -> tuple[torch.Tensor, int]:
    """Mean nats per learned position (the sum of its fields' cross-entropies) and the positions;
    ``nll_of``: :func:`field_nll`, or it compiled."""
    nll, mask = nll_of(model, batch.rows, batch.target)
    positions = int(batch.target[:, 1:].sum())
    return nll.sum() / max(positions, 1), positions


@torch.no_grad()
def validate(model: nn.Module, batches: list[Batch], device: torch.device, dtype: torch.dtype | None) -> float:
    """Nats per learned position over fixed validation batches."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        with autocast(device, dtype):
            loss, n = batch_loss(model, batch.to(device))
        total, count = total + float(loss) * n, count + n
    model.train()
    return total / max(count, 1)


class Logger:
    """metrics.jsonl (truncated to the resumed step, so a curve never repeats) and TensorBoard."""

    def __init__(self, out: Path, start_step: int, tensorboard: bool) -> None:
        self.path = out / METRICS_FILE
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= start_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=start_step + 1)

    def log(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def train(config: TrainConfig, resume: bool = True, show_progress: bool = True) -> TrainResult:
    """Train (or resume) the model of ``config``; returns where it stopped and the best val loss."""
    run, optim_cfg = config.run, config.optim
    set_threads(run.threads)
    device = pick_device(run.device)
    dist_info = init_distributed(device)
    dtype = autocast_dtype(run.precision, device)
    torch.manual_seed(run.seed)

    corpus = Corpus(config.data.folders)
    model_cfg = dataclasses.replace(config.model, max_len=config.data.block_size)
    model = build_model(model_cfg, corpus.vocab).to(device)
    optimizer = make_optimizer(model, optim_cfg)
    out = Path(run.out)
    latest, best = out / "latest", out / "best"
    # what a part written from nothing keeps to: its program's pitches and pace, a drum part its style's kit
    meta = {"train": to_dict(config), "program_parts": program_parts(corpus), "drum_kits": drum_kits(corpus),
            "drum_grooves": drum_grooves(corpus), "drum_repeats": drum_repeats(corpus),
            "melodic_velocities": melodic_velocities(corpus)}
    state: dict[str, Any] = {"step": 0, "best_val": float("inf"), "bad_evals": 0, "elapsed": 0.0}
    if resume and (latest.exists() or latest.with_name("latest.old").exists()):
        load_model_weights(latest, model)
        state = load_training_state(latest, optimizer)
    elif run.init_from:
        start_from(run.init_from, model, corpus.vocab)
    start = state["step"]
    if dist_info.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(meta["train"], indent=1))
    logger = Logger(out, start, run.tensorboard) if dist_info.main else None

    def log(record: dict[str, float]) -> None:
        if logger is not None:
            logger.log(record)

    wrapped: nn.Module = DistributedDataParallel(model) if dist_info.world > 1 else model
    # compiled whole (backbone, field heads and losses): compiling the module alone left the heads
    # and the cross-entropies eager, at half the positions per second (benchmarks/train_throughput.py)
    nll_of = torch.compile(field_nll) if run.compile else field_nll
    peak = matmul_peak(device, dtype) if dist_info.main else 0.0  # FLOP/s of one big matmul here, now
    per_position = flops_per_position(model.cfg, config.data.block_size)

    weights = dict(config.data.source_weights)
    stream = TrainStream(corpus, config.data.block_size, config.data.batch_size, config.objective, run.seed,
                         source_weights=weights)
    val_stream = TrainStream(corpus, config.data.block_size, config.data.batch_size, config.objective,
                             run.seed + 1, split="val", source_weights=weights)
    val_batches = [val_stream.batch(i) for i in range(config.data.val_batches)] if dist_info.main else []

    def checkpoint(path: Path, step: int) -> None:
        save_checkpoint(path, model, corpus.vocab, {**meta, "step": step}, optimizer, {**state, "step": step})

    nominal = config.data.batch_size * config.data.block_size * optim_cfg.accumulate * dist_info.world
    stopped, began = "max_steps", time.time() - state["elapsed"]
    window_positions, window_learned, window_t0 = 0, 0, time.time()
    model.train()
    with progress_bar("train positions", (run.max_steps - start) * nominal, show_progress and dist_info.main) as advance:
        for step in range(start + 1, run.max_steps + 1):
            time_done = state["elapsed"] / (run.max_minutes * 60) if run.max_minutes else 0.0
            lr = lr_at(step - 1, optim_cfg, run.max_steps, time_done)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = 0.0
            for micro in range(optim_cfg.accumulate):
                batch = stream.batch((step - 1) * optim_cfg.accumulate + micro, dist_info.rank).to(device)
                sync = micro == optim_cfg.accumulate - 1 or dist_info.world == 1
                context = cast(DistributedDataParallel, wrapped).no_sync() if not sync else torch.enable_grad()
                with context, autocast(device, dtype):
                    loss, _ = batch_loss(wrapped, batch, nll_of)
                    (loss / optim_cfg.accumulate).backward()
                loss_sum += loss.item() / optim_cfg.accumulate
                window_learned += batch.positions * dist_info.world
                window_positions += batch.rows[:, :-1].shape[0] * batch.rows[:, :-1].shape[1] * dist_info.world
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), optim_cfg.grad_clip))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            advance(nominal)
            state["elapsed"] = time.time() - began
            if dist_info.main and step % run.log_every == 0:
                seconds = max(time.time() - window_t0, 1e-9)
                flops = window_positions * per_position / seconds
                log({"step": step, "loss": loss_sum, "lr": lr, "grad_norm": grad_norm,
                            "positions_per_s": window_positions / seconds, "learned_per_s": window_learned / seconds,
                            "flops_per_s": flops, "peak_flops_per_s": peak, "utilization": flops / max(peak, 1.0),
                            "elapsed_s": state["elapsed"]})
                window_positions, window_learned, window_t0 = 0, 0, time.time()
            stop = False
            if dist_info.main and step % run.eval_every == 0:
                peak = matmul_peak(device, dtype)  # again: the machine's speed moves over a long run
                val = validate(model, val_batches, device, dtype)
                improved = val < state["best_val"]
                state["best_val"] = min(val, state["best_val"])
                state["bad_evals"] = 0 if improved else state["bad_evals"] + 1
                log({"step": step, "val_loss": val, "val_bits_per_position": val / math.log(2)})
                if improved:
                    checkpoint(best, step)
                stop = run.patience > 0 and state["bad_evals"] >= run.patience
                stopped = "early_stop" if stop else stopped
            if run.max_minutes and state["elapsed"] > run.max_minutes * 60:
                stop, stopped = True, "time"
            stop = agree(stop, dist_info, device)
            if dist_info.main and (stop or step == run.max_steps) and step % run.eval_every:
                val = validate(model, val_batches, device, dtype)  # the run's end is always measured
                log({"step": step, "val_loss": val, "val_bits_per_position": val / math.log(2)})
                if val < state["best_val"]:
                    state["best_val"] = val
                    checkpoint(best, step)
            if dist_info.main and (step % run.checkpoint_every == 0 or stop or step == run.max_steps):
                checkpoint(latest, step)
            if stop:
                break
    if logger is not None:
        logger.close()
    return TrainResult(out, step if run.max_steps > start else start, state["best_val"], stopped)
