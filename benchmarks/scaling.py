"""The scaling run: three model sizes trained for the same wall-clock budget, compared on the
validation split. Prints one table and writes results/scaling.json and results/scaling.png.

    python benchmarks/scaling.py            # trains configs/scale/{small,medium,large}.yaml (15 min each)
    python benchmarks/scaling.py --report   # only reads the runs already in runs/scale
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.config import load_yaml
from harmonixr.models.checkpoint import read_config
from harmonixr.models.config import ModelConfig
from harmonixr.tokens.vocab import NoteVocab
from harmonixr.training.config import TrainConfig

SIZES = ("small", "medium", "large")


def summarize(size: str) -> dict:
    config = load_yaml(TrainConfig, f"configs/scale/{size}.yaml")
    out = Path(config.run.out)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val_loss" in r]
    vocab = NoteVocab.from_file(out / "latest")
    model = ModelConfig(**{**read_config(out / "latest")["model"], "column_sizes": dict(vocab.sizes)})
    steady = [r for r in train[len(train) // 4:]]  # after compilation and warm-up
    return {
        "size": size, "parameters": model.parameters(), "d_model": model.d_model, "layers": model.n_layers,
        "steps": train[-1]["step"], "minutes": train[-1]["elapsed_s"] / 60,
        "positions_seen": int(train[-1]["step"] * config.data.batch_size * (config.data.block_size - 1)),
        "val_bits_per_position": val[-1]["val_loss"] / math.log(2) if val else float("nan"),
        "best_val_bits_per_position": min(r["val_loss"] for r in val) / math.log(2) if val else float("nan"),
        "positions_per_s": float(np.median([r["positions_per_s"] for r in steady])),
        "tflops_per_s": float(np.median([r["flops_per_s"] for r in steady])) / 1e12,
        "peak_tflops_per_s": float(np.median([r["peak_flops_per_s"] for r in steady])) / 1e12,
        "utilization": float(np.median([r["utilization"] for r in steady])),
        "curve": [(r["elapsed_s"] if "elapsed_s" in r else None, r["step"], r["val_loss"] / math.log(2)) for r in val],
    }


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        steps = [s for _, s, _ in row["curve"]]
        bits = [b for *_, b in row["curve"]]
        minutes = np.asarray(steps) / max(row["steps"], 1) * row["minutes"]
        ax.plot(minutes, bits, marker="o", label=f"{row['size']} ({row['parameters'] / 1e6:.1f} M)")
    ax.set_xlabel("minutes of training (2 CPU cores)")
    ax.set_ylabel("validation bits per position")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="do not train; summarize runs/scale")
    args = parser.parse_args()
    if not args.report:
        for size in SIZES:
            subprocess.run([sys.executable, "-m", "harmonixr", "train", "--config", f"configs/scale/{size}.yaml",
                            "--fresh", "--quiet"], check=True)
    rows = [summarize(size) for size in SIZES]
    table = Table(title="Scaling: the same wall-clock budget per size, validation split")
    for column in ("size", "params", "steps", "positions seen", "val bits/position", "positions/s", "TFLOP/s",
                   "bf16 peak", "utilization"):
        table.add_column(column, justify="left" if column == "size" else "right")
    for r in rows:
        table.add_row(r["size"], f"{r['parameters'] / 1e6:.1f} M", f"{r['steps']}", f"{r['positions_seen'] / 1e6:.1f} M",
                      f"{r['val_bits_per_position']:.3f}", f"{r['positions_per_s']:,.0f}", f"{r['tflops_per_s']:.3f}",
                      f"{r['peak_tflops_per_s']:.3f}", f"{r['utilization']:.0%}")
    Console(width=140).print(table)
    Path("results").mkdir(exist_ok=True)
    Path("results/scaling.json").write_text(json.dumps(rows, indent=1))
    plot(rows, Path("results/scaling.png"))
    print("wrote results/scaling.json and results/scaling.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
