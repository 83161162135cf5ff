"""How well the context match picks the song's own spans for a hole, against the best it could pick.

For a hole of ``--bars`` whole bars, every track, in the middle of up to ``--pieces`` pieces per
family of ``--split``, every span of the piece that piece-aware infill offers
(:func:`~harmonixr.generation.candidates.piece_candidates`) is compared with the hole's original
notes (note F1 on the grid: onset and pitch). Per family, the table prints the mean F1 of:

- the span piece-aware infill takes (the best context match);
- the same with a preference for near spans: the match less ``near`` per bar away, for each of
  ``--near`` (0 is the rule itself);
- the best span there is (an oracle: it looks at the hole), and the bars just before the hole.

No model runs: this is the choice alone, so a rule is quick to try on the validation split.

    python benchmarks/copy_choice.py --split val --pieces 30
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.evaluation.infill_quality import middle_holes
from harmonixr.generation.candidates import piece_candidates
from harmonixr.generation.piece import split_pieces
from harmonixr.tokens.notes import BAR, PITCH, POS
from harmonixr.tokens.vocab import NoteVocab

EVERY_SPAN = 1_000_000  # no limit on the spans kept


def note_f1(made: np.ndarray, truth: np.ndarray) -> float:
    """Note F1 of two note arrays on the grid: a note matches one with the same bar, position and pitch."""
    a, b = (Counter(map(tuple, x[:, [BAR, POS, PITCH]].tolist())) for x in (made, truth))
    total = len(made) + len(truth)
    return 2 * sum((a & b).values()) / total if total else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="models/harmonixr-small", help="for its vocabulary only")
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--split", default="val")
    parser.add_argument("--pieces", type=int, default=30, help="pieces per family")
    parser.add_argument("--bars", type=int, default=2)
    parser.add_argument("--near", default="0,0.001,0.005,0.02", help="preferences for near spans, per bar away")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    near = [float(x) for x in args.near.split(",")]
    vocab = NoteVocab.from_file(args.checkpoint)
    holes = middle_holes(split_pieces(Corpus([args.data]), args.split, args.pieces, vocab,
                                      np.random.default_rng(args.seed), by="family"), args.bars)
    found: dict[str, list[list[float]]] = {}
    for h in holes:
        piece, family, hole = h.piece, h.source, h.span
        truth = piece.notes[hole.contains(piece.notes, vocab)]
        spans = piece_candidates(piece.notes, piece.bars_meta().meter, hole, piece.bars, vocab, limit=EVERY_SPAN)
        if not spans:
            continue
        f1 = np.array([note_f1(c.notes, truth) for c in spans])
        match = np.array([c.match for c in spans])
        offsets = np.array([c.offset for c in spans])
        before = f1[offsets == -args.bars]
        found.setdefault(family, []).append([*(f1[np.argmax(match - k * np.abs(offsets))] for k in near), f1.max(),
                                             before[0] if len(before) else 0.0, len(spans)])
    out = Table(title=f"copy choice: note F1 of the span taken, {args.split} split, holes of {args.bars} bars")
    for column in ["family", "holes", *(f"near {k:g}" for k in near), "best span", "bars before", "spans"]:
        out.add_column(column, justify="left" if column == "family" else "right")
    rows = [*found.items(), ("all", [r for rs in found.values() for r in rs])]
    for family, values in rows:
        mean = np.mean(values, axis=0)
        out.add_row(family, str(len(values)), *(f"{x:.3f}" for x in mean[:-1]), f"{mean[-1]:.0f}")
    Console(width=160).print(out)


if __name__ == "__main__":
    main()
