"""What the music after a hole is worth when the model writes the hole: bits of the true hole's notes
under the prompts generation builds, on the held-out holes of ``harmonixr evaluate`` (section 2).

Each hole's original notes (as a fill: its bars and notes, the tempo left out) are scored under
three views of the piece, each prompt made by the :class:`Generator` call that would write the hole:

- ``both sides``: ``Generator.infill`` (the bars before and after the hole, hole marked, then ``Infill_Fill``);
- ``left, fill``: the same with the piece cut at the hole's end (an open hole: no music after it);
- ``continue``: ``Generator.continue_`` from the hole's first bar (a plain window of the bars before).

and under log-linear mixtures of a fill view with the continuation, p ∝ p_fill^a · p_continue^(1-a)
(the continuation's ``Bar`` standing for the fill's end). Bits per note are split by what the
tokens say; ``pitch+position`` (where notes start and which pitches) is what infill F1 counts.
Pairs are per hole (mean difference ± standard error). Writes ``--out`` as JSON.

    python benchmarks/infill_views.py models/harmonixr-small runs/infill/best
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from harmonixr.data.events import BAR, NOTE, render
from harmonixr.evaluation.infill_quality import Hole
from harmonixr.evaluation.report import infill_holes
from harmonixr.generation.modes import Generator, PromptLog
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.training.batches import Corpus
from harmonixr.training.examples import Hole as Span
from infill_quality import holes_parser  # benchmarks/, beside this script

GROUPS = {"pitch+position": ("Pitch", "PitchDrum", "Position"), "velocity": ("Velocity",),
          "duration": ("Duration",), "track": ("Program",)}
ALPHAS = (0.25, 0.5, 0.75)  # weights of the fill view in the mixtures
ONE_TOKEN = SamplingConfig(max_tokens=1)  # the prompt is what is wanted, not the sample


def log_probs(gen: Generator, prompt: list[int], seg: list[int], bar0: int) -> np.ndarray:
    """(len(seg), V) log-probabilities the model gives each position of ``seg`` after ``prompt``."""
    ids = prompt + seg
    feats = torch.from_numpy(gen.structure.features(ids, bar0))[None]  # (1, T, F)
    with torch.inference_mode():
        logits = gen.model(torch.tensor([ids]), feats)[0].float()  # (T, V)
    return torch.log_softmax(logits, -1)[len(prompt) - 1 : len(ids) - 1].numpy()


def views(gen: Generator, hole: Hole, log: PromptLog) -> dict[str, tuple[list[int], int]]:
    """The three prompts of a hole and their first bars: ``{view: (prompt, bar0)}``."""
    piece, end = hole.piece, hole.first_bar + hole.bars
    out = {}
    gen.infill(piece, hole.region, 1, ONE_TOKEN)
    out["both sides"] = log.prompts[-1]
    cut = replace(piece.copy(), events=[e for e in piece.events if e.bar < end])
    gen.infill(cut, hole.region, 1, ONE_TOKEN)
    out["left, fill"] = log.prompts[-1]
    gen.continue_(piece, bars=hole.bars, after_bar=hole.first_bar, n=1, sampling=ONE_TOKEN)
    out["continue"] = log.prompts[-1]
    return out


def score_hole(gen: Generator, hole: Hole, log: PromptLog) -> dict[str, dict[str, float]] | None:
    """Bits per group of the hole's notes under each view and mixture (None if it does not fit)."""
    v, span = gen.vocab, Span((hole.first_bar, 0), (hole.first_bar + hole.bars, 0))
    fill = [e for e in hole.piece.events
            if span.contains(e) or (e.kind == BAR and hole.first_bar <= e.bar < hole.first_bar + hole.bars)]
    seg = render(v, fill)  # what a fill writes before Infill_End (and a continuation, tempo aside)
    prompts = views(gen, hole, log)
    if max(len(p) for p, _ in prompts.values()) + len(seg) > gen.max_len:
        return None
    lp = {name: log_probs(gen, prompt, seg, bar0) for name, (prompt, bar0) in prompts.items()}
    for fill_view in ("both sides", "left, fill"):
        for a in ALPHAS:
            mix = a * lp[fill_view] + (1 - a) * lp["continue"]
            lp[f"{a:g} {fill_view} + {1 - a:g} continue"] = mix - np.logaddexp.reduce(mix, -1, keepdims=True)
    y = np.asarray(seg)
    family = np.asarray(v.family)[y]
    out = {}
    for name, table in lp.items():
        bits = -table[np.arange(len(y)), y] / math.log(2)
        out[name] = {group: float(bits[np.isin(family, kinds)].sum()) for group, kinds in GROUPS.items()}
    out["notes"] = {"notes": float(sum(e.kind == NOTE for e in fill))}
    return out


def main() -> None:
    args = holes_parser(__doc__, "results/infill-views.json").parse_args()
    console, corpus, results = Console(width=160), Corpus([args.data]), {}
    for checkpoint in args.checkpoints:
        gen, log = Generator(checkpoint), PromptLog()
        gen.recorder = log
        holes = infill_holes(corpus, args.split, args.pieces, gen.vocab, np.random.default_rng(args.seed))
        scored = [s for s in (score_hole(gen, h, log) for h in holes) if s is not None]
        notes = np.array([s["notes"]["notes"] for s in scored])
        table = Table(title=f"{checkpoint}: bits per note of the true hole, {len(scored)} of {len(holes)} holes")
        for column in ("view", *GROUPS, "pitch+position vs continue"):
            table.add_column(column, justify="left" if column == "view" else "right")
        rows = []
        for name in (k for k in scored[0] if k != "notes"):
            per_note = {g: float(sum(s[name][g] for s in scored) / notes.sum()) for g in GROUPS}
            diff = np.array([s[name]["pitch+position"] - s["continue"]["pitch+position"] for s in scored])
            diff /= np.maximum(notes, 1)
            se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
            rows.append({"view": name, **per_note, "vs_continue": float(diff.mean()), "vs_continue_se": se})
            table.add_row(name, *(f"{per_note[g]:.3f}" for g in GROUPS), f"{diff.mean():+.3f} ± {se:.3f}")
        console.print(table)
        results[checkpoint] = {"holes": len(scored), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
