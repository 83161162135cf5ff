"""Training throughput (tokens/s): our Transformer next to a plain ``nn.TransformerEncoder`` LM.

Both have the shipped model's width, depth and heads (``configs/default.yaml``), about the same
parameter count (the encoder's ReLU feed-forward is 1.5x wider to match SwiGLU's three matrices),
the same batch of real training windows, one AdamW step per batch, fp32 and bf16 autocast. On a
GPU it also reports model FLOPs utilisation (6 N FLOPs per token plus attention, over the peak).

    python benchmarks/train_throughput.py [--threads 2] [--steps 10]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

from harmonixr.config import load_yaml
from harmonixr.models.transformer import MusicTransformer
from harmonixr.runtime import autocast, pick_device, set_threads
from harmonixr.training.batches import IGNORE, Batch, Corpus, TrainStream
from harmonixr.training.config import TrainConfig

GPU_PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense tensor-core FLOP/s


class PlainEncoderLM(nn.Module):
    """Token + learned position embedding, ``nn.TransformerEncoder`` with a causal mask, LM head."""

    def __init__(self, vocab: int, d: int, layers: int, heads: int, ffn: int, max_len: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        layer = nn.TransformerEncoderLayer(d, heads, ffn, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, idx: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=idx.device)
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))
        return self.head(self.encoder(x, mask=mask, is_causal=True))


def time_model(model: nn.Module, batch: Batch, steps: int, device: torch.device, dtype: torch.dtype | None) -> float:
    """Tokens per second of forward + backward + AdamW over ``steps`` steps (after one warm-up)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    for step in range(steps + 1):
        if step == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with autocast(device, dtype):
            logits = model(batch.idx, batch.feats)
            loss = F.cross_entropy(logits.float().flatten(0, 1), batch.targets.flatten(), ignore_index=IGNORE)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch.idx.numel() * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=0, help="default: the config's")
    args = parser.parse_args()
    set_threads(args.threads)
    config = load_yaml(TrainConfig, args.config)
    device = pick_device(config.run.device)
    corpus = Corpus(config.data.folders)
    m = config.model
    batch_size = args.batch_size or config.data.batch_size
    stream = TrainStream(corpus, config.data.block_size, batch_size, config.objective, seed=0)
    batch = stream.batch(0).to(device)
    cfg = type(m)(**{**m.__dict__, "vocab_size": len(corpus.tokenizer), "max_len": config.data.block_size})
    models = {
        "harmonixr MusicTransformer": lambda: MusicTransformer(cfg, corpus.structure.sizes),
        "nn.TransformerEncoder LM": lambda: PlainEncoderLM(len(corpus.tokenizer), m.d_model, m.n_layers, m.n_heads,
                                                           m.ffn_hidden * 3 // 2, config.data.block_size),
    }
    table = Table(title=f"training throughput, batch {batch_size} x {config.data.block_size} tokens, "
                        f"{device.type} ({torch.get_num_threads()} threads)")
    for column in ("model", "params", "precision", "tokens/s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    if device.type == "cuda":
        table.add_column("MFU", justify="right")
    for name, make in models.items():
        for precision, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            torch.manual_seed(0)
            model = make().to(device)
            params = sum(p.numel() for p in model.parameters())
            rate = time_model(model, batch, args.steps, device, dtype)
            row = [name, f"{params / 1e6:.2f}M", precision, f"{rate:,.0f}"]
            if device.type == "cuda":
                flops = 6 * params + 12 * m.n_layers * m.d_model * config.data.block_size
                peak = next((v for k, v in GPU_PEAK_BF16.items() if k in torch.cuda.get_device_name()), float("nan"))
                row.append(f"{rate * flops / peak:.1%}")
            table.add_row(*row)
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
