"""What the sampler's own weights and holds add to sampled fills: the pitch lean, the kept loudness, the seam,
the chords, the durations.

A hole of ``--bars`` whole bars, every track, in the middle of up to ``--pieces`` pieces per family
of ``--split`` (the validation split by default: these weights were chosen there), filled
``--samples`` times with ``--source sampled`` under each setting:

- the pitch lean (``surroundings.CONTEXT_LEAN``) at each weight of ``--leans``: note F1,
  pitch-class overlap and the median fill/original note ratio, and each weight minus no lean,
  hole by hole (mean ± standard error);
- the lean to the harmony of the song's best-matching span (``harmony.COPY_LEAN``, times its
  context match) at each weight of ``--copy-leans``, the same figures;
- the kept loudness (``surroundings.KEEP_LOUDNESS``) off and on, at the default lean: how far the
  fills' mean velocity lies from the hole's own (``velocity_distance``), per family, and on minus
  off, hole by hole;
- the seam (``surroundings.KEEP_SEAM``: each track that plays on both sides starts by its last onset
  before the hole plus its longest wait around it) off and on, at the default lean: the tracks that
  enter more than a bar after the original's first note in the hole (of those that play in both),
  note F1 and pitch-class overlap, on minus off hole by hole;
- the kept chords (``surroundings.KEEP_CHORD``: a track that sounds chords at that share of its
  onsets around the hole keeps their size at each onset) off and on: over the tracks whose
  original chords at that share of its onsets in the hole, the share of the fills' onsets that are
  chords (``kept_chords``), note F1 and pitch-class overlap, on minus off hole by hole;
- the kept notes (``surroundings.KEEP_NOTES``: a held track has at most its most onsets x its
  mean notes at an onset around the hole, past which its chords grow no more) off and on: the
  fills' mean and median note ratio (their notes over the original's), the melodic tracks' mean
  notes at an onset over the original's, note F1 and pitch-class overlap, on minus off hole by hole;
- the narrower window of a long hole (``surroundings.SCALE_TOLERANCE``: a held track's density
  within INFERRED_TOLERANCE x sqrt(2 / the hole's bars)) off and on: give ``--bars`` over 2; the
  fills' note ratios (mean, median), note F1 and pitch-class overlap, on minus off;
- the kept waits (``surroundings.KEEP_WAIT``: a track whose longest wait between two onsets is the
  same on both sides of the hole waits no longer in the fill, nor from its last onset to the
  hole's end) off and on: the longest time in the hole with no onset on any track, seams
  included (quarter notes: the original's, off, on), the share of fills where it outlasts the
  original's by more than a quarter note (off, on), note F1 and pitch-class overlap, on minus off;
- the kept durations (``surroundings.DURATION_MARGIN``: a held melodic track's notes last between
  its shortest and longest around the hole, widened by that factor) off and on: how far the
  median note duration of each fill track lies from the original's (``duration_error``), note F1
  and pitch-class overlap, on minus off hole by hole.

The settings are module constants of :mod:`harmonixr.generation.surroundings`; the script sets
them in turn (nothing else reads them while it runs).

    python benchmarks/sampled_fills.py --split val --pieces 60
    python benchmarks/sampled_fills.py --split val --pieces 30 --leans "" --copy-leans "" --settings notes
    python benchmarks/sampled_fills.py --split val --pieces 20 --bars 8 --leans "" --copy-leans "" --settings tolerance
    python benchmarks/sampled_fills.py --split test --pieces 20 --leans 0.75
    python benchmarks/sampled_fills.py --split val --pieces 30 --bars 4 --leans "" --copy-leans "" --settings waits
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from holes import held_out_holes, hole_parser  # a sibling script
from rich.console import Console
from rich.table import Table

import harmonixr.generation.harmony as harmony
import harmonixr.generation.surroundings as surroundings
from harmonixr.evaluation.infill_quality import (
    Method,
    duration_error,
    evaluate_infill,
    kept_chords,
    late_entries,
    silences,
    summarize,
)
from harmonixr.evaluation.report import SAMPLING
from harmonixr.generation.modes import Generator


def per_hole(rows: list[dict], metric: str) -> dict[int, float]:
    """Each hole's mean of ``metric`` over its fills."""
    found: dict[int, list[float]] = {}
    for r in rows:
        found.setdefault(r["hole"], []).append(r[metric])
    return {hole: float(np.mean(values)) for hole, values in found.items()}


def paired(a: list[dict], b: list[dict], metric: str) -> str:
    """``a`` minus ``b`` on ``metric``, hole by hole: mean ± standard error."""
    x, y = per_hole(a, metric), per_hole(b, metric)
    d = np.array([x[h] - y[h] for h in x])
    return f"{d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)):.3f}"


