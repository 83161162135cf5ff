"""How well the context match picks the song's own spans for a hole, against the best it could pick.

For a hole of ``--bars`` whole bars, every track, in the middle of up to ``--pieces`` pieces per
family of ``--split``, every span of the piece that piece-aware infill offers
(:func:`~harmonixr.generation.candidates.piece_candidates`) is compared with the hole's original
notes (note F1 on the grid: onset and pitch). Per family, the table prints the mean F1 of:

- the span piece-aware infill takes (the best score: the context match, and where that is weak
  the harmony's fit, :data:`~harmonixr.generation.candidates.WEAK_MATCH`), and its pitch-class overlap;
- the same with a preference for near spans: the score less ``near`` per bar away, for each of
  ``--near`` (0 is the rule itself);
- the best span there is (an oracle: it looks at the hole), and the bars just before the hole
  (with their pitch-class overlap);
- with ``--after``, the span after which the model finds the music after the hole likeliest (of
  the 24 best-matching spans piece-aware infill weighs, :func:`after_bits`): the "how likely the
  music after it becomes" of a candidate, read left to right as the model reads music best.

Without ``--after`` no model runs: this is the choice alone, so a rule is quick to try on the
validation split.

    python benchmarks/copy_choice.py --split val --pieces 30 [--after]
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from holes import held_out_holes, hole_parser  # a sibling script
from rich.console import Console
from rich.table import Table

from harmonixr.evaluation.infill_quality import histogram_overlap
from harmonixr.generation.candidates import MAX_CANDIDATES, piece_candidates, sequence_bits
from harmonixr.generation.infill import context_controls
from harmonixr.generation.modes import Generator
from harmonixr.models.transformer import NoteTransformer
from harmonixr.tokens.notes import BAR, PITCH, POS, sort_notes
from harmonixr.tokens.prompt import Bars, Header, Hole, header_rows, plain, time_key
from harmonixr.tokens.vocab import NoteVocab

EVERY_SPAN = 1_000_000  # no limit on the spans kept


def pitch_class_overlap(made: np.ndarray, truth: np.ndarray) -> float:
    """Pitch-class overlap of two note arrays, as ``benchmarks/infill_quality.py`` measures it (drum
    sounds taken mod 12 too)."""
    return histogram_overlap(made[:, PITCH].tolist(), truth[:, PITCH].tolist(), 12)


def note_f1(made: np.ndarray, truth: np.ndarray) -> float:
    """Note F1 of two note arrays on the grid: a note matches one with the same bar, position and pitch."""
    a, b = (Counter(map(tuple, x[:, [BAR, POS, PITCH]].tolist())) for x in (made, truth))
    total = len(made) + len(truth)
    return 2 * sum((a & b).values()) / total if total else 0.0


AFTER_BARS = 2  # bars after the hole whose likelihood scores a fill (``--after``)


def after_bits(model: NoteTransformer, vocab: NoteVocab, notes: np.ndarray, fills: list[np.ndarray], hole: Hole,
               bars: Bars, header: Header, after: int = AFTER_BARS) -> list[float]:
    """Bits of the ``after`` bars that follow the hole (every track), with each fill in its place,
    read left to right in a plain window: how likely the music after the hole becomes once the
    fill has been played. The window starts at the latest bar line that leaves room for the
    fill's notes and the bars after it; 0 for every fill when nothing follows the hole."""
    if hole.end is None:
        return [0.0] * len(fills)
    end = hole.end[0] + (hole.end[1] > 0) + after
    kept = notes[~hole.contains(notes, vocab) & (notes[:, BAR] < end)]
    later = time_key(kept[:, BAR], kept[:, POS], vocab) >= time_key(*hole.end, vocab)
    if not later.any():
        return [0.0] * len(fills)
    before = kept[~later & ~hole.in_span(kept, vocab)]  # other tracks' notes in the span stay with the fill
    room = model.cfg.max_len - len(header_rows(vocab, header)) - max(len(f) for f in fills) \
        - int((~later).sum() - len(before)) - int(later.sum())
    bar0 = hole.start[0]
    if len(before) and room > 0:  # the earliest bar line from which the notes before fit in ``room``
        bar0 = int(before[max(len(before) - room, 0), BAR])
        bar0 = min(bar0 + int((before[:, BAR] >= bar0).sum() > room), hole.start[0])
    seqs, targets = [], []
    for fill in fills:
        window = sort_notes(np.concatenate([kept[kept[:, BAR] >= bar0], fill]))
        rows = plain(vocab, header, window, bar0, bars, ends=False)
        keys = time_key(window[:, BAR], window[:, POS], vocab)
        target = np.zeros(len(rows.rows), dtype=bool)
        target[len(rows.rows) - len(window):] = keys >= time_key(*hole.end, vocab)
        seqs.append(rows.rows)
        targets.append(target)
    return sequence_bits(model, seqs, targets)


