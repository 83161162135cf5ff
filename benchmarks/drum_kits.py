"""The drums of new pieces: which sounds they play, against their style's drum parts in the training data.

New pieces of ``--bars`` bars in each of ``--styles``, for each set of ``--parts`` (GM programs, -1:
the drums), ``--variations`` each from ``--seeds``, are written with the drums free (any drum
sound), and held to the style's kit (``data.stats.drum_kits``: the sounds its drum parts play, up
to 98% of their notes) with each of ``--leans`` (``drums.KIT_LEAN``: nats x the log of a
sound's share against the most played one's). Per setting, the table prints:

- the total variation distance between the drum sounds' shares and the style kit's (0: the same
  mix of sounds; 1: none in common), mean over pieces;
- the share of drum notes outside the kit (a cowbell in a rock kit);
- the share of the bars where the drums play that hold a kick (GM 35-36) and a snare (37-40): the
  backbeat of a kit, whose share in the training data's drum parts (``--data``, the train split)
  is the last row;
- the share of the 4/4 bars with a snare on beat 2 and on beat 4 (a grid step either way), and
  of those where the hi-hat and the ride both keep time (3 hits or more each);
- the three sounds played most, all pieces together;
- their velocities: the mean, the spread within a part, the share at 120 or more, and the share of
  notes at the velocity of the note before (``--free-repeats``: each groove setting also without
  the style's velocity repeats held, ``data.stats.drum_repeats``).

A second table prints the bars with a snare on 2 and 4 style by style, against the training
data's drum parts of each style; a third, the phrases the drums mark: the share of the last bars of
the phrases (of :data:`PHRASE_BARS` bars, from the first) with a tom, and of the other bars; the
share of the phrases' first bars with a crash on the downbeat, and of the other bars. With
``--songs N``, a fourth table: the drums of up to N Freedoom songs of ``--split`` removed and
added back over bars 9-16 (``add-track --program -1``, 2 variations) at each setting with a kit
(a groove setting's first weight as ``drums.ADDED_FIRST_LEAN``), against the song's own drums
there: the share of bars with a kick and a snare, the most played sound's share of the drum notes
(a part on one sound: 1), the note F1 of the added drums against the song's own (onset on the
grid and sound) and the velocity error on the hits both play.

With ``--pop909 N``, a fifth: drums added under up to N POP909 songs of ``--split`` (which have
none) over bars 9-16 of their files (2 variations), at each setting with a kit: drum notes a take,
the share of toms and of crash, china and splash cymbals, and by spans of four beats from the
song's start (most POP909 files are notated in 2/4 or 1/4) the share with a kick and a snare and
with a snare on beats 2 and 4.

    python benchmarks/drum_kits.py --leans 0,0.5,1,1.5 --seeds 0,1
    python benchmarks/drum_kits.py --leans 0.5 --seeds 0,1 --songs 11
    python benchmarks/drum_kits.py --leans "" --grooves 2:1:4:1.5 --variations 1 --pop909 12
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
from rich.console import Console
from rich.table import Table
from symusic import Score

from harmonixr.data.corpus import Corpus
from harmonixr.data.stats import LOUD
from harmonixr.generation import drums
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Region
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK, VEL


def grid_cells(score: Score, grid: int) -> list[tuple[int, int, int]]:
    """(bar, grid position, GM drum sound) of every drum note of ``score`` (4/4 bars), ``grid`` a quarter."""
    bar, tick = 4 * score.ticks_per_quarter, score.ticks_per_quarter / grid
    return [(n.time // bar, round((n.time % bar) / tick), n.pitch) for t in score.tracks if t.is_drum for n in t.notes]


def drum_notes(score: Score) -> list[tuple[int, int]]:
    """(bar, GM drum sound) of every drum note of ``score`` (4/4 bars: new pieces are written in it)."""
    bar = 4 * score.ticks_per_quarter
    return [(n.time // bar, n.pitch) for t in score.tracks if t.is_drum for n in t.notes]


def backbeat(notes: list[tuple[int, int]]) -> float:
    """The share of the bars where the drums play that hold a kick and a snare (0: no drum note)."""
    played: dict[int, set[int]] = {}
    for bar, sound in notes:
        played.setdefault(bar, set()).add(sound)
    return float(np.mean([drums.has_backbeat(s) for s in played.values()])) if played else 0.0


def two_and_four(cells: list[tuple[int, int, int]], grid: int) -> float:
    """The share of the 4/4 bars where the drums play (``cells``: bar, grid position, sound; ``grid``
    positions a quarter) with a snare (GM 37-40) on beat 2 and on beat 4, a grid step either way."""
    played: dict[int, set[int]] = {}
    for bar, position, sound in cells:
        hit = played.setdefault(bar, set())
        hit |= {beat for beat in (1, 3) if sound in drums.SNARES and abs(position - beat * grid) <= 1}
    return float(np.mean([len(beats) == 2 for beats in played.values()])) if played else 0.0


def both_keep_time(notes: list[tuple[int, int]]) -> float:
    """The share of the bars where the drums play in which the hi-hat and the ride both keep time
    (:data:`~harmonixr.generation.drums.TIMEKEEPERS`: each played :data:`KEEPING` times or more)."""
    played: dict[int, list[int]] = {}
    for bar, sound in notes:
        hits = played.setdefault(bar, [0] * len(drums.TIMEKEEPERS))
        for k, family in enumerate(drums.TIMEKEEPERS):
            hits[k] += sound in family
    return float(np.mean([min(hits) >= KEEPING for hits in played.values()])) if played else 0.0


KEEPING = 3
PHRASE_BARS = 4  # a phrase's bars, from bar 0 (phrase_marks)
TOMS = frozenset({41, 43, 45, 47, 48, 50})  # GM toms
CRASHES = frozenset({49, 52, 55, 57})  # GM crash, Chinese and splash cymbals


def phrase_marks(cells: list[tuple[int, int, int]]) -> np.ndarray:
    """(4, 2) of the 4/4 bars where the drums play (``cells``: bar, grid position, sound): the last
    bars of the phrases (of :data:`PHRASE_BARS` bars from bar 0) with a tom and their number, the
    other bars with a tom and theirs, the phrases' first bars with a crash on the downbeat and
    theirs, the other bars with one and theirs."""
    played: dict[int, set[str]] = {}
    for bar, position, sound in cells:
        hit = played.setdefault(bar, set())
        hit |= {"tom"} if sound in TOMS else {"crash"} if sound in CRASHES and position == 0 else set()
    counts = np.zeros((4, 2))
    for bar, hit in played.items():
        counts[0 if bar % PHRASE_BARS == PHRASE_BARS - 1 else 1] += ("tom" in hit, 1)
        counts[2 if bar % PHRASE_BARS == 0 else 3] += ("crash" in hit, 1)
    return counts


def distance(sounds: Counter, kit: dict[int, float]) -> float:
    """Total variation distance between the shares of ``sounds`` and the kit's (renormalized)."""
    total, kit_total = sum(sounds.values()), sum(kit.values())
    return 0.5 * sum(abs(sounds[s] / total - kit.get(s, 0.0) / kit_total) for s in set(sounds) | set(kit))


