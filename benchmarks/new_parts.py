"""Parts written from nothing, held to what their program's parts play, or not: a new part of a song
(``harmonixr add-track``) against the part the song had, and the parts of new pieces (``generate``).

In up to ``--pieces`` pieces per family of ``--split`` (the families with several melodic parts:
chorales, classical, POP909, Freedoom), the lowest-sounding melodic part in the middle 8 bars is
removed from the whole piece and added back with its own GM program over those 8 bars
(``--samples`` variations), with the rule of ``harmonixr.generation.surroundings.HOLD_NEW_PARTS``
off and on (the new part must play to the region's last bar, on the song's rhythm around it, within
its program's range in the training data, and is not heard past it). Per family, against the part
removed: the share of the 8 bars the new part plays in, the share of its notes within 4 semitones
of the removed part's lowest and highest pitch, note F1 (onset on the grid and pitch), pitch-class
overlap, the spread of its velocities and the share of its notes at the velocity of the note
before (the removed part's in the last column), and the median note ratio.

Then new pieces from nothing, ``--seeds`` seeds of 16 bars for each band of :data:`BANDS` (no
density asked), the rule off and on (each part held to its program's onsets per bar and pitches in
the training data): the fewest bars a part plays in, and the share of the piece's notes its busiest
part takes.

And the same parts added back over the whole piece (``add-track`` without ``--bars``; a long piece
is written in halves): finished or cut, the share of the bars it plays in (the last quarter's
too), and how much its most played pitch takes in each half.

    python benchmarks/new_parts.py --split test --pieces 20
"""

from __future__ import annotations

import argparse

import numpy as np
from copy_choice import note_f1, pitch_class_overlap  # a sibling script
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.generation import infill, surroundings
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Piece, Region, split_pieces
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.tokens.notes import BAR, PITCH, TRACK, VEL

BARS = 8  # the new part's span, in the middle of the piece
FAMILIES = ("chorale", "classical", "pop909", "freedoom")  # those with several melodic parts
MARGIN = 4  # semitones past the removed part's pitches that count as its range
METRICS = ("bars played", "in range", "note F1", "pitch-class overlap", "velocity spread", "velocity repeats",
           "median note ratio")
BANDS = (("pop", (0, 33, -1)), ("rock", (29, 33, -1)), ("game", (81, 38, 48, -1)))  # (style, GM programs; -1 drums)
PIECE_BARS = 16


def removed_parts(gen: Generator, args: argparse.Namespace) -> list[tuple[Piece, int, int, np.ndarray, str]]:
    """(the piece without its lowest part, that part's program, the first bar, its notes there, family)."""
    out = []
    pieces = split_pieces(Corpus([args.data]), args.split, args.pieces, gen.vocab, np.random.default_rng(args.seed),
                          by="family")
    for piece, style, family in pieces:
        if family not in FAMILIES or piece.bars < 2 * BARS:
            continue
        first = piece.bars // 2 - BARS // 2
        inside = piece.notes[(piece.notes[:, BAR] >= first) & (piece.notes[:, BAR] < first + BARS)]
        melodic = [s for s in np.unique(inside[:, TRACK]).tolist() if s != gen.vocab.drum_slot]
        if len(melodic) < 2:
            continue
        lowest = min(melodic, key=lambda s: float(np.median(inside[inside[:, TRACK] == s, PITCH])))
        track = piece.track_of(lowest)
        score = piece.original.copy()
        if len(score.tracks) > gen.vocab.spec.max_tracks:
            continue
        program = score.tracks[track].program
        del score.tracks[track]
        out.append((gen.piece(score, style), program, first, inside[inside[:, TRACK] == lowest], family))
    return out


def velocity_shape(part: np.ndarray) -> tuple[float, float]:
    """The spread of a part's velocities and the share of its notes at the velocity of the note before."""
    velocity = part[:, VEL]
    return (float(np.std(velocity)), float(np.mean(velocity[1:] == velocity[:-1]))) if len(part) > 1 else (0.0, 1.0)


def measure(gen: Generator, parts: list, samples: int, hold: bool) -> dict[str, list[list[float]]]:
    """Per family, per variation: the :data:`METRICS` of the new part against the removed one."""
    surroundings.HOLD_NEW_PARTS = hold
    found: dict[str, list[list[float]]] = {}
    try:
        for piece, program, first, truth, family in parts:
            low, high = truth[:, PITCH].min() - MARGIN, truth[:, PITCH].max() + MARGIN
            region = Region((first, 0), (first + BARS, 0))
            for result in gen.add_track(piece, program, region, n=samples, sampling=SamplingConfig(), seed=0):
                out = gen.piece(result.score, piece.style)
                made = out.notes[(out.notes[:, TRACK] == out.slot_of(len(result.score.tracks) - 1))]
                found.setdefault(family, []).append([
                    len(np.unique(made[:, BAR])) / BARS,
                    float(np.mean((made[:, PITCH] >= low) & (made[:, PITCH] <= high))) if len(made) else 0.0,
                    note_f1(made, truth), pitch_class_overlap(made, truth) if len(made) else 0.0,
                    *velocity_shape(made), len(made) / len(truth)])
    finally:
        surroundings.HOLD_NEW_PARTS = True
    return found


