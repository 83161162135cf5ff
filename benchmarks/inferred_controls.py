"""How well the bars around a hole foretell each track in it: the windows a sampled fill is held to.

For a hole of ``--bars`` whole bars, every track, in the middle of up to ``--pieces`` pieces per
family of ``--split``, each track that plays on both sides of the hole (with ``--one-side``: on
one side only, a track that enters or leaves in the hole) gets its controls inferred from the
bars around it (:class:`~harmonixr.generation.surroundings.Surroundings`), and what it really
plays in the hole is set against them. Per family:

- density: the median of real / inferred onsets, and the share of tracks whose real count falls
  inside the window of each tolerance in ``--tolerances``
  (:func:`~harmonixr.generation.asked.onset_windows`; ``INFERRED_TOLERANCE`` is the one
  used); with ``--one-side``, real onsets against the density where the track plays, and the
  share at or under that density raised by each tolerance (``ONE_SIDE_TOLERANCE`` is the one
  used), and the share of tracks that play in the hole, of those that play in a bar next to it
  (a fill must play them) and of those further off (``FAR_ONE_SIDE_SILENT``: a fill leaves them
  silent; counted here with that rule off);
- pitch (melodic tracks): the share of the hole's notes inside the pitches played around it
  widened by each margin of ``--margins`` semitones (``INFERRED_MARGIN``), and the share
  of tracks with every note inside; drums: the share of the hole's drum notes in the kit (the
  drum pitches) played around it;
- rhythm and chord: the share of the hole's onsets at the positions in a bar where the track
  starts notes around it, and with no more notes than its biggest chord there.

A window that holds nearly all real holes is one a sampled fill can be held to. No model runs
(the checkpoint gives the vocabulary), so it takes seconds:

    python benchmarks/inferred_controls.py --split val --pieces 30 [--one-side]
"""

from __future__ import annotations

import numpy as np
from holes import held_out_holes, hole_parser  # a sibling script
from rich.console import Console
from rich.table import Table

from harmonixr.generation import surroundings
from harmonixr.generation.asked import onset_windows
from harmonixr.generation.modes import Generator
from harmonixr.generation.surroundings import Surroundings
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK


def print_table(console: Console, title: str, columns: list[str], found: dict[str, list[list[float]]],
                cells) -> None:  # noqa: ANN001 - (rows array) -> list of cell strings
    """One row per family and one for all, ``cells`` making a row's cells from its (tracks, values) array."""
    if not found:
        console.print(f"{title}: no tracks")
        return
    out = Table(title=title)
    for column in ["family", "tracks", *columns]:
        out.add_column(column, justify="left" if column == "family" else "right")
    for family, values in [*sorted(found.items()), ("all", [r for rs in found.values() for r in rs])]:
        out.add_row(family, str(len(values)), *cells(np.asarray(values)))
    console.print(out)


