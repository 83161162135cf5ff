"""Does the model hear the song? Bits per note of test pieces played twice: the first time and the second.

A model that hears what it has read writes the second time of a piece almost for free: every note
is one it has just read, at the same place in the bar, on the same track. For each family, the
test pieces (up to ``--pieces``) short enough that twice fits the model's context are played
twice (the notes shifted by the piece's length in bars, one plain sequence) and scored; the table
prints, per model, the bits per note (every field; pitch apart) of the first and the second time.
A piece's length in bars is seldom one of the echo lags (``harmonixr.tokens.echo``), so this
measures what the model hears by attention alone, beyond its echoes.

    python benchmarks/echo.py models/harmonixr-small [other checkpoints] --pieces 25
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus, CorpusPiece
from harmonixr.generation.piece import family as piece_family
from harmonixr.models.checkpoint import load_checkpoint
from harmonixr.models.transformer import padded_field_nll
from harmonixr.tokens.notes import BAR
from harmonixr.tokens.prompt import Bars, Header, Rows, plain
from harmonixr.tokens.vocab import COL, FIELDS, NOTE, NoteVocab

FAMILIES = ("folk", "chorale", "classical")
MARGIN = 40  # positions left for the header


def played_twice(piece: CorpusPiece, vocab: NoteVocab) -> Rows:
    """The plain sequence of ``piece`` played twice (its notes again, its length in bars later)."""
    bars = piece.bar_count
    shift = np.zeros(piece.notes.shape[1], dtype=np.int64)
    shift[BAR] = bars
    twice = np.concatenate([piece.notes, piece.notes + shift])
    meters = Bars(np.tile(piece.bars.meter, 2), np.tile(piece.bars.tempo, 2))
    slots = piece.tracks.slots(vocab)
    header = Header(vocab.style_value(piece.style), (), tuple(slots), tuple(piece.tracks.program(s, vocab) for s in slots))
    return plain(vocab, header, twice, 0, meters, ends=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--data", default="data/corpus-all")
    parser.add_argument("--pieces", type=int, default=25, help="test pieces per family")
    args = parser.parse_args()
    torch.set_num_threads(2)
    console = Console(width=150)
    corpus = Corpus([args.data])
    table = Table(title="test pieces played twice: bits per note the first time -> the second time")
    for column in ("model", "family", "pieces", "notes", "all fields", "pitch"):
        table.add_column(column, justify="right")
    pitch = FIELDS.index("pitch")
    for path in args.checkpoints:
        loaded = load_checkpoint(path)
        model, vocab = loaded.model, loaded.vocab
        for family in FAMILIES:
            totals = np.zeros((2, 2))  # (first, second) x (all, pitch)
            notes_in = 0
            used = 0
            for shards, row in corpus.rows("test"):
                if used == args.pieces:
                    break
                if piece_family(row) != family or 2 * row["notes"] + MARGIN > model.cfg.max_len:
                    continue
                piece = corpus.piece(shards, row)
                seq = played_twice(piece, vocab)
                with torch.no_grad():
                    nll = padded_field_nll(model, [seq.rows], [seq.target])[0].numpy() / np.log(2)
                note = seq.rows[1:][seq.target[1:], COL["type"]] == NOTE
                body = nll[note]
                half = len(piece.notes)
                for k, part in enumerate((body[:half], body[half:])):
                    totals[k] += part.sum(), part[:, pitch].sum()
                notes_in += half
                used += 1
            if used:
                first, second = totals / notes_in
                table.add_row(path.name, family, str(used), f"{notes_in:,}", f"{first[0]:.2f} -> {second[0]:.2f}",
                              f"{first[1]:.2f} -> {second[1]:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