def new_pieces(gen: Generator, seeds: int, hold: bool) -> dict[str, list[tuple[int, float]]]:
    """Per band, per seed: (the fewest bars a part plays in, the busiest part's share of the notes)."""
    surroundings.HOLD_NEW_PARTS = hold
    found: dict[str, list[tuple[int, float]]] = {}
    try:
        for style, programs in BANDS:
            for seed in range(seeds):
                score = gen.generate(list(programs), style, bars=PIECE_BARS, tempo=110, sampling=SamplingConfig(),
                                     seed=seed)[0].score
                bar = 4 * score.ticks_per_quarter
                notes = [len(t.notes) for t in score.tracks]
                bars = [len({n.time // bar for n in t.notes}) for t in score.tracks]
                found.setdefault(f"{style} {programs}", []).append((min(bars), max(notes) / max(sum(notes), 1)))
    finally:
        surroundings.HOLD_NEW_PARTS = True
    return found


def whole_songs(gen: Generator, parts: list) -> dict[str, list[list[float]]]:
    """Per family: the removed part added back over the whole piece (one variation): whether it was
    finished (not cut), the share of the bars the removed part played in where the new one plays,
    that share in the last quarter of the piece, and the most played pitch's share of its notes in
    the first half and in the second (a part held to its own first half droned on one pitch)."""
    found: dict[str, list[list[float]]] = {}
    for piece, program, _, _, family in parts:
        result = gen.add_track(piece, program, None, n=1, sampling=SamplingConfig(), seed=0)[0]
        out = gen.piece(result.score, piece.style)
        made = out.notes[out.notes[:, TRACK] == out.slot_of(len(result.score.tracks) - 1)]
        original = gen.piece(piece.original, piece.style)  # its bars: those the other parts play in
        played = np.unique(original.notes[:, BAR])
        half, last = piece.bars // 2, played[played >= piece.bars * 3 // 4]

        def top(notes: np.ndarray) -> float:
            return float(np.bincount(notes[:, PITCH]).max() / len(notes)) if len(notes) else 1.0

        found.setdefault(family, []).append([
            float(result.finished), float(np.isin(played, made[:, BAR]).mean()),
            float(np.isin(last, made[:, BAR]).mean()) if len(last) else 1.0,
            top(made[made[:, BAR] < half]), top(made[made[:, BAR] >= half])])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="models/harmonixr-small")
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--split", default="val")
    parser.add_argument("--pieces", type=int, default=20, help="pieces per family")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=5, help="new pieces per band")
    parser.add_argument("--free-velocities", action="store_true",
                        help="a new part's velocity repeats not held to the song's (data.stats.velocity_repeats)")
    parser.add_argument("--first", action="store_true", help="the first table only")
    args = parser.parse_args()
    gen = Generator(args.checkpoint)
    if args.free_velocities:
        infill.velocity_repeats = lambda notes: (1.0, 1.0)
    parts = removed_parts(gen, args)
    off, on = measure(gen, parts, args.samples, False), measure(gen, parts, args.samples, True)
    table = Table(title=f"the lowest part of {len(parts)} {args.split} pieces removed and added back over {BARS} bars, "
                        f"{args.samples} variations: held as a new part off -> on")
    for column in ("family", "parts", *METRICS, "the removed parts' velocity spread, repeats"):
        table.add_column(column, justify="left" if column == "family" else "right")
    for family in ("all", *sorted(on)):
        a = np.array([v for f, vs in on.items() if family in ("all", f) for v in vs])
        b = np.array([v for f, vs in off.items() if family in ("all", f) for v in vs])
        cells = [f"{x:.3f} -> {y:.3f}" for x, y in zip(b[:, :-1].mean(0), a[:, :-1].mean(0))]
        own = np.array([velocity_shape(truth) for *_, truth, f in parts if family in ("all", f)])
        table.add_row(family, str(len(a) // args.samples), *cells, f"{np.median(b[:, -1]):.2f} -> {np.median(a[:, -1]):.2f}",
                      f"{own[:, 0].mean():.1f}, {own[:, 1].mean():.3f}")
    Console(width=200).print(table)
    if args.first:
        return
    whole = whole_songs(gen, parts)
    table = Table(title=f"the same parts added back over the whole piece ({len(parts)} pieces, 1 variation)")
    for column in ("family", "parts", "finished", "bars played", "bars played, last quarter",
                   "top pitch's share, first half", "second half"):
        table.add_column(column, justify="left" if column == "family" else "right")
    for family in ("all", *sorted(whole)):
        a = np.array([v for f, vs in whole.items() if family in ("all", f) for v in vs])
        table.add_row(family, str(len(a)), *(f"{x:.2f}" for x in a.mean(0)))
    Console(width=200).print(table)
    off_pieces, on_pieces = new_pieces(gen, args.seeds, False), new_pieces(gen, args.seeds, True)
    table = Table(title=f"new pieces of {PIECE_BARS} bars from nothing, {args.seeds} seeds a band, no density asked: "
                        "each part held to its program's parts off -> on")
    for column in ("band (style, programs)", "fewest bars a part plays, per seed", "busiest part's share of the notes"):
        table.add_column(column, justify="left" if column.startswith("band") else "right")
    for band, on_rows in on_pieces.items():
        off_rows = off_pieces[band]
        table.add_row(band, f"{[b for b, _ in off_rows]} -> {[b for b, _ in on_rows]}",
                      f"{np.mean([x for _, x in off_rows]):.2f} -> {np.mean([x for _, x in on_rows]):.2f}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