def corpus_drums(folder: str, styles: set[str]) -> tuple[list[str], dict[str, float], np.ndarray]:
    """:func:`backbeat`, :func:`two_and_four` and :func:`both_keep_time` of the training split's drum
    parts of ``styles`` (mean over parts), then no sounds, then their :func:`velocities`;
    :func:`two_and_four` by style; and their :func:`phrase_marks`, summed."""
    corpus = Corpus([folder])
    four = corpus.vocab.meter_id[(4, 4)]
    shares, snares, keepers, loud, by_style, marks = [], [], [], [], {}, np.zeros((4, 2))
    for shards, row in corpus.rows("train"):
        if row["drums"] and row["style"] in styles:
            notes = shards.notes(row)
            part = notes[notes[:, TRACK] == corpus.vocab.drum_slot]
            if len(part):
                shares.append(backbeat(list(map(tuple, part[:, [BAR, PITCH]].tolist()))))
                in_four = part[shards.bars(row)[part[:, BAR], 0] == four]
                if len(in_four):
                    cells = list(map(tuple, in_four[:, [BAR, POS, PITCH]].tolist()))
                    snares.append(two_and_four(cells, corpus.vocab.grid))
                    by_style.setdefault(row["style"], []).append(snares[-1])
                    marks += phrase_marks(cells)
                keepers.append(both_keep_time(list(map(tuple, part[:, [BAR, PITCH]].tolist()))))
                loud.append(part[:, VEL].tolist())
    return ([f"{np.mean(shares):.3f}", f"{np.mean(snares):.3f}", f"{np.mean(keepers):.3f}", "", *velocities(loud)],
            {style: float(np.mean(found)) for style, found in by_style.items()}, marks)


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
    parser.add_argument("--grooves", default="", help="groove:accent[:timekeeper[:first]] weights of the style's "
                        "groove (drums.STYLE_GROOVE_LEAN, STYLE_ACCENT, TIMEKEEPER_LEAN, FIRST_LEAN, in the songs' "
                        "table ADDED_FIRST_LEAN: the shipped one where not given), each a row at the shipped kit lean")
    parser.add_argument("--free-repeats", action="store_true", help="each groove setting also with velocity "
                        "repeats free (no data.stats.drum_repeats)")
    parser.add_argument("--songs", type=int, default=0, help="Freedoom songs whose drums are added back")
    parser.add_argument("--pop909", type=int, default=0, help="POP909 songs that get drums added")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    gen = Generator(args.checkpoint)
    kits = dict(gen.drum_kits)
    shipped = drums.KIT_LEAN, drums.STYLE_GROOVE_LEAN, drums.STYLE_ACCENT, drums.TIMEKEEPER_LEAN, drums.FIRST_LEAN
    added_first = drums.ADDED_FIRST_LEAN
    grooves = [(*(parts := x.split(":")), *(f"{w:g}" for w in shipped[len(parts) + 1 :]))[:4]
               for x in args.grooves.split(",") if x]
    settings = [Setting("free", None), *(Setting(f"kit, lean {x}", float(x)) for x in args.leans.split(",") if x),
                *(Setting(f"kit {shipped[0]:g}, groove {g}, accent {a}, timekeeper {t}, first {f}"
                          f"{'' if held else ', repeats free'}", shipped[0], float(g), float(a), held, float(t), float(f))
                  for g, a, t, f in grooves for held in ((True, False) if args.free_repeats else (True,)))]
    table = Table(title=f"drums of new {args.bars}-bar pieces ({args.styles}; parts {args.parts}; seeds {args.seeds})")
    for column in ("drums", "pieces", "distance to the style's kit", "notes outside it", "bars with kick and snare",
                   "bars with a snare on 2 and 4", "bars with hi-hat and ride", "most played", "mean velocity",
                   "velocity spread", "at 120 or more",
                   "velocity repeats"):
        table.add_column(column, justify="left" if column in ("drums", "most played") else "right")
    repeats = dict(gen.drum_repeats)
    styles = args.styles.split(",")
    by_style: dict[str, dict[str, list[float]]] = {}  # setting -> style -> each piece's bars with a snare on 2 and 4
    marks: dict[str, np.ndarray] = {}  # setting -> summed phrase_marks
    for name, lean, groove, accent, held, keeper, first in settings:
        gen.drum_kits = kits if lean is not None else {}
        gen.drum_repeats = repeats if held else {}
        drums.KIT_LEAN, drums.STYLE_GROOVE_LEAN, drums.STYLE_ACCENT, drums.TIMEKEEPER_LEAN, drums.FIRST_LEAN = (
            lean or 0.0, groove, accent, keeper, first)
        far, outside, beats, snares, keepers, every, loud = [], [], [], [], [], Counter(), []
        for style in styles:
            kit = dict(kits.get(style, kits[""]))
            for parts in args.parts.split(";"):
                for seed in (int(s) for s in args.seeds.split(",")):
                    for result in gen.generate([int(p) for p in parts.split()], style, args.bars, n=args.variations,
                                               seed=seed):
                        notes = drum_notes(result.score)
                        loud.append([n.velocity for t in result.score.tracks if t.is_drum for n in t.notes])
                        sounds = Counter(s for _, s in notes)
                        every.update(sounds)
                        far.append(distance(sounds, kit))
                        outside.append(sum(c for s, c in sounds.items() if s not in kit) / max(len(notes), 1))
                        beats.append(backbeat(notes))
                        cells = grid_cells(result.score, gen.vocab.grid)
                        snares.append(two_and_four(cells, gen.vocab.grid))
                        marks[name] = marks.get(name, np.zeros((4, 2))) + phrase_marks(cells)
                        by_style.setdefault(name, {}).setdefault(style, []).append(snares[-1])
                        keepers.append(both_keep_time(notes))
        top = ", ".join(f"{s} ({c / sum(every.values()):.0%})" for s, c in every.most_common(3))
        table.add_row(name, str(len(far)), f"{np.mean(far):.3f}", f"{np.mean(outside):.3f}", f"{np.mean(beats):.3f}",
                      f"{np.mean(snares):.3f}", f"{np.mean(keepers):.3f}", top, *velocities(loud))
    drummers: dict[str, float] = {}
    if Path(args.data).exists():
        row, drummers, marks["the training data's drum parts"] = corpus_drums(args.data, set(styles))
        table.add_row(f"the training data's drum parts ({args.styles})", "", "", "", *row)
    Console(width=200).print(table)
    styles_table(by_style, drummers, styles)
    phrases = Table(title=f"the phrases the drums mark ({PHRASE_BARS} bars from the first)")
    for column in ("drums", "last bars with a tom", "other bars with a tom", "first bars with a crash on 1",
                   "other bars with a crash on 1"):
        phrases.add_column(column, justify="left" if column == "drums" else "right")
    for name, counts in marks.items():
        phrases.add_row(name, *(f"{hits / bars:.3f}" if bars else "" for hits, bars in counts))
    Console(width=200).print(phrases)
    gen.drum_kits, gen.drum_repeats = kits, repeats
    if args.songs:
        songs_table(gen, args.data, args.split, args.songs, [s for s in settings if s.lean is not None])
    if args.pop909:
        pop909_table(gen, args.data, args.split, args.pop909, [s for s in settings if s.lean is not None])
    drums.KIT_LEAN, drums.STYLE_GROOVE_LEAN, drums.STYLE_ACCENT, drums.TIMEKEEPER_LEAN, drums.FIRST_LEAN = shipped
    drums.ADDED_FIRST_LEAN = added_first