def main() -> None:
    parser = hole_parser(__doc__, pieces=60)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--leans", default="0,0.25,0.5,0.75,1,1.5,2", help="pitch lean weights to try")
    parser.add_argument("--copy-leans", default="0,6", help="weights of the lean to the best-matching span's harmony")
    parser.add_argument("--settings", default="loudness,seam,durations,chords,notes",
                        help="the settings turned off and on, each a table (empty --leans, --copy-leans: no table)")
    args = parser.parse_args()
    console = Console(width=160)
    gen = Generator(args.checkpoint)
    holes = held_out_holes(args, gen.vocab)
    names = ("CONTEXT_LEAN", "KEEP_LOUDNESS", "KEEP_SEAM", "KEEP_CHORD", "DURATION_MARGIN", "COPY_LEAN", "KEEP_NOTES",
             "SCALE_TOLERANCE", "KEEP_WAIT")
    settings = set(args.settings.split(","))
    home = {name: harmony if name == "COPY_LEAN" else surroundings for name in names}  # the module each is read from
    defaults = {name: getattr(home[name], name) for name in names}
    default_lean, default_loudness, default_chord = defaults["CONTEXT_LEAN"], defaults["KEEP_LOUDNESS"], defaults["KEEP_CHORD"]
    default_margin, default_copy = defaults["DURATION_MARGIN"], defaults["COPY_LEAN"]

    def fills(lean: float, loudness: bool, seam: bool = True, chord: float | None = default_chord,
              margin: float | None = default_margin, copy: float = default_copy, notes: bool = True,
              scaled: bool = True, waits: bool = True) -> list[dict]:
        for name, value in zip(names, (lean, loudness, seam, chord, margin, copy, notes, scaled, waits)):
            setattr(home[name], name, value)
        try:
            return evaluate_infill({"sampled": Method("infill", gen, SAMPLING)}, holes, args.samples, args.seed)
        finally:
            for name, value in defaults.items():
                setattr(home[name], name, value)

    runs = {lean: fills(lean, default_loudness) for lean in (float(x) for x in args.leans.split(",") if x)}
    if runs:
        console.print(weights_table(f"pitch lean: sampled fills of {len(holes)} holes of {args.bars} bars, {args.split} "
                                    f"split (default {default_lean})", "lean", runs,
                                    runs.get(0.0) or fills(0.0, default_loudness)))
    copies = {copy: fills(default_lean, default_loudness, copy=copy)
              for copy in (float(x) for x in args.copy_leans.split(",") if x)}
    if copies:
        console.print(weights_table(f"the lean to the harmony of the song's best-matching span: sampled fills of "
                                    f"{len(holes)} holes (default {default_copy:g} x its match)", "copy lean", copies,
                                    copies.get(0.0) or fills(default_lean, default_loudness, copy=0.0)))

    on = runs.get(default_lean) or fills(default_lean, True)
    families = ["all", *sorted({h.source for h in holes})]
    both = ("f1 on minus off", "overlap on minus off")

    def differences(a: list[dict], b: list[dict]) -> list[str]:
        return [paired(a, b, "f1"), paired(a, b, "pitch_class_overlap")]

    if "notes" in settings:
        console.print(on_off("the kept notes: the fills' notes over the original's (mean, median), and the share of "
                             "their melodic tracks' onsets that are chords", families, on,
                             fills(default_lean, default_loudness, notes=False),
                             ("mean, off", "mean, on", "median, off", "median, on", "chords: original", "off", "on", *both),
                             lambda a, b: [*note_ratios(b, a), *chord_shares(b, a), *differences(a, b)]))
    if "tolerance" in settings:
        console.print(on_off(f"the narrower window of a long hole ({args.bars} bars): the fills' notes over the "
                             "original's (mean, median)", families, on,
                             fills(default_lean, default_loudness, scaled=False),
                             ("mean, off", "mean, on", "median, off", "median, on", *both),
                             lambda a, b: [*note_ratios(b, a), *differences(a, b)]))
    if "loudness" in settings:
        console.print(on_off("kept loudness: the fills' mean velocity against the hole's own (velocity distance)",
                             families, on, fills(default_lean, False), ("off", "on", "on minus off"),
                             lambda a, b: [f"{summarize(b)[0]['velocity_distance']:.2f}",
                                           f"{summarize(a)[0]['velocity_distance']:.2f}",
                                           paired(a, b, "velocity_distance")]))
    if "seam" in settings:
        console.print(on_off("the seam: tracks entering more than a bar after the original's first note in the hole",
                             families, on, fills(default_lean, default_loudness, seam=False),
                             ("late, off", "late, on", *both),
                             lambda a, b: ["{} of {}".format(*late_entries(b)), "{} of {}".format(*late_entries(a)),
                                           *differences(a, b)]))
    if "waits" in settings:
        console.print(on_off("the kept waits: the longest time in the hole with no onset on any track (quarter notes), "
                             "and the fills where it outlasts the original's by more than one", families, on,
                             fills(default_lean, default_loudness, waits=False),
                             ("original", "off", "on", "longer, off", "longer, on", *both),
                             lambda a, b: [*quiet(b, a), *differences(a, b)]))
    if default_margin is not None and "durations" in settings:
        console.print(on_off(f"the kept durations (x{default_margin:g}): |log2| of the fill track's median duration "
                             "over the original's", families, on, fills(default_lean, default_loudness, margin=None),
                             ("fill tracks", "off", "on", *both),
                             lambda a, b: [str(duration_error(a)[1]), f"{duration_error(b)[0]:.3f}",
                                           f"{duration_error(a)[0]:.3f}", *differences(a, b)]))
    if default_chord is not None and "chords" in settings:
        console.print(on_off(f"the kept chords: tracks whose original starts chords at {default_chord:.0%} of its "
                             "onsets in the hole or more, the share of their fills' onsets that are chords", families,
                             on, fills(default_lean, default_loudness, chord=None), ("fill tracks", "off", "on", *both),
                             lambda a, b: [str(kept_chords(a, default_chord)[1]), f"{kept_chords(b, default_chord)[0]:.2f}",
                                           f"{kept_chords(a, default_chord)[0]:.2f}", *differences(a, b)]))


