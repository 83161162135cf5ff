"""Training curves from ``metrics.jsonl``: training loss and validation loss against tokens seen."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from harmonixr.visualization.figures import save_figure  # noqa: E402


def read_metrics(run: str | Path) -> tuple[list[dict], list[dict]]:
    """(training records, validation records) of a run folder's ``metrics.jsonl``, or of the
    ``training_log.jsonl`` a shipped checkpoint carries (a checkpoint inside a run: the run's)."""
    folder = Path(run)
    candidates = [folder / "metrics.jsonl", folder / "training_log.jsonl", folder.parent / "metrics.jsonl"]
    path = next((c for c in candidates if c.is_file()), candidates[0])
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics (is {run} a training run folder?)")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if "loss" in r], [r for r in records if "val_loss" in r]


def plot_curves(runs: Sequence[str | Path], out: str | Path, labels: Sequence[str] | None = None) -> Path:
    """One PNG: training loss (thin) and validation loss (markers) in bits per token, per run."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for k, run in enumerate(runs):
        train, val = read_metrics(run)
        label = labels[k] if labels else Path(run).name
        line, = ax.plot([r["step"] for r in train], [r["loss"] / math.log(2) for r in train],
                        linewidth=0.8, alpha=0.6, label=f"{label} train")
        ax.plot([r["step"] for r in val], [r["val_loss"] / math.log(2) for r in val], "o-",
                color=line.get_color(), markersize=3, label=f"{label} validation")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per token")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return save_figure(fig, out, dpi=120)


def _smooth(values: Sequence[float], width: int = 8) -> list[float]:
    """Trailing mean over ``width`` points (the first points average what there is)."""
    return [sum(values[max(0, k - width + 1) : k + 1]) / len(values[max(0, k - width + 1) : k + 1]) for k in range(len(values))]


def plot_rl_run(run: str | Path, out: str | Path) -> Path:
    """One PNG of an RL run's ``metrics.jsonl``: the total reward per step (and its trailing mean),
    the KL to the reference and the entropy per token."""
    records = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    records = [r for r in records if "reward/total" in r]
    steps = [r["step"] for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    total = [r["reward/total"] for r in records]
    left.plot(steps, total, linewidth=0.8, alpha=0.5, label="batch mean")
    left.plot(steps, _smooth(total), linewidth=2, label="trailing mean (8 steps)")
    left.set_xlabel("step")
    left.set_ylabel("reward (weighted mean of the terms)")
    left.legend(fontsize=7)
    right.plot(steps, [r["kl_per_token"] for r in records], label="KL(policy || supervised) per token")
    right.plot(steps, [r["entropy"] for r in records], label="entropy per token (nats)")
    right.set_xlabel("step")
    right.set_yscale("log")
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
    return save_figure(fig, out, dpi=120)