def styles_table(by_style: dict[str, dict[str, list[float]]], drummers: dict[str, float], styles: list[str]) -> None:
    """The bars with a snare on 2 and 4 by style, each setting's and the training data's, and each
    setting's mean distance to the data's over the styles."""
    table = Table(title="bars with a snare on beat 2 and on beat 4, by style")
    for column in ("drums", *styles, "mean distance to the drummers'"):
        table.add_column(column, justify="left" if column == "drums" else "right")
    for name, found in by_style.items():
        shares = {style: float(np.mean(found[style])) for style in styles}
        far = [abs(shares[s] - drummers[s]) for s in styles if s in drummers]
        table.add_row(name, *(f"{shares[s]:.3f}" for s in styles), f"{np.mean(far):.3f}" if far else "")
    if drummers:
        table.add_row("the training data's drum parts", *(f"{drummers[s]:.3f}" if s in drummers else "" for s in styles), "")
    Console(width=200).print(table)


class Setting(NamedTuple):
    """A row: the kit lean (None: no kit), the style groove's and accents' weights."""

    name: str
    lean: float | None
    groove: float = 0.0
    accent: float = 0.0
    repeats: bool = True  # the style's velocity repeats held (data.stats.drum_repeats)
    timekeeper: float = 0.0  # drums.TIMEKEEPER_LEAN
    first: float = 0.0  # drums.FIRST_LEAN (the songs' table: ADDED_FIRST_LEAN)


