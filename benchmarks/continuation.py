"""Continuations that keep the band playing: what a continuation does with the tracks of the song.

For a continuation of ``--bars`` bars from the middle of up to ``--pieces`` pieces per family of
``--split`` (``--samples`` variations each), with the rule of ``harmonixr.generation.modes.HOLD_TRACKS``
on (each track that plays in the bars before the cut held to what it plays there, the others
silent) and off (the model alone), per family:

- of the tracks that play both in the 4 bars before the cut and in the original's continuation,
  how many play in the generated one;
- of the tracks silent in the 4 bars before, how many enter in the original's continuation, and
  in the generated one (a mean over the variations), with their notes;
- note F1 against the original's continuation (onset on the grid and pitch, each variation's,
  averaged hole by hole), on minus off with its standard error, and the median note ratio;
- the distinct pitches a melodic track plays in the continuation, the original's beside them (a
  continuation that clings to the primer's pitches repeats itself);
- the piece-aware continuation (``--source piece``, the default: the bars that followed the passage
  likest the bars before the cut; sampled where the song has none), its note F1, how many came
  from the song, and minus the sampled ones (rule on), hole by hole; and against copying the
  bars before the cut (the baseline).

With ``--rule LONG_CONTEXT`` the rule turned off and on is
``harmonixr.generation.surroundings.LONG_CONTEXT`` (a continuation longer than 4 bars reads as
many bars before the cut as it is long): a 4-bar continuation is the same either way, so give ``--bars``.
With ``--rule GROOVE_LEAN``, ``harmonixr.generation.drums.GROOVE_LEAN`` (the drums' lean to their groove) at 0
and at its shipped weight.

    python benchmarks/continuation.py --split test --pieces 20
    python benchmarks/continuation.py --split val --pieces 20 --bars 16 --rule LONG_CONTEXT
    python benchmarks/continuation.py --split val --pieces 60 --rule GROOVE_LEAN
"""

from __future__ import annotations

import numpy as np
from copy_choice import note_f1  # sibling scripts
from holes import held_out_holes, hole_parser
from rich.console import Console
from rich.table import Table

from harmonixr.generation import drums, modes, surroundings
from harmonixr.generation.modes import Generator
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.tokens.notes import BAR, PITCH, TRACK

BEFORE_BARS = 4  # bars before the cut whose tracks count as playing


def continue_holes(gen: Generator, holes: list, samples: int, on: bool,  # noqa: ANN001 - Hole
                   rule: str = "HOLD_TRACKS") -> list[dict]:
    """One row per hole: the counts and F1s of its continuations, with the rule ``rule`` (a module
    constant of :mod:`harmonixr.generation.modes` or, LONG_CONTEXT, of its surroundings) ``on`` or off."""
    module = {"LONG_CONTEXT": surroundings, "GROOVE_LEAN": drums}.get(rule, modes)
    shipped = getattr(module, rule)
    setattr(module, rule, (shipped or 1.0) * on if rule == "GROOVE_LEAN" else on)  # a weight: the shipped one, or 0
    rows = []
    try:
        for h in holes:
            piece, first = h.piece, h.first_bar
            span = h.span
            truth = piece.notes[span.in_span(piece.notes, gen.vocab)]
            before = piece.notes[(piece.notes[:, BAR] >= first - BEFORE_BARS) & (piece.notes[:, BAR] < first)]
            playing = set(before[:, TRACK].tolist()) & set(truth[:, TRACK].tolist())
            silent = set(piece.slots) - set(before[:, TRACK].tolist())
            row = {"family": h.source, "playing": len(playing), "kept": 0, "silent": len(silent),
                   "entered": len(silent & set(truth[:, TRACK].tolist())), "invented": 0.0, "invented_notes": 0.0,
                   "f1": [], "ratio": [], "distinct": [], "original_distinct": []}
            melodic = [t for t in playing if t != gen.vocab.drum_slot]
            song = gen.continue_(piece, bars=h.bars, after_bar=first, n=1, sampling=SamplingConfig(), seed=0)[0]
            row["piece_f1"] = note_f1(made_notes(gen, piece, song.score, span), truth)  # the song's own bars
            row["from_the_song"] = song.details.get("source", "sampled") != "sampled"
            copied = piece.notes[(piece.notes[:, BAR] >= first - h.bars) & (piece.notes[:, BAR] < first)].copy()
            copied[:, BAR] += h.bars  # the baseline: the bars before the cut, played again
            row["copy_f1"] = note_f1(copied, truth)
            for result in gen.continue_(piece, bars=h.bars, after_bar=first, n=samples, sampling=SamplingConfig(), seed=0,
                                        source="sampled"):
                made = made_notes(gen, piece, result.score, span)
                tracks = set(made[:, TRACK].tolist())
                row["kept"] += len(playing & tracks) / samples
                row["invented"] += len(silent & tracks) / samples
                row["invented_notes"] += np.isin(made[:, TRACK], list(silent)).sum() / samples
                row["f1"].append(note_f1(made, truth))
                row["ratio"].append(len(made) / max(len(truth), 1))
                for t in melodic:
                    row["distinct"].append(len(np.unique(made[made[:, TRACK] == t, PITCH])))
                    row["original_distinct"].append(len(np.unique(truth[truth[:, TRACK] == t, PITCH])))
            rows.append(row)
    finally:
        setattr(module, rule, shipped)
    return rows


