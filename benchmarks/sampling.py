"""Sampling speed: our sampler next to ``transformers``' ``generate`` on the same weights, and the
real-time factor of infill on POP909.

1. Tokens per second of free sampling from ``BOS`` (``--tokens`` new tokens per row, temperature 1,
   no top-k/top-p, so both do the same work) at batch 1 and 8, for: our sampler with the numba
   decode step, our sampler with the PyTorch decoder, and ``LlamaForCausalLM.generate`` of the
   shipped model exported with ``harmonixr export --format hf`` (identical weights; it is fed
   token ids only, as its structure tables have no Llama counterpart). Each figure is the best of
   ``--repeats`` timed runs after one warm-up run.
2. Infill real-time factor: a hole of 16 beats (4 bars of 4/4; POP909 files declare 2/4, so 8 of
   their bars), all three tracks, in the middle of each of ``--pieces`` POP909 songs: seconds of
   music in the hole over seconds of compute (prompt, sampling, splicing), one variation per call.

    python benchmarks/sampling.py [--threads 2] [--tokens 400] [--pieces 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from symusic import Score

from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Region
from harmonixr.sampling.sampler import Sampler, SamplingConfig

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "harmonixr-small"
POP909 = ROOT.parent / "shared" / "data" / "pop909"
HOLE_BEATS = 16


def best_rate(run, repeats: int) -> float:  # noqa: ANN001 - () -> tokens made
    run()  # warm-up: compiles or loads the numba kernel, fills caches
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = run()
        rates.append(tokens / (time.perf_counter() - start))
    return max(rates)


def speed_table(gen: Generator, tokens: int, repeats: int, console: Console) -> None:
    from transformers import LlamaForCausalLM

    from harmonixr.models.export import export_hf

    bos = gen.tokenizer.bos_id
    cfg = SamplingConfig(max_tokens=tokens)
    with tempfile.TemporaryDirectory() as tmp:
        export_hf(MODEL, tmp)
        llama = LlamaForCausalLM.from_pretrained(tmp).eval()

    def ours(backend: str, n: int):  # noqa: ANN202
        sampler = Sampler(gen.model, gen.structure, backend)
        return lambda: sum(map(len, sampler.generate([bos], n, cfg, seed=0)))

    def hf(n: int):  # noqa: ANN202
        ids = torch.full((n, 1), bos)

        def run() -> int:
            with torch.inference_mode():
                out = llama.generate(ids, do_sample=True, max_new_tokens=tokens, min_new_tokens=tokens, top_k=0,
                                     top_p=1.0, temperature=1.0, pad_token_id=gen.tokenizer.pad_id)
            return (out.shape[1] - 1) * n
        return run

    table = Table(title=f"free sampling, {tokens} new tokens per row, {torch.get_num_threads()} threads (tokens/s)")
    for column in ("batch", "ours (numba step)", "ours (PyTorch decoder)", "transformers generate", "ours / transformers"):
        table.add_column(column, justify="right")
    for n in (1, 8):
        fast, slow, theirs = (best_rate(ours("numba", n), repeats), best_rate(ours("torch", n), repeats),
                              best_rate(hf(n), repeats))
        table.add_row(str(n), f"{fast:,.0f}", f"{slow:,.0f}", f"{theirs:,.0f}", f"{fast / theirs:.1f}x")
    console.print(table)


def step_table(gen: Generator, console: Console, reps: int = 500) -> None:
    """The numba decode step alone at batch 1: microseconds per token at a short and a long
    context, and the weight bytes it reads per token (the floor at batch 1 is streaming them)."""
    import numpy as np

    from harmonixr.sampling.decoder import NumbaDecoder

    decoder = NumbaDecoder(gen.model)
    weights = sum(a.nbytes for k, a in decoder.weights.items() if k not in ("rotary", "table", "offsets", "columns"))
    table = Table(title=f"numba decode step alone, batch 1 ({weights / 2**20:.1f} MiB of weight matrices per token)")
    for column in ("position", "us per token", "weights read GB/s"):
        table.add_column(column, justify="right")
    prompt = [gen.tokenizer.bos_id] * 400
    feats = np.zeros((400, len(gen.structure.sizes)), dtype=np.int64)
    for position in (1, 400):
        decoder.start(prompt[:position], feats[:position], 1, 512)
        tokens, step_feats = np.array([gen.tokenizer.bos_id]), feats[:1]
        decoder.step(tokens, step_feats)
        start = time.perf_counter()
        for _ in range(reps):
            decoder.pos = position  # the same position again: time one step, not a growing context
            decoder.step(tokens, step_feats)
        seconds = (time.perf_counter() - start) / reps
        table.add_row(str(position), f"{seconds * 1e6:.0f}", f"{weights / seconds / 1e9:.0f}")
    console.print(table)


def infill_table(gen: Generator, pieces: int, console: Console) -> None:
    files = sorted(POP909.glob("*.mid"))[:pieces]
    if not files:
        if pieces:
            console.print(f"[yellow]POP909 not found at {POP909}: infill real-time factor skipped[/yellow]")
        return
    rows = []
    for path in files:
        piece = gen.piece(Score(str(path)), "pop")
        beats_per_bar = int(gen.vocab.beats_per_bar[piece.timesig(0)])
        length = HOLE_BEATS // beats_per_bar
        first = piece.bars // 2
        region = Region((first, 0), (first + length, 0))
        result = gen.infill(piece, region, 1, SamplingConfig(top_p=0.95), seed=0)[0]
        music = _tick_to_seconds(piece.original, result.end_tick) - _tick_to_seconds(piece.original, result.start_tick)
        rows.append((path.name, music, result.seconds, result.notes, result.tokens, result.finished))
    table = Table(title=f"infill of {HOLE_BEATS} beats x 3 tracks in POP909 ({len(rows)} songs, numba step, 1 variation)")
    for column in ("song", "music s", "compute s", "real-time factor", "notes", "tokens", "closed"):
        table.add_column(column, justify="right")
    for name, music, compute, notes, tokens, closed in rows:
        table.add_row(name, f"{music:.2f}", f"{compute:.3f}", f"{music / compute:.1f}x", str(notes), str(tokens),
                      "yes" if closed else "cut")
    factors = [music / compute for _, music, compute, *_ in rows]
    table.add_row("median", "", "", f"{statistics.median(factors):.1f}x", "", "", "")
    table.add_row("all songs", f"{sum(r[1] for r in rows):.1f}", f"{sum(r[2] for r in rows):.2f}",
                  f"{sum(r[1] for r in rows) / sum(r[2] for r in rows):.1f}x", "", "", "")
    console.print(table)


def _tick_to_seconds(score: Score, tick: int) -> float:
    """Seconds at ``tick`` under the score's tempo map."""
    tempos = sorted(score.tempos, key=lambda t: t.time) or []
    seconds, last_tick, qpm = 0.0, 0, 120.0
    for tempo in tempos:
        if tempo.time >= tick:
            break
        seconds += (tempo.time - last_tick) / score.ticks_per_quarter * 60 / qpm
        last_tick, qpm = tempo.time, tempo.qpm
    return seconds + (tick - last_tick) / score.ticks_per_quarter * 60 / qpm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pieces", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=140)
    gen = Generator(MODEL)
    speed_table(gen, args.tokens, args.repeats, console)
    step_table(gen, console)
    infill_table(gen, args.pieces, console)


if __name__ == "__main__":
    main()
