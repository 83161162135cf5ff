"""Piece-aware infill: the song's own bars as candidate fills, scored by the model beside sampled ones.

Music repeats, and a producer expects a fill that fits the song. :func:`piece_candidates` takes
spans of the hole's length elsewhere in the piece (before it and after it, whole bars apart, on
the hole's tracks) and moves their notes into the hole. :func:`fill_bits` scores any fill under the
model with the music on both sides: the bits of its rows and of its end after the infill prompt
(the "spm" layout puts the music after the hole before the fill, so a fill that leads well into it
is likely). The modes keep the most likely fills (``source="best"``, the default), the copies
only (``"piece"``), or the sampled fills only (``"sampled"``); each result says where it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from harmonixr.models.transformer import NoteTransformer, field_nll
from harmonixr.tokens.notes import BAR, POS, TRACK, sort_notes
from harmonixr.tokens.prompt import Bars, Header, Hole, end_row, note_rows, time_key
from harmonixr.tokens.vocab import END, FILLED, NoteVocab

SOURCES = ("best", "piece", "sampled")
MAX_CANDIDATES = 24  # copies scored per hole at most (the nearest spans first)
SCORE_BATCH = 8


@dataclass(frozen=True)
class Candidate:
    """A fill: its notes (piece bars, slots), where it came from, and its bits under the model."""

    notes: np.ndarray
    label: str  # "sampled", or "from bars 17-18"
    bits: float = math.nan


def piece_candidates(notes: np.ndarray, meters: np.ndarray, hole: Hole, bars: int, vocab: NoteVocab,
                     limit: int = MAX_CANDIDATES) -> list[Candidate]:
    """Copies of the hole's span from ``d`` bars away (the same meters there), nearest first, on the
    hole's tracks; a span that overlaps the hole, or holds no note, is not offered."""
    start, end = hole.start, hole.end if hole.end is not None else (bars, 0)
    length = end[0] - start[0] + (end[1] > 0)
    own = meters[start[0] : start[0] + length]
    tracks = hole.tracks or tuple(np.unique(notes[:, TRACK]).tolist())
    mine = notes[np.isin(notes[:, TRACK], tracks)]
    key = time_key(mine[:, BAR], mine[:, POS], vocab)
    out: list[Candidate] = []
    for d in sorted(range(-start[0], bars - start[0]), key=lambda d: (abs(d), d)):
        if -length < d < length or len(out) >= limit:
            continue
        if not np.array_equal(meters[start[0] + d : start[0] + d + length], own):
            continue
        inside = (key >= time_key(start[0] + d, start[1], vocab)) & (key < time_key(end[0] + d, end[1], vocab))
        if not inside.any():
            continue
        moved = mine[inside].copy()
        moved[:, BAR] -= d
        first, last = start[0] + d + 1, start[0] + d + length
        out.append(Candidate(sort_notes(moved), f"from bars {first}-{last}" if last > first else f"from bar {first}"))
    return out


@torch.inference_mode()
def fill_bits(model: NoteTransformer, vocab: NoteVocab, prompt: np.ndarray, fills: list[np.ndarray], hole: Hole,
              bar0: int, bars: Bars, header: Header) -> list[float]:
    """Bits of each fill's rows and its END after ``prompt`` (the infill prompt, ending with FILL)."""
    out: list[float] = []
    for k in range(0, len(fills), SCORE_BATCH):
        chunk = fills[k : k + SCORE_BATCH]
        seqs = [np.concatenate([prompt, note_rows(vocab, f, hole.start[0], bar0, bars, header, FILLED, hole),
                                end_row(END, FILLED)]) for f in chunk]
        T = max(len(s) for s in seqs)
        rows = torch.zeros((len(seqs), T, prompt.shape[1]), dtype=torch.long)
        target = torch.zeros((len(seqs), T), dtype=torch.bool)
        for b, seq in enumerate(seqs):
            rows[b, : len(seq)] = torch.from_numpy(seq)
            target[b, len(prompt) : len(seq)] = True
        nll, _ = field_nll(model, rows, target)  # (P, K), sequences in order
        counts = target[:, 1:].sum(1).tolist()
        out += [float(part.sum()) / math.log(2) for part in torch.split(nll, counts)]
    return out