def paired_f1(a: list[float], b: np.ndarray) -> str:
    """``a`` minus ``b``, hole by hole: mean ± standard error."""
    d = np.asarray(a) - b
    return f"{d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0:.3f}"


def made_notes(gen: Generator, piece, score, span) -> np.ndarray:  # noqa: ANN001 - Piece, Score, Span
    """The notes ``score`` has inside ``span``, on the original piece's track slots."""
    out = gen.piece(score, piece.style)
    made = out.notes[span.in_span(out.notes, gen.vocab)].copy()
    made[:, TRACK] = [piece.slot_of(out.track_of(int(t))) for t in made[:, TRACK]]
    return made


def distinct(on: list[dict], off: list[dict]) -> str:
    """The mean distinct pitches of a melodic track's continuation: the original's, off -> on."""
    def mean(rows: list[dict], key: str) -> float:
        values = [x for r in rows for x in r[key]]
        return float(np.mean(values)) if values else 0.0
    return f"{mean(on, 'original_distinct'):.1f}: {mean(off, 'distinct'):.1f} -> {mean(on, 'distinct'):.1f}"


def main() -> None:
    parser = hole_parser(__doc__, pieces=20)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--rule", default="HOLD_TRACKS", choices=("HOLD_TRACKS", "LONG_CONTEXT", "GROOVE_LEAN"),
                        help="the rule turned off and on")
    parser.set_defaults(bars=4)
    args = parser.parse_args()
    gen = Generator(args.checkpoint)
    holes = held_out_holes(args, gen.vocab)
    on, off = (continue_holes(gen, holes, args.samples, value, args.rule) for value in (True, False))
    table = Table(title=f"continuations of {args.bars} bars from the middle of {len(holes)} {args.split} pieces, "
                        f"{args.samples} each: {args.rule} off -> on")
    for column in ("family", "holes", "tracks playing on", "silent before", "entering: original", "entering: off -> on",
                   "note F1 off -> on", "on minus off", "median note ratio off -> on", "pitches a track: original, off -> on",
                   "piece-aware F1 (from the song)", "minus on", "copy the bars before", "piece-aware minus copy"):
        table.add_column(column, justify="left" if column == "family" else "right")
    for family in ["all", *sorted({h.source for h in holes})]:
        a = [r for r in on if family in ("all", r["family"])]
        b = [r for r in off if family in ("all", r["family"])]

        def total(rows: list[dict], key: str) -> float:
            return sum(r[key] for r in rows)

        f1_on, f1_off = (np.array([np.mean(r["f1"]) for r in rows]) for rows in (a, b))
        ratio_on, ratio_off = (np.median([x for r in rows for x in r["ratio"]]) for rows in (a, b))
        diff = f1_on - f1_off
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
        table.add_row(family, str(len(a)), f"{total(b, 'kept'):.0f} -> {total(a, 'kept'):.0f} of {total(a, 'playing'):.0f}",
                      f"{total(a, 'silent'):.0f}", f"{total(a, 'entered'):.0f}",
                      f"{total(b, 'invented'):.1f} ({total(b, 'invented_notes'):.0f} notes) -> "
                      f"{total(a, 'invented'):.1f} ({total(a, 'invented_notes'):.0f})",
                      f"{f1_off.mean():.3f} -> {f1_on.mean():.3f}", f"{diff.mean():+.3f} ± {se:.3f}",
                      f"{ratio_off:.2f} -> {ratio_on:.2f}", distinct(a, b),
                      f"{np.mean([r['piece_f1'] for r in a]):.3f} ({total(a, 'from_the_song'):.0f})",
                      paired_f1([r["piece_f1"] for r in a], f1_on), f"{np.mean([r['copy_f1'] for r in a]):.3f}",
                      paired_f1([r["piece_f1"] for r in a], np.array([r["copy_f1"] for r in a])))
    Console(width=240).print(table)


if __name__ == "__main__":
    main()
