"""What the benchmarks over held-out holes share: their flags and their holes.

A hole of ``--bars`` whole bars in the middle of up to ``--pieces`` pieces per family of
``--split`` (the validation split by default: the rules these benchmarks weigh are chosen there),
drawn with ``--seed`` among those long enough (``--holes`` spreads that many over each piece);
``--checkpoint`` and ``--data`` say which model and prepared corpus.
"""

from __future__ import annotations

import argparse

import numpy as np

from harmonixr.data.corpus import Corpus
from harmonixr.evaluation.infill_quality import Hole, middle_holes, shortest_piece
from harmonixr.generation.piece import split_pieces
from harmonixr.tokens.vocab import NoteVocab


def hole_parser(doc: str | None, pieces: int = 30, checkpoint_help: str | None = None) -> argparse.ArgumentParser:
    """A parser with the flags of the holes (``pieces`` per family by default)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="models/harmonixr-small", help=checkpoint_help)
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--split", default="val")
    parser.add_argument("--pieces", type=int, default=pieces, help="pieces per family")
    parser.add_argument("--bars", type=int, default=2)
    parser.add_argument("--holes", type=int, default=1, help="holes per piece, spread evenly (1: the middle)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def held_out_holes(args: argparse.Namespace, vocab: NoteVocab) -> list[Hole]:
    """The holes the flags ask for (in pieces long enough for them)."""
    return middle_holes(split_pieces(Corpus([args.data]), args.split, args.pieces, vocab, np.random.default_rng(args.seed),
                                     by="family", min_bars=shortest_piece(args.bars, args.holes)), args.bars, args.holes)
