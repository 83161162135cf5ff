"""The drums of new pieces: which sounds they play, against their style's drum parts in the training data.

New pieces of ``--bars`` bars in each of ``--styles``, for each set of ``--parts`` (GM programs, -1:
the drums), ``--variations`` each from ``--seeds``, are written with the drums free (any drum
sound), and held to the style's kit (``data.stats.drum_kits``: the sounds its drum parts play, up
to 98% of their notes) with each of ``--leans`` (``surroundings.KIT_LEAN``: nats x the log of a
sound's share against the most played one's). Per setting, the table prints:

- the total variation distance between the drum sounds' shares and the style kit's (0: the same
  mix of sounds; 1: none in common), mean over pieces;
- the share of drum notes outside the kit (a cowbell in a rock kit);
- the share of the bars where the drums play that hold a kick (GM 35-36) and a snare (37-40): the
  backbeat of a kit, whose share in the training data's drum parts (``--data``, the train split)
  is the last row;
- the three sounds played most, all pieces together.

    python benchmarks/drum_kits.py --leans 0,0.5,1,1.5 --seeds 0,1
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from symusic import Score

from harmonixr.data.corpus import Corpus
from harmonixr.generation import surroundings
from harmonixr.generation.modes import Generator
from harmonixr.tokens.notes import BAR, PITCH, TRACK

KICKS, SNARES = frozenset({35, 36}), frozenset({37, 38, 39, 40})


def drum_notes(score: Score) -> list[tuple[int, int]]:
    """(bar, GM drum sound) of every drum note of ``score`` (4/4 bars: new pieces are written in it)."""
    bar = 4 * score.ticks_per_quarter
    return [(n.time // bar, n.pitch) for t in score.tracks if t.is_drum for n in t.notes]


def backbeat(notes: list[tuple[int, int]]) -> float:
    """The share of the bars where the drums play that hold a kick and a snare (0: no drum note)."""
    played: dict[int, set[int]] = {}
    for bar, sound in notes:
        played.setdefault(bar, set()).add(sound)
    return float(np.mean([bool(s & KICKS) and bool(s & SNARES) for s in played.values()])) if played else 0.0


def distance(sounds: Counter, kit: dict[int, float]) -> float:
    """Total variation distance between the shares of ``sounds`` and the kit's (renormalized)."""
    total, kit_total = sum(sounds.values()), sum(kit.values())
    return 0.5 * sum(abs(sounds[s] / total - kit.get(s, 0.0) / kit_total) for s in set(sounds) | set(kit))


def corpus_backbeat(folder: str) -> float:
    """:func:`backbeat` of the training split's drum parts, mean over parts."""
    corpus = Corpus([folder])
    shares = []
    for shards, row in corpus.rows("train"):
        if row["drums"]:
            notes = shards.notes(row)
            drums = notes[notes[:, TRACK] == corpus.vocab.drum_slot]
            if len(drums):
                shares.append(backbeat(list(map(tuple, drums[:, [BAR, PITCH]].tolist()))))
    return float(np.mean(shares))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="models/harmonixr-small")
    parser.add_argument("--data", default="data/corpus-all", help="the training data's backbeat row (skipped if absent)")
    parser.add_argument("--styles", default="rock,funk,jazz,hiphop,latin,pop,game")
    parser.add_argument("--parts", default="-1 33 0;-1 33 25 48", help="sets of GM programs, ';' apart")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--variations", type=int, default=4)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--leans", default="0,0.5,1,1.5")
    args = parser.parse_args()
    gen = Generator(args.checkpoint)
    kits = dict(gen.drum_kits)
    settings: list[tuple[str, float | None]] = [("free", None), *((f"kit, lean {x}", float(x)) for x in args.leans.split(","))]
    table = Table(title=f"drums of new {args.bars}-bar pieces ({args.styles}; parts {args.parts}; seeds {args.seeds})")
    for column in ("drums", "pieces", "distance to the style's kit", "notes outside it", "bars with kick and snare",
                   "most played"):
        table.add_column(column, justify="left" if column in ("drums", "most played") else "right")
    for name, lean in settings:
        gen.drum_kits = kits if lean is not None else {}
        surroundings.KIT_LEAN = lean or 0.0
        far, outside, beats, every = [], [], [], Counter()
        for style in args.styles.split(","):
            kit = dict(kits.get(style, kits[""]))
            for parts in args.parts.split(";"):
                for seed in (int(s) for s in args.seeds.split(",")):
                    for result in gen.generate([int(p) for p in parts.split()], style, args.bars, n=args.variations,
                                               seed=seed):
                        notes = drum_notes(result.score)
                        sounds = Counter(s for _, s in notes)
                        every.update(sounds)
                        far.append(distance(sounds, kit))
                        outside.append(sum(c for s, c in sounds.items() if s not in kit) / max(len(notes), 1))
                        beats.append(backbeat(notes))
        top = ", ".join(f"{s} ({c / sum(every.values()):.0%})" for s, c in every.most_common(3))
        table.add_row(name, str(len(far)), f"{np.mean(far):.3f}", f"{np.mean(outside):.3f}", f"{np.mean(beats):.3f}", top)
    if Path(args.data).exists():
        table.add_row("the training data's drum parts", "", "", "", f"{corpus_backbeat(args.data):.3f}", "")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