def velocities(parts: list[list[int]]) -> list[str]:
    """The mean velocity of drum parts (each in time order), their spread within a part (mean over
    parts), the share at 120 or more, and the share of notes at the velocity of the note before."""
    every = [v for part in parts for v in part]
    repeats = sum(int(np.sum(np.diff(p) == 0)) for p in parts) / max(sum(len(p) - 1 for p in parts if p), 1)
    return [f"{np.mean(every):.1f}", f"{np.mean([np.std(p) for p in parts if len(p) > 1]):.1f}",
            f"{np.mean(np.array(every) >= LOUD):.3f}", f"{repeats:.3f}"]


def songs_table(gen: Generator, data: str, split: str, songs: int, settings: list[Setting]) -> None:
    """The drums of Freedoom songs removed and added back over bars 9-16, at each setting with a kit."""
    rows = [row for _, row in Corpus([data]).rows(split) if row["source"] == "freedoom"][:songs]
    table = Table(title=f"drums added back to {len(rows)} Freedoom {split} songs, bars 9-16, 2 variations each")
    for column in ("drums", "bars with kick and snare", "most played sound's share", "note F1 against the song's",
                   "velocity error (hits both play)"):
        table.add_column(column, justify="left" if column == "drums" else "right")
    scores = [Score(row["path"]) for row in rows]
    scores = [(s, row) for s, row in zip(scores, rows)  # songs with drums and the bars to add them over
              if any(t.is_drum for t in s.tracks) and gen.piece(s, row["style"]).bars > SONG_BARS[1]]
    own = [held_back(gen, s, row["style"]) for s, row in scores]
    table.add_row("the songs' own", f"{np.mean([o[0] for o in own]):.3f}", f"{np.mean([o[1] for o in own]):.3f}", "1", "0")
    for setting in settings:
        added_with(setting)
        made = [added_back(gen, s, row["style"]) for s, row in scores]
        table.add_row(f"added, {setting.name}", *(f"{np.nanmean([m[k] for m in made]):.3f}" for k in range(4)))
    Console(width=160).print(table)


