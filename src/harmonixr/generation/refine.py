"""Model-based rescoring: score every note of a piece, and refine (rewrite the least likely ones).

Refine is a discrete denoiser in the spirit of diffusion post-processing. Each round scores every
note of the piece (the bits of its fields under the model, each window of bars in context), takes
the least likely ones, and re-infills the beat each of them starts in, in its track only, with
everything else as context. A candidate is kept only if it makes the window around it more
likely, so a beat only changes for the better; the result says which beats changed and how many
notes that rewrote.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import GenerationError, Piece, Region
from harmonixr.generation.requests import Result
from harmonixr.models.transformer import padded_field_nll
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.tokens.notes import BAR, POS, TRACK
from harmonixr.tokens.prompt import Rows
from harmonixr.tokens.vocab import COL, NOTE
from harmonixr.training.batches import scoring_windows
from harmonixr.training.config import ObjectiveConfig
from harmonixr.training.examples import ExampleMaker

NEIGHBOURHOOD_BARS = 2  # bars on each side of a rewritten beat that judge it


@dataclass(frozen=True)
class NoteScore:
    note: np.ndarray  # the note's row (bar, pos, micro, track, pitch, dur, vel)
    bits: float  # -log2 p of its fields given everything before it


def note_bits(gen: Generator, piece: Piece, first_bar: int = 0, last_bar: int | None = None) -> tuple[float, list[NoteScore]]:
    """Bits of the notes of bars ``first_bar``..``last_bar`` (default: to the end) under the model,
    in windows of whole bars as long as the context allows, and each note's own bits."""
    notes, windows = _windows(gen, piece, first_bar, last_bar)
    bits = _row_bits(gen, windows)
    out = [NoteScore(note, float(b)) for note, b in zip(notes, np.concatenate([b for b, _ in bits]) if bits else [])]
    return float(sum(b.sum() for _, b in bits)), out


def span_bits(gen: Generator, pieces: list[Piece], first_bar: int, last_bar: int) -> list[float]:
    """The bits of bars ``first_bar``..``last_bar`` of each of ``pieces``, their windows scored in one batch."""
    windows = [_windows(gen, piece, first_bar, last_bar)[1] for piece in pieces]
    bits = iter(_row_bits(gen, [w for mine in windows for w in mine]))
    return [float(sum(next(bits)[1].sum() for _ in mine)) for mine in windows]


def _windows(gen: Generator, piece: Piece, first_bar: int, last_bar: int | None) -> tuple[np.ndarray, list[Rows]]:
    """The notes of bars ``first_bar``..``last_bar`` and the plain windows that score each once."""
    from harmonixr.data.corpus import CorpusPiece

    last = last_bar if last_bar is not None else 1 << 30
    notes = piece.notes[(piece.notes[:, BAR] >= first_bar) & (piece.notes[:, BAR] <= last)]
    if not len(notes):
        return notes, []
    corpus_piece = CorpusPiece(notes, piece.bars_meta(), piece.tracks, piece.style, "", "", "")
    maker = ExampleMaker(gen.vocab, gen.max_len, ObjectiveConfig(infill_rate=0.0))
    return notes, list(scoring_windows(maker, corpus_piece))


def _row_bits(gen: Generator, windows: list[Rows]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per window, in one forward pass over them all (padded at the end, which a causal model
    cannot see): the bits of its notes (N,) and of all its learned rows (P,)."""
    if not windows:
        return []
    with torch.inference_mode():
        nats = padded_field_nll(gen.model, [w.rows for w in windows], [w.target for w in windows])
    out = []
    for w, nll in zip(windows, nats):
        bits = nll.sum(-1).numpy() / math.log(2)  # (P,) its learned rows
        out.append((bits[w.rows[1:][w.target[1:], COL["type"]] == NOTE], bits))
    return out


def refine(gen: Generator, piece: Piece, rounds: int = 2, fraction: float = 0.1, max_holes: int = 6,
           candidates: int = 4, sampling: SamplingConfig = SamplingConfig(), seed: int = 0) -> Result:
    """Rewrite, ``rounds`` times, the beats of the ``fraction`` least likely notes (at most
    ``max_holes`` beats a round): ``candidates`` fills per beat, the one that makes the music around
    it most likely wins, the original included. ``details``: mean bits per note after each round,
    the beats rewritten, and the notes those rewrites removed and wrote."""
    began = time.perf_counter()
    if not len(piece.notes):
        raise GenerationError("nothing to refine: the piece has no notes")
    scores = note_bits(gen, piece)[1]
    history = [float(np.mean([s.bits for s in scores]))]
    score, rewritten, written, removed, positions = piece.original, set(), 0, 0, 0
    changed: list[dict[str, int]] = []
    grid = gen.vocab.grid
    for round_index in range(rounds):
        changes_before = len(changed)
        worst = sorted(scores, key=lambda s: -s.bits)[: max(1, int(len(scores) * fraction))]
        beats = list(dict.fromkeys((int(s.note[BAR]), int(s.note[POS]) // grid * grid, int(s.note[TRACK])) for s in worst))
        for k, (bar, beat, slot) in enumerate(beats[:max_holes]):
            positions_in_bar = piece.bar_positions()[min(bar, piece.bars - 1)]
            end = (bar, beat + grid) if beat + grid < positions_in_bar else (bar + 1, 0)
            track = piece.track_of(slot)
            region = Region((bar, beat), end, (track,))
            results = gen.infill(piece, region, candidates, sampling, seed + 1000 * round_index + k, mode="refine",
                                 source="sampled")
            first, last = max(0, bar - NEIGHBOURHOOD_BARS), bar + NEIGHBOURHOOD_BARS
            tried = [Piece.from_score(result.score, gen.vocab, piece.style) for result in results]
            bits = span_bits(gen, [piece, *tried], first, last)  # the original first: a candidate must beat it
            positions += sum(r.positions for r in results)
            best = int(np.argmin(bits))
            if best > 0:
                result = results[best - 1]
                before = len(piece.notes_in(gen_hole(piece, region, slot)))
                piece, score = tried[best - 1], result.score
                written, removed = written + result.notes, removed + before
                rewritten.add(track)
                changed.append({"bar": bar + 1, "beat": beat // grid + 1, "track": track + 1,
                                "notes_before": before, "notes_after": result.notes})
        if len(changed) > changes_before:  # the piece changed: score it again
            scores = note_bits(gen, piece)[1]
        history.append(float(np.mean([s.bits for s in scores])))
    return Result(score, 0, None, tuple(sorted(rewritten)), written, positions, True, time.perf_counter() - began,
                  "refine", {"bits_per_note": history, "beats_rewritten": len(changed), "notes_removed": removed,
                             "notes_written": written, "changes": changed})


def gen_hole(piece: Piece, region: Region, slot: int):  # noqa: ANN201 - Hole
    """The hole of a one-track region of ``piece`` (its slot given)."""
    return piece.hole(region, (slot,))