def main() -> None:
    parser = hole_parser(__doc__)
    parser.add_argument("--tolerances", default="0.15,0.25,0.35,0.5,0.75")
    parser.add_argument("--margins", default="0,2,4,7")
    parser.add_argument("--one-side", action="store_true", help="tracks that play on one side of the hole only")
    args = parser.parse_args()
    surroundings.FAR_ONE_SIDE_SILENT = False  # the tracks that rule silences are counted here: this measures it
    tolerances = [float(x) for x in args.tolerances.split(",")]
    margins = [int(x) for x in args.margins.split(",")]
    generator = Generator(args.checkpoint)
    vocab = generator.vocab
    holes = held_out_holes(args, vocab)
    density: dict[str, list[list[float]]] = {}
    pitch: dict[str, list[list[float]]] = {}
    kit: dict[str, list[list[float]]] = {}
    rhythm: dict[str, list[list[float]]] = {}
    chords: dict[str, list[list[float]]] = {}
    for h in holes:
        piece, family, hole = h.piece, h.source, h.span
        inside = piece.notes[hole.contains(piece.notes, vocab)]
        near = Surroundings(piece, hole, vocab)
        around = near.notes
        for slot, controls in near.controls().items():
            both = near.both_sides(slot, controls)
            if both == args.one_side or not near.held_to(slot, controls):
                continue
            own = inside[inside[:, TRACK] == slot]
            real = len(np.unique(own[:, [BAR, POS]], axis=0))
            if args.one_side:
                playing = near.playing_density(slot) * args.bars
                kept = [int(real <= np.ceil(playing * (1 + t))) for t in tolerances]
                next_to = near.next_to(slot)
                density.setdefault(family, []).append([real / playing, *kept, next_to, next_to and real > 0,
                                                       not next_to, not next_to and real > 0])
            else:
                kept = [int(lo <= real <= hi) for t in tolerances
                        for _, lo, hi in onset_windows({slot: controls}, args.bars, t)]
                density.setdefault(family, []).append([real / (controls.density * args.bars), *kept])
            if len(own):
                onsets = np.unique(own[:, [BAR, POS]], axis=0)
                played = np.unique(around[around[:, TRACK] == slot, POS])
                size = len(played) / piece.bar_positions(hole.start[0] + 1)[hole.start[0]]
                rhythm.setdefault(family, []).append([len(onsets), np.isin(onsets[:, 1], played).mean(), size])
                _, sizes = np.unique(own[:, BAR] * (vocab.max_positions + 1) + own[:, POS], return_counts=True)
                chords.setdefault(family, []).append([len(sizes), (sizes <= controls.chord).mean(),
                                                      sizes.max() <= controls.chord])
            if slot == vocab.drum_slot and len(own):
                played = around[around[:, TRACK] == vocab.drum_slot, PITCH]
                kit.setdefault(family, []).append([len(own), np.isin(own[:, PITCH], sorted(played)).mean()])
            elif len(own):
                p, played = own[:, PITCH], around[around[:, TRACK] == slot, PITCH]
                pitch.setdefault(family, []).append([len(p), *(np.mean((p >= played.min() - m) & (p <= played.max() + m))
                                                               for m in margins)])
    console = Console(width=160)
    which = "one side only" if args.one_side else "both sides"
    console.print(f"tracks that play on {which} of the hole")
    print_table(console, f"inferred density: real onsets in the hole against the window, {args.split} split, "
                         f"holes of {args.bars} bars",
                ["median real/inferred", *((f"under +{t:.0%}" if args.one_side else f"inside ±{t:.0%}")
                                            for t in tolerances),
                 *(["next to the hole: play in it", "further: play in it"] if args.one_side else [])], density,
                lambda t: [f"{np.median(t[:, 0]):.2f}", *(f"{x:.0%}" for x in t[:, 1 : 1 + len(tolerances)].mean(axis=0)),
                           *([f"{t[:, -3].sum() / max(t[:, -4].sum(), 1):.0%} of {t[:, -4].sum():.0f}",
                              f"{t[:, -1].sum() / max(t[:, -2].sum(), 1):.0%} of {t[:, -2].sum():.0f}"]
                             if args.one_side else [])])
    print_table(console, f"inferred pitches: the hole's notes against the pitches played around it, {args.split} split",
                [*(f"notes inside +-{m}" for m in margins), *(f"tracks inside +-{m}" for m in margins)], pitch,
                lambda t: [*(f"{x:.1%}" for x in (t[:, 1:] * t[:, :1]).sum(axis=0) / t[:, 0].sum()),
                           *(f"{x:.0%}" for x in (t[:, 1:] == 1).mean(axis=0))])
    print_table(console, f"inferred kit: the hole's drum notes against the drum pitches played around it, {args.split} split",
                ["notes in the kit", "tracks inside"], kit,
                lambda t: [f"{(t[:, 1] * t[:, 0]).sum() / t[:, 0].sum():.1%}", f"{(t[:, 1] == 1).mean():.0%}"])
    print_table(console, f"inferred rhythm: the hole's onsets against the positions in the bar the track plays around it, "
                         f"{args.split} split", ["onsets at those positions", "tracks inside", "positions (share of the bar)"],
                rhythm, lambda t: [f"{(t[:, 1] * t[:, 0]).sum() / t[:, 0].sum():.1%}", f"{(t[:, 1] == 1).mean():.0%}",
                                   f"{np.median(t[:, 2]):.0%}"])
    print_table(console, f"inferred chord: the hole's onsets against the most notes at one onset of the track around it, "
                         f"{args.split} split", ["onsets within it", "tracks within it"], chords,
                lambda t: [f"{(t[:, 1] * t[:, 0]).sum() / t[:, 0].sum():.1%}", f"{t[:, 2].mean():.0%}"])


if __name__ == "__main__":
    main()
