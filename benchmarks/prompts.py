"""Text prompts, end to end: 20 prompts -> what the rules read in them -> what the generated pieces do.

Each prompt goes through :func:`harmonixr.generation.text.parse_prompt` and then ``generate`` with
the same settings the CLI's ``harmonixr generate --prompt`` uses (style, tempo, instruments,
density and loudness controls, the key's scale, per-instrument loudness). The table puts the
asked values beside the achieved ones of the written piece: tempo (bpm of the file), mean
velocity, notes per bar, the estimated mode, and the instruments playing.

    python benchmarks/prompts.py models/harmonixr-small --bars 8
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.generation.modes import Generator
from harmonixr.generation.postprocess import estimate_key
from harmonixr.generation.requests import MusicRules
from harmonixr.generation.text import parse_prompt, prompt_key, set_track_loudness

PROMPTS = (
    "sad slow jazz piano, sparse, loud drums",
    "happy fast celtic tune with flute",
    "120 bpm rock with loud guitar and quiet bass in e minor",
    "very quiet piano piece, very slow",
    "busy funk with bass and drums, loud",
    "gentle folk song for guitar in g major",
    "dark slow strings, very sparse",
    "fast hiphop drums and bass, very loud",
    "cheerful pop with piano and bass, moderate",
    "melancholic chorale for choir",
    "very fast latin percussion and piano",
    "bright baroque organ, dense",
    "soft jazz with sax and bass, 90 bpm",
    "loud punk with electric guitar, bass and drums, very fast",
    "quiet classical violin and cello in d minor",
    "reggae with guitar, bass and drums, slow",
    "gloomy game music with synth and drums",
    "joyful country guitar, quick",
    "sparse blues piano, 70 bpm, minor",
    "dense romantic piano, loud",
)
DEFAULT_TEMPO = 110.0
DEFAULT_INSTRUMENTS = (0,)


def achieved(score) -> dict:  # noqa: ANN001 - a symusic Score
    notes = [n for t in score.tracks for n in t.notes]
    bars = max(score.end() / (4 * score.ticks_per_quarter), 1e-9)
    programs = sorted({-1 if t.is_drum else t.program for t in score.tracks if t.notes})
    return {"tempo": round(float(score.tempos[0].qpm), 1) if len(score.tempos) else None,
            "mean_velocity": float(np.mean([n.velocity for n in notes])) if notes else None,
            "notes_per_bar": len(notes) / bars, "mode": estimate_key(score).mode if notes else None,
            "instruments": programs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/prompts.json")
    args = parser.parse_args()
    console = Console(width=220)
    began = time.perf_counter()
    gen = Generator(args.checkpoint)
    rows = []
    for k, text in enumerate(PROMPTS):
        parsed = parse_prompt(text, gen.vocab.styles)
        key = prompt_key(parsed)
        controls = {name: value for name, value in (("density", parsed.density), ("loudness", parsed.loudness))
                    if value is not None}
        rules = MusicRules.in_key(key) if key else MusicRules()
        programs = parsed.instruments or list(DEFAULT_INSTRUMENTS)
        result = gen.generate(programs, parsed.style or "unknown", args.bars, parsed.tempo or DEFAULT_TEMPO,
                              controls=controls, seed=args.seed + k, rules=rules)[0]
        result = replace(result, score=set_track_loudness(result.score, parsed))
        rows.append({"prompt": text, "read": parsed.summary(),
                     "asked": {"style": parsed.style, "tempo": parsed.tempo, "mode": parsed.mode,
                               "density": parsed.density, "loudness": parsed.loudness, "instruments": programs,
                               "per_instrument": parsed.per_instrument},
                     "achieved": achieved(result.score)})
    table = Table(title=f"{len(PROMPTS)} prompts -> parsed -> achieved ({args.bars} bars each, "
                        f"{time.perf_counter() - began:.0f} s)", show_lines=True)
    for column in ("prompt", "style", "tempo asked/got", "mode asked/got", "notes per bar asked/got",
                   "velocity asked/got", "instruments asked/got", "not understood"):
        table.add_column(column)
    fmt = lambda v: "-" if v is None else (f"{v:.0f}" if isinstance(v, float) else str(v))  # noqa: E731
    for row in rows:
        a, g = row["asked"], row["achieved"]
        unknown = row["read"].split("not understood: ")[1] if "not understood" in row["read"] else ""
        table.add_row(row["prompt"], fmt(a["style"]), f"{fmt(a['tempo'])} / {fmt(g['tempo'])}",
                      f"{fmt(a['mode'])} / {fmt(g['mode'])}", f"{fmt(a['density'])} / {g['notes_per_bar']:.1f}",
                      f"{fmt(a['loudness'])} / {fmt(g['mean_velocity'])}",
                      f"{a['instruments']} / {g['instruments']}", unknown)
    console.print(table)
    asked_modes = [(r["asked"]["mode"], r["achieved"]["mode"]) for r in rows if r["asked"]["mode"]]
    dens = [(r["asked"]["density"], r["achieved"]["notes_per_bar"]) for r in rows if r["asked"]["density"]]
    loud = [(r["asked"]["loudness"], r["achieved"]["mean_velocity"]) for r in rows if r["asked"]["loudness"]]
    summary = {"prompts": len(rows),
               "tempo_exact": sum(r["asked"]["tempo"] is None or r["asked"]["tempo"] == r["achieved"]["tempo"]
                                  for r in rows) / len(rows),
               "mode_agrees": sum(a == b for a, b in asked_modes) / max(len(asked_modes), 1),
               "density_r": float(np.corrcoef(*zip(*dens))[0, 1]) if len(dens) > 2 else None,
               "loudness_r": float(np.corrcoef(*zip(*loud))[0, 1]) if len(loud) > 2 else None,
               "instruments_all_present": sum(set(r["asked"]["instruments"]) <= set(r["achieved"]["instruments"])
                                              for r in rows) / len(rows)}
    console.print(summary)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"checkpoint": args.checkpoint, "summary": summary, "rows": rows}, indent=1))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
