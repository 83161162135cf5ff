"""Sampling speed, in notes per second, and the real-time factor of an infill.

1. Free sampling of a new piece (3 tracks, no end before ``--notes`` notes), batch 1 and 8: our
   sampler with the numba backbone step and with the PyTorch decoder, beside ``transformers``'
   ``LlamaForCausalLM.generate`` on the REMI model this one replaces, exported to HF (``--hf``, made
   by ``benchmarks/v1_baseline.py``): its tokens per second over its tokens per note (measured by
   the same script on the same test pieces) are its notes per second. Ours are the notes it
   returns per second, and beside them the notes its sampler wrote per second (``notes drawn``):
   a take whose drums have no backbeat, or heard in another key, is drawn again, where
   ``generate`` only samples.
2. The numba backbone step alone at batch 1: microseconds per note at a short and a long context;
   and the prefill of a 900-position prompt in fp32 and in the runtime's autocast dtype (bf16 where
   the machine has it), which ``make_decoder`` uses. Then (``int8``) what the decoders' int8
   matrices cost: bits per note of test pieces under the model and under its int8 copy.
3. Real-time factor: a 4-bar all-track infill in the middle of each of ``--pieces`` Freedoom test
   arrangements (5-14 tracks with drums), one variation per call, prompt + sampling + splicing: with
   the default piece-aware source (a copy of the song's own bars, when one matches) and sampled,
   after one untimed call that loads the compiled kernels; each fill's fastest of ``--repeats``
   passes over all of them (the same seed: the same notes each time).
4. Refine (the defaults of ``harmonixr refine``: 2 rounds of up to 6 beats, 4 candidates each) of
   ``--pieces`` POP909 test songs, in seconds.

    python benchmarks/sampling.py --hf runs/v1/hf
    python benchmarks/sampling.py --parts infill refine     # only those
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from symusic import Score

from harmonixr.data.corpus import Corpus
from harmonixr.evaluation.compare import build_eval_set
from harmonixr.evaluation.likelihood import Scorer
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Region
from harmonixr.generation.refine import refine
from harmonixr.generation.requests import Result
from harmonixr.runtime import set_threads
from harmonixr.sampling.decoder import int8_matrices
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.tokens.vocab import COLUMNS

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "harmonixr-small"
HOLE_BARS = 4
REFINE_SONGS = 5  # refine takes seconds a song: at most this many
INT8_PIECES = 8  # test pieces per family whose bits are compared under fp32 and int8 matrices
PARTS = ("free", "step", "int8", "infill", "refine")


PREFILL_POSITIONS, PREFILL_REPEATS = 900, 3  # a long infill prompt, timed 3 times


def best_rate(run, repeats: int) -> tuple[float, ...]:  # noqa: ANN001 - () -> counts of items made
    """The counts ``run`` returns per second, in its fastest of ``repeats`` runs (by the first count)."""
    run()  # warm-up (numba compiles on first use)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        made = run()
        rates.append(tuple(count / (time.perf_counter() - start) for count in made))
    return max(rates)


def speed_table(gen: Generator, notes: int, repeats: int, hf: Path | None, console: Console) -> dict:
    cfg = SamplingConfig.unfiltered(max_notes=notes)  # as transformers samples below: no filter

    drawn = [0]  # every note the sampler writes, a take drawn again (its drums without a backbeat) among them
    sample = gen.sampler.generate

    def counted(*args, **kwargs) -> list:  # noqa: ANN002, ANN003 - Sampler.generate's
        outs = sample(*args, **kwargs)
        drawn[0] += sum(len(o.notes) for o in outs)
        return outs

    def ours(backend: str, n: int):  # noqa: ANN202
        gen.sampler.backend = backend
        gen.sampler.weights_changed()  # the decoder (its packed weights) is made once, in the untimed first run

        def run() -> tuple[int, int]:
            drawn[0] = 0
            out = gen.generate([0, 33, -1], "pop", bars=64, tempo=110, n=n, sampling=cfg, seed=0, notes=notes)
            return sum(r.notes for r in out), drawn[0]
        return run

    gen.sampler.generate = counted  # type: ignore[method-assign]

    theirs: dict[int, float] = {}
    per_note = None
    if hf is not None:
        from transformers import LlamaForCausalLM

        llama = LlamaForCausalLM.from_pretrained(hf).eval()
        per_note = json.loads((hf.parent / "v1_baseline.json").read_text())["tokens_per_note"]
        tokens = int(notes * per_note)

        def run_hf(n: int):  # noqa: ANN202
            ids = torch.full((n, 1), 1)

            def run() -> tuple[int]:
                with torch.inference_mode():
                    out = llama.generate(ids, do_sample=True, max_new_tokens=tokens, min_new_tokens=tokens, top_k=0,
                                         top_p=1.0, temperature=1.0, pad_token_id=0)
                return ((out.shape[1] - 1) * n,)
            return run

        theirs = {n: best_rate(run_hf(n), repeats)[0] / per_note for n in (1, 8)}
    table = Table(title=f"a new 3-track piece, {notes} notes per row, {torch.get_num_threads()} threads (notes/s)")
    for column in ("batch", "ours (numba step)", "notes drawn", "ours (PyTorch decoder)",
                   "REMI model, transformers generate", "ours / transformers", "drawn / transformers"):
        table.add_column(column, justify="right")
    rows = {}
    for n in (1, 8):
        (fast, drawn_fast), (slow, _) = best_rate(ours("numba", n), repeats), best_rate(ours("torch", n), repeats)
        other = theirs.get(n)
        rows[n] = {"numba": fast, "numba_drawn": drawn_fast, "torch": slow, "transformers": other}
        table.add_row(str(n), f"{fast:,.0f}", f"{drawn_fast:,.0f}", f"{slow:,.0f}", f"{other:,.0f}" if other else "-",
                      f"{max(fast, slow) / other:.1f}x" if other else "-", f"{drawn_fast / other:.1f}x" if other else "-")
    gen.sampler.generate = sample  # type: ignore[method-assign]
    gen.sampler.backend = "auto"
    gen.sampler.weights_changed()
    console.print(table)
    if per_note:
        console.print(f"(the REMI model writes {per_note:.2f} tokens per note on the test pieces)")
    return rows


def step_table(gen: Generator, console: Console, reps: int = 300) -> dict:
    """The numba backbone step alone at batch 1: microseconds per note at a short and a long context."""
    from harmonixr.runtime import autocast_dtype
    from harmonixr.sampling.decoder import NumbaDecoder, prefill

    decoder = NumbaDecoder(gen.model)
    matrices = [w for k, w in decoder.weights.items() if isinstance(w, tuple)]  # (int8 values, scales)
    weights = sum(q.nbytes + scale.nbytes for q, scale in matrices)
    table = Table(title=f"numba backbone step alone, batch 1 ({weights / 2**20:.1f} MiB of weight matrices per note)")
    for column in ("position", "us per note", "weights read GB/s"):
        table.add_column(column, justify="right")
    rows = np.zeros((1000, len(COLUMNS)), dtype=np.int64)
    out = {}
    for position in (1, 1000):
        decoder.start(rows[:position], 1, gen.max_len)
        decoder.step(rows[:1])
        start = time.perf_counter()
        for _ in range(reps):
            decoder.pos = position  # the same position again: time one step, not a growing context
            decoder.step(rows[:1])
        seconds = (time.perf_counter() - start) / reps
        out[position] = seconds
        table.add_row(str(position), f"{seconds * 1e6:.0f}", f"{weights / seconds / 1e9:.0f}")
    console.print(table)
    cpu = torch.device("cpu")
    for name, dtype in (("fp32", None), ("auto", autocast_dtype("auto", cpu))):
        prefill(gen.model, rows[:PREFILL_POSITIONS], gen.max_len, dtype)  # warm
        start = time.perf_counter()
        for _ in range(PREFILL_REPEATS):
            prefill(gen.model, rows[:PREFILL_POSITIONS], gen.max_len, dtype)
        out[f"prefill_{name}"] = (time.perf_counter() - start) / PREFILL_REPEATS
        console.print(f"prefill of {PREFILL_POSITIONS} positions, {dtype or 'fp32'}: {out[f'prefill_{name}']:.3f} s")
    return out


def rounding_table(gen: Generator, data: str, pieces: int, console: Console) -> dict:
    """What the decoders' int8 matrices cost: bits per note of the test pieces' plain windows (up to
    ``pieces`` per family), under the model and under its copy with int8 matrices, in fp32."""
    try:
        corpus = Corpus([data])
    except FileNotFoundError:
        console.print(f"[yellow]{data} not prepared: the int8 matrices' bits are skipped[/yellow]")
        return {}
    evalset = build_eval_set(corpus, "test", gen.max_len, holes_per_piece=0, max_pieces=pieces)
    labels = [source for source, _ in evalset.plain_labels]
    scorer = Scorer(corpus.vocab)
    bits = {name: {k: t.per_note()["bits_per_note"] for k, t in scorer.score(model, evalset.plain, labels).items()}
            for name, model in (("fp32", gen.model), ("int8", int8_matrices(gen.model)))}
    table = Table(title=f"bits per note of the test pieces ({pieces} per family), the model's matrices fp32 and int8")
    for column in ("source", "fp32", "int8 (the decoders')", "difference"):
        table.add_column(column, justify="right")
    for source in sorted(bits["fp32"]):
        a, b = bits["fp32"][source], bits["int8"][source]
        table.add_row(source, f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}")
    console.print(table)
    return bits


def test_rows(data: str, source: str, count: int, console: Console, what: str) -> list[dict]:
    """The first ``count`` test pieces of ``source`` in ``data`` (none, said, when it is not prepared)."""
    try:
        corpus = Corpus([data])
    except FileNotFoundError:
        console.print(f"[yellow]{data} not prepared: {what} is skipped[/yellow]")
        return []
    return [r for _, r in corpus.rows("test") if r["source"] == source][:count]


def infill_table(gen: Generator, data: str, pieces: int, repeats: int, console: Console) -> dict:
    rows = test_rows(data, "freedoom", pieces, console, "the infill real-time factor")
    holes = []
    for row in rows:
        piece = gen.piece(Score(row["path"]), row["style"])
        first = piece.bars // 2
        holes.append((Path(row["path"]).name, piece, Region((first, 0), (first + HOLE_BARS, 0))))
    if holes:  # warm-up, untimed: the first call loads the compiled kernels (a server does it once)
        gen.infill(holes[0][1], holes[0][2], 1, SamplingConfig(), seed=1, source="sampled")
    # Each fill's fastest of ``repeats`` passes over all of them: the machine's speed varies from
    # pass to pass (and a pass never asks for one fill twice in a row, so no prompt is reused).
    best: dict[tuple[int, str], float] = {}
    made: dict[tuple[int, str], Result] = {}
    for _ in range(repeats):
        for k, (_, piece, region) in enumerate(holes):
            for source in ("piece", "sampled"):
                made[(k, source)] = gen.infill(piece, region, 1, SamplingConfig(), seed=0, source=source)[0]
                best[(k, source)] = min(best.get((k, source), np.inf), made[(k, source)].seconds)
    results = []
    for k, (name, piece, _) in enumerate(holes):
        result = made[(k, "sampled")]
        music = seconds_at(piece.original, result.end_tick) - seconds_at(piece.original, result.start_tick)
        results.append((name, len(piece.slots), music, best[(k, "piece")], best[(k, "sampled")],
                        result.notes, result.finished, result.details.get("resampled", 0)))
    if not results:
        console.print("[yellow]no Freedoom test pieces: the infill real-time factor is skipped[/yellow]")
        return {}
    table = Table(title=f"infill of {HOLE_BARS} bars, every track, of Freedoom test arrangements (numba step, 1 variation)")
    for column in ("piece", "tracks", "music s", "piece-aware s", "factor", "sampled s", "factor", "sampled notes",
                   "closed", "drawn again"):
        table.add_column(column, justify="right")
    for name, tracks, music, aware, sampled, notes, closed, again in results:
        table.add_row(name, str(tracks), f"{music:.2f}", f"{aware:.3f}", f"{music / aware:.1f}x", f"{sampled:.3f}",
                      f"{music / sampled:.1f}x", str(notes), "yes" if closed else "cut", str(again))
    aware_factors = [music / aware for _, _, music, aware, *_ in results]
    sampled_factors = [music / sampled for _, _, music, _, sampled, *_ in results]
    table.add_row("median", "", "", "", f"{statistics.median(aware_factors):.1f}x", "",
                  f"{statistics.median(sampled_factors):.1f}x", "", "", "")
    console.print(table)
    return {"median_real_time_factor_piece_aware": statistics.median(aware_factors),
            "median_real_time_factor_sampled": statistics.median(sampled_factors), "pieces": len(results),
            "drawn_again": sum(r[-1] for r in results)}


def refine_table(gen: Generator, data: str, pieces: int, console: Console) -> dict:
    rows = test_rows(data, "pop909", pieces, console, "refine")
    table = Table(title="refine of POP909 test songs (2 rounds, up to 6 beats each, 4 candidates a beat)")
    for column in ("song", "bars", "notes", "seconds", "beats rewritten", "bits per note by round"):
        table.add_column(column, justify="right")
    seconds = []
    for row in rows:
        piece = gen.piece(Score(row["path"]), row["style"])
        result = refine(gen, piece)
        seconds.append(result.seconds)
        table.add_row(Path(row["path"]).name, str(piece.bars), str(len(piece.notes)), f"{result.seconds:.1f}",
                      str(result.details["beats_rewritten"]),
                      " -> ".join(f"{b:.2f}" for b in result.details["bits_per_note"]))
    if not seconds:
        return {}
    table.add_row("median", "", "", f"{statistics.median(seconds):.1f}", "", "")
    console.print(table)
    return {"median_seconds": statistics.median(seconds), "songs": len(seconds)}


def seconds_at(score: Score, tick: int) -> float:
    """Seconds at ``tick`` under the score's tempo map."""
    seconds, last_tick, qpm = 0.0, 0, 120.0
    for tempo in sorted(score.tempos, key=lambda t: t.time):
        if tempo.time >= tick:
            break
        seconds += (tempo.time - last_tick) / score.ticks_per_quarter * 60 / qpm
        last_tick, qpm = tempo.time, tempo.qpm
    return seconds + (tick - last_tick) / score.ticks_per_quarter * 60 / qpm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--notes", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pieces", type=int, default=10)
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--hf", type=Path, help="the REMI model exported to HF (benchmarks/v1_baseline.py)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="the sections to run")
    parser.add_argument("--out", default="results/sampling.json")
    args = parser.parse_args()
    set_threads(args.threads)
    console = Console(width=160)
    gen = Generator(MODEL)
    runs = {"free": lambda: speed_table(gen, args.notes, args.repeats, args.hf, console),
            "step": lambda: step_table(gen, console), "int8": lambda: rounding_table(gen, args.data, INT8_PIECES, console),
            "infill": lambda: infill_table(gen, args.data, args.pieces, args.repeats, console),
            "refine": lambda: refine_table(gen, args.data, min(args.pieces, REFINE_SONGS), console)}
    out = Path(args.out)
    numbers = json.loads(out.read_text()) if out.exists() else {}  # a section run alone keeps the others' figures
    numbers.update({part: runs[part]() for part in args.parts})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(numbers, indent=1, default=str))


if __name__ == "__main__":
    main()