def main() -> None:
    parser = hole_parser(__doc__, checkpoint_help="for its vocabulary only")
    parser.add_argument("--near", default="0,0.001,0.005,0.02", help="preferences for near spans, per bar away")
    parser.add_argument("--after", action="store_true", help="also the span the model's bits of the bars after pick")
    args = parser.parse_args()
    near = [float(x) for x in args.near.split(",")]
    vocab = NoteVocab.from_file(args.checkpoint)
    gen = Generator(args.checkpoint) if args.after else None
    found: dict[str, list[list[float]]] = {}
    for h in held_out_holes(args, vocab):
        piece, family, hole = h.piece, h.source, h.span
        truth = piece.notes[hole.contains(piece.notes, vocab)]
        spans = piece_candidates(piece.notes, piece.bars_meta().meter, hole, piece.bars, vocab, limit=EVERY_SPAN)
        if not spans:
            continue
        f1 = np.array([note_f1(c.notes, truth) for c in spans])
        pc = np.array([pitch_class_overlap(c.notes, truth) for c in spans])
        score = np.array([c.score for c in spans])
        offsets = np.array([c.offset for c in spans])
        start = hole.start[0]  # the bars just before the hole, every track, moved into it
        before = piece.notes[(piece.notes[:, BAR] >= start - args.bars) & (piece.notes[:, BAR] < start)].copy()
        before[:, BAR] += args.bars
        picks = [*(f1[np.argmax(score - k * np.abs(offsets))] for k in near)]
        if gen is not None:  # the spans come best-matching first
            header = piece.header(controls=context_controls(gen.vocab, piece, hole))
            with torch.autocast("cpu", torch.bfloat16):
                bits = after_bits(gen.model, vocab, piece.notes, [c.notes for c in spans[:MAX_CANDIDATES]], hole,
                                  piece.bars_meta(hole.end[0] + AFTER_BARS + 1), header)
            picks.append(f1[int(np.argmin(bits))])
        found.setdefault(family, []).append([*picks, f1.max(), note_f1(before, truth), pc[int(np.argmax(score))],
                                             pitch_class_overlap(before, truth), len(spans)])
    out = Table(title=f"copy choice: note F1 (pc: pitch-class overlap) of the span taken, {args.split} split, "
                      f"holes of {args.bars} bars")
    for column in ["family", "holes", *(f"near {k:g}" for k in near), *(["after bits"] if gen else []), "best span",
                   "bars before", "pc taken", "pc before", "spans"]:
        out.add_column(column, justify="left" if column == "family" else "right")
    rows = [*found.items(), ("all", [r for rs in found.values() for r in rs])]
    for family, values in rows:
        mean = np.mean(values, axis=0)
        out.add_row(family, str(len(values)), *(f"{x:.3f}" for x in mean[:-1]), f"{mean[-1]:.0f}")
    Console(width=160).print(out)


if __name__ == "__main__":
    main()