SONG_BARS = (8, 16)  # the bars the drums are added back over (from 0)


def added_with(setting: Setting) -> None:
    """The drums module's weights for a part added to a song, as ``setting`` has them (its first
    weight as ``drums.ADDED_FIRST_LEAN``)."""
    drums.KIT_LEAN, drums.STYLE_GROOVE_LEAN, drums.STYLE_ACCENT, drums.TIMEKEEPER_LEAN, drums.ADDED_FIRST_LEAN = (
        setting.lean or 0.0, setting.groove, setting.accent, setting.timekeeper, setting.first)


def pop909_table(gen: Generator, data: str, split: str, songs: int, settings: list[Setting]) -> None:
    """Drums added under POP909 songs (they have none) over SONG_BARS, at each setting with a kit."""
    rows = [row for _, row in Corpus([data]).rows(split) if row["source"] == "pop909"][:songs]
    table = Table(title=f"drums added under {len(rows)} POP909 {split} songs, bars 9-16 of their files, 2 variations "
                        "each (spans of four beats from the song's start)")
    for column in ("drums", "drum notes a take", "toms", "crash, china, splash", "spans with kick and snare",
                   "spans with a snare on 2 and 4"):
        table.add_column(column, justify="left" if column == "drums" else "right")
    pieces = [gen.piece(Score(row["path"]), row["style"]) for row in rows]
    for setting in settings:
        added_with(setting)
        made = []
        for piece in pieces:
            for result in gen.add_track(piece, -1, Region((SONG_BARS[0], 0), (SONG_BARS[1], 0)), "Drums", n=2, seed=0):
                notes = drum_notes(result.score)  # (4/4 bars from the start: spans of four beats)
                sounds = Counter(s for _, s in notes)
                made.append((len(notes), sum(sounds[s] for s in TOMS) / max(len(notes), 1),
                             sum(sounds[s] for s in CRASHES) / max(len(notes), 1), backbeat(notes),
                             two_and_four(grid_cells(result.score, gen.vocab.grid), gen.vocab.grid)))
        table.add_row(f"added, {setting.name}", f"{np.median([m[0] for m in made]):.0f}",
                      *(f"{np.mean([m[k] for m in made]):.3f}" for k in range(1, 5)))
    Console(width=160).print(table)


