"""The drums of sampled fills: do they keep the drummer's groove and accents?

A hole of ``--bars`` whole bars (every track) in up to ``--pieces`` pieces per family of ``--split``
that have drums (``--holes`` a piece), filled ``--samples`` times with ``--source sampled`` under
each of ``--settings`` (``groove:accent[:share]``: the weights of ``drums.GROOVE_LEAN``, the lean
of each drum note's sound to those played at its place in the bar around the hole, and of
``drums.GROOVE_ACCENT``, the lean of its velocity to the one its sound is played with there; and
``drums.SOUND_SHARE``, the most each sound may take of the notes, against its share around the
hole, 0: no cap; the shipped one if not given). Per family and setting, over the drum track:

- note F1 against the original's drums (onset on the grid and sound), and minus the first
  setting's, hole by hole (mean ± standard error);
- the drum sounds' overlap (the drum sounds' shares, as pitch-class overlap counts them mod 12);
- the velocity error: over the fill's hits that the original plays too (same onset and sound),
  the mean distance between the two velocities; and the spread of the fill's velocities
  (their standard deviation in a fill) against the original's;
- the same for copying the bars before the hole (the baseline).

    python benchmarks/drum_fills.py --split val --pieces 60 --holes 3 --settings 0:0,2:0,0:1,2:1
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from holes import held_out_holes, hole_parser  # a sibling script
from rich.console import Console
from rich.table import Table

from harmonixr.evaluation.infill_quality import histogram_overlap
from harmonixr.generation import drums
from harmonixr.generation.modes import Generator
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK, VEL


def measure(fill: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Drum note F1, sound overlap, the velocity errors of the hits both play, and the fill's spread."""
    keys = lambda notes: [tuple(x) for x in notes[:, [BAR, POS, PITCH]].tolist()]  # noqa: E731
    theirs = dict(zip(keys(truth), truth[:, VEL].tolist()))
    hits = sum((Counter(keys(fill)) & Counter(theirs)).values())
    errors = [abs(v - theirs[k]) for k, v in zip(keys(fill), fill[:, VEL].tolist()) if k in theirs]
    return {"f1": 2 * hits / (len(fill) + len(truth)) if len(fill) + len(truth) else 0.0,
            "overlap": histogram_overlap(fill[:, PITCH].tolist(), truth[:, PITCH].tolist(), 12),
            "errors": errors, "spread": float(fill[:, VEL].std()) if len(fill) > 1 else float("nan")}


def name(groove: float, accent: float, share: float) -> str:
    """A setting's row label."""
    return f"groove {groove:g}, accent {accent:g}, share {share:g}"


def main() -> None:
    parser = hole_parser(__doc__)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--settings", default="0:0,2:0,0:1,2:1",
                        help="groove:accent[:share] settings, the first the reference")
    args = parser.parse_args()
    gen = Generator(args.checkpoint)
    drum = gen.vocab.drum_slot
    holes = [h for h in held_out_holes(args, gen.vocab) if drum in h.piece.slots]
    shipped = drums.GROOVE_LEAN, drums.GROOVE_ACCENT, drums.SOUND_SHARE
    settings = [(*(float(x) for x in s.split(":")), shipped[2])[:3] for s in args.settings.split(",")]
    found: dict[str, list[list[dict]]] = {}  # method -> per hole, its fills' measures
    truths = []
    for index, h in enumerate(holes):
        notes, first = h.piece.notes, h.first_bar
        inside = (notes[:, BAR] >= first) & (notes[:, BAR] < first + h.bars) & (notes[:, TRACK] == drum)
        truth = notes[inside]
        truths.append(truth)
        before = notes[(notes[:, BAR] >= first - h.bars) & (notes[:, BAR] < first) & (notes[:, TRACK] == drum)].copy()
        before[:, BAR] += h.bars
        found.setdefault("copy the bars before", []).append([measure(before, truth)])
        for groove, accent, share in settings:
            drums.GROOVE_LEAN, drums.GROOVE_ACCENT, drums.SOUND_SHARE = groove, accent, share
            try:
                made = gen.infill(h.piece, h.region, args.samples, SamplingConfig(), seed=args.seed + index,
                                  source="sampled")
            finally:
                drums.GROOVE_LEAN, drums.GROOVE_ACCENT, drums.SOUND_SHARE = shipped
            fills = []
            for result in made:
                new = gen.piece(result.score, h.piece.style).notes
                fills.append(measure(new[(new[:, BAR] >= first) & (new[:, BAR] < first + h.bars)
                                         & (new[:, TRACK] == drum)], truth))
            found.setdefault(name(groove, accent, share), []).append(fills)
    reference = name(*settings[0])
    table = Table(title=f"the drums of sampled fills: {len(holes)} holes of {args.bars} bars in songs with drums, "
                        f"{args.split} split, {args.samples} fills each (shipped: {name(*shipped)})")
    for column in ("family", "holes", "method", "drum F1", f"minus {reference}", "sound overlap", "velocity error",
                   "hits compared", "velocity spread", "original's spread"):
        table.add_column(column, justify="left" if column in ("family", "method") else "right")
    for family in ["all", *sorted({h.source for h in holes})]:
        mine = [k for k, h in enumerate(holes) if family in ("all", h.source)]
        spread = np.nanmean([truths[k][:, VEL].std() for k in mine if len(truths[k]) > 1])
        for method, per_hole in found.items():
            f1 = np.array([np.mean([m["f1"] for m in per_hole[k]]) for k in mine])
            ref = np.array([np.mean([m["f1"] for m in found[reference][k]]) for k in mine])
            errors = [e for k in mine for m in per_hole[k] for e in m["errors"]]
            diff = f1 - ref
            table.add_row(family, str(len(mine)), method, f"{f1.mean():.3f}",
                          f"{diff.mean():+.3f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.3f}" if len(diff) > 1 else "",
                          f"{np.mean([m['overlap'] for k in mine for m in per_hole[k]]):.3f}",
                          f"{np.mean(errors):.1f}" if errors else "", str(len(errors)),
                          f"{np.nanmean([m['spread'] for k in mine for m in per_hole[k]]):.1f}", f"{spread:.1f}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