def note_ratios(*runs: list[dict]) -> list[str]:
    """The mean of each run's fill/original note ratios, then the median of each (a hole with no
    original note left out)."""
    ratios = [[r["notes"] / r["truth_notes"] for r in rows if r["truth_notes"]] for rows in runs]
    return [f"{np.mean(x):.2f}" for x in ratios] + [f"{np.median(x):.2f}" for x in ratios]


def quiet(off: list[dict], on: list[dict]) -> list[str]:
    """The longest all-track silence in the hole (:func:`silences`): the original's, the fills' off
    and on, then the share of fills where it outlasts the original's, off and on."""
    (off_mean, truth, off_longer), (on_mean, _, on_longer) = silences(off), silences(on)
    return [f"{truth:.2f}", f"{off_mean:.2f}", f"{on_mean:.2f}", f"{off_longer:.3f}", f"{on_longer:.3f}"]


def chord_shares(*runs: list[dict]) -> list[str]:
    """The mean share of onsets that are chords over the melodic tracks playing in the original
    hole and in the fill: the original's (over the first run's fills), then each run's."""
    pairs = [[(fill, truth) for r in rows for fill, truth in zip(r["chords"] or [], r["truth_chords"])
              if fill is not None and truth is not None] for rows in runs]
    return [f"{np.mean([t for _, t in pairs[0]]):.2f}"] + [f"{np.mean([f for f, _ in p]):.2f}" for p in pairs]


def weights_table(title: str, name: str, runs: dict[float, list[dict]], none: list[dict]) -> Table:
    """The fills of each weight of a lean (``runs``): note F1, pitch-class overlap, the median note
    ratio, and each minus the fills without that lean (``none``), hole by hole."""
    table = Table(title=title)
    for column in (name, "f1", "pitch-class overlap", "median note ratio", "f1 minus none", "overlap minus none"):
        table.add_column(column, justify="right")
    for weight, rows in runs.items():
        mean = summarize(rows)[0]
        table.add_row(f"{weight:g}", f"{mean['f1']:.3f}", f"{mean['pitch_class_overlap']:.3f}",
                      f"{mean['median_note_ratio']:.2f}", paired(rows, none, "f1"), paired(rows, none, "pitch_class_overlap"))
    return table


def on_off(title: str, families: list[str], on: list[dict], off: list[dict], columns: tuple[str, ...],
           cells: Callable[[list[dict], list[dict]], list[str]]) -> Table:
    """A setting's fills ``on`` against ``off``, a row per family: its holes, then ``cells`` of its
    rows (on, off)."""
    table = Table(title=title)
    for column in ("family", "holes", *columns):
        table.add_column(column, justify="left" if column == "family" else "right")
    for family in families:
        a = [r for r in on if family in ("all", r["source"])]
        b = [r for r in off if family in ("all", r["source"])]
        table.add_row(family, str(len(per_hole(a, "f1"))), *cells(a, b))
    return table


if __name__ == "__main__":
    main()