def bar_sounds(gen: Generator, score: Score, style: str, notes: list) -> tuple[float, float]:  # noqa: ANN001
    """(share of SONG_BARS with a kick and a snare, the most played sound's share) of drum ``notes``."""
    piece = gen.piece(score, style)
    ticks = [piece.tick(b) for b in range(SONG_BARS[0], SONG_BARS[1] + 1)]
    inside = [(next(k for k in range(len(ticks) - 1) if ticks[k] <= n.time < ticks[k + 1]), n.pitch)
              for n in notes if ticks[0] <= n.time < ticks[-1]]
    sounds = Counter(p for _, p in inside)
    top = max(sounds.values()) / len(inside) if inside else float("nan")
    return backbeat([(SONG_BARS[0] + k, p) for k, p in inside]), top


def held_back(gen: Generator, score: Score, style: str) -> tuple[float, float]:
    return bar_sounds(gen, score, style, own_drums(score))


def own_drums(score: Score) -> list:
    return [n for t in score.tracks if t.is_drum for n in t.notes]


def drum_f1(gen: Generator, score: Score, style: str, made: list, own: list) -> tuple[float, float]:
    """Note F1 of drum notes ``made`` against ``own`` in SONG_BARS ((grid cell of the onset, sound)
    multisets), and the mean velocity distance of the hits both play (NaN: none)."""
    piece = gen.piece(score, style)
    first, last = piece.tick(SONG_BARS[0]), piece.tick(SONG_BARS[1])
    cell = score.ticks_per_quarter / gen.vocab.grid

    def cells(notes: list) -> Counter:
        return Counter((round(n.time / cell), n.pitch) for n in notes if first <= n.time < last)

    a, b = cells(made), cells(own)
    total = sum(a.values()) + sum(b.values())
    theirs = {(round(n.time / cell), n.pitch): n.velocity for n in own if first <= n.time < last}
    errors = [abs(n.velocity - theirs[k]) for n in made if (k := (round(n.time / cell), n.pitch)) in theirs]
    return (2 * sum((a & b).values()) / total if total else float("nan"),
            float(np.mean(errors)) if errors else float("nan"))


def added_back(gen: Generator, score: Score, style: str) -> tuple[float, ...]:
    """The mean of :func:`bar_sounds` and :func:`drum_f1` over 2 variations of the drums added to
    ``score`` without its own."""
    bare = score.copy()
    bare.tracks = [t for t in bare.tracks if not t.is_drum]
    piece = gen.piece(bare, style)
    results = gen.add_track(piece, -1, Region((SONG_BARS[0], 0), (SONG_BARS[1], 0)), "Drums", n=2, seed=0)
    made = [list(r.score.tracks[-1].notes) for r in results]
    return tuple(np.nanmean([(*bar_sounds(gen, bare, style, m), *drum_f1(gen, bare, style, m, own_drums(score)))
                             for m in made], axis=0))


if __name__ == "__main__":
    main()
