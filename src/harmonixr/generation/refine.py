"""Model-based rescoring: refine (rewrite the notes the model finds least likely) and look-ahead
infill (continue from the left, keep what leads best into the music after the hole).

Refine is a discrete denoiser in the spirit of diffusion post-processing. Each round scores every
note of the piece (the bits of its ``Program Pitch Velocity Duration`` tokens under the model, each
window of bars in context), takes the least likely ones, and re-infills the beat each of them
starts in, in its track only, with everything else as context. A few rounds remove the notes that
fit worst while the rest of the piece stays exactly as it was.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from symusic import Note

from harmonixr.data.events import NOTE, Event, render_spans, with_tempo
from harmonixr.generation.modes import Generator, Result
from harmonixr.generation.piece import Piece, Region
from harmonixr.sampling.sampler import SamplingConfig


@dataclass(frozen=True)
class NoteScore:
    event: Event
    bits: float  # -log2 p of the note's four tokens given everything before it


def _events_by_bar(piece: Piece, first_bar: int, end_bar: int) -> dict[int, list[Event]]:
    """The events of bars ``first_bar`` to ``end_bar - 1``, by bar."""
    by_bar: dict[int, list[Event]] = {}
    for e in piece.events:
        if first_bar <= e.bar < end_bar:
            by_bar.setdefault(e.bar, []).append(e)
    return by_bar


def _body_budget(gen: Generator, piece: Piece) -> int:
    """Body tokens one window of :func:`note_bits` holds after the piece's header."""
    return gen.max_len - len(piece.header) - 2


def note_bits(gen: Generator, piece: Piece, first_bar: int = 0, windows: int = 1 << 30) -> tuple[float, list[NoteScore]]:
    """Bits of the body tokens and of every note of ``piece`` under the model, from ``first_bar``
    on, in up to ``windows`` windows of whole bars (each as long as the context allows)."""
    v, model = gen.vocab, gen.model
    budget = _body_budget(gen, piece)
    by_bar = _events_by_bar(piece, first_bar, 1 << 30)
    bars = sorted(by_bar)
    # Every bar renders on its own (a Bar token resets the position), so a window's length is the
    # sum of its bars' lengths, its first bar with the tempo in force added.
    cost = {b: len(render_spans(v, by_bar[b])[0]) for b in bars}
    total, out, k = 0.0, [], 0
    while k < len(bars) and windows > 0:
        start, tempo = k, piece.tempo_at(bars[k])
        window = with_tempo(by_bar[bars[k]], tempo)
        used, k = len(render_spans(v, window)[0]), k + 1
        while k < len(bars) and used + cost[bars[k]] <= budget:
            window, used, k = window + by_bar[bars[k]], used + cost[bars[k]], k + 1
        body, starts = render_spans(v, window)
        ids = [*piece.header, *body][: gen.max_len]
        feats = torch.from_numpy(gen.structure.features(ids, bars[start]))[None]
        with torch.inference_mode():
            logits = model(torch.tensor([ids]), feats)[0].float()  # (T, V)
        nats = F.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="none").numpy()  # nats[t] for ids[t + 1]
        offset = len(piece.header)
        total += float(nats[offset - 1 :].sum()) / math.log(2)
        for event, first in zip(window, starts):
            if event.kind == NOTE and offset + first + 3 < len(ids):
                idx = offset + first  # Program token of the note
                out.append(NoteScore(event, float(nats[idx - 1 : idx + 3].sum()) / math.log(2)))
        windows -= 1
    return total, out


def window_start(gen: Generator, piece: Piece, end_bar: int) -> int:
    """The earliest bar from which bars up to ``end_bar`` (excluded) fit one window of :func:`note_bits`."""
    v, by_bar = gen.vocab, _events_by_bar(piece, 0, end_bar)
    budget, rest, start = _body_budget(gen, piece), 0, end_bar
    for bar in sorted(by_bar, reverse=True):  # the window's first bar carries the tempo in force
        if len(render_spans(v, with_tempo(by_bar[bar], piece.tempo_at(bar)))[0]) + rest > budget:
            break
        rest += len(render_spans(v, by_bar[bar])[0])
        start = bar
    return start


def lookahead_infill(gen: Generator, piece: Piece, first_bar: int, bars: int, candidates: int = 8,
                     sampling: SamplingConfig = SamplingConfig(top_p=0.95), seed: int = 0, after: int = 4) -> Result:
    """Fill bars ``first_bar`` to ``first_bar + bars - 1`` of every track with the model reading
    left to right: ``candidates`` continuations from the left, each put back before the rest of the
    piece, and the one under which the notes of the ``after`` bars after the hole are most likely is
    kept. This weighs samples of P(fill | left) by P(right | left, fill), so the pick follows
    P(fill | left, right) of the left-to-right model. Each candidate is scored in one window that
    ends with those bars (fewer if they do not fit) and reaches as far back as the context allows.
    ``details``: the bits of the notes after the hole, per candidate, and the bars scored."""
    began = time.perf_counter()
    made = gen.continue_(piece, bars=bars, after_bar=first_bar, n=candidates, sampling=sampling, seed=seed)
    start, end = piece.tick(first_bar), piece.tick(first_bar + bars)
    every = list(range(len(piece.original.tracks)))
    pieces = []
    for result in made:
        notes = {k: [Note(n.time, min(n.duration, end - n.time), n.pitch, n.velocity) for n in track.notes
                     if start <= n.time < end] for k, track in enumerate(result.score.tracks)}
        score = piece.splice(notes, start, end, every)
        pieces.append((Piece.from_score(score, gen.vocab, piece.style), score, result))
    # The same bars after the hole for every candidate: as many as fit beside the densest one's hole.
    right = min(after, max(0, piece.bars - first_bar - bars))
    while True:
        begins = [window_start(gen, candidate, first_bar + bars + right) for candidate, *_ in pieces]
        if right <= 1 or max(begins) <= first_bar:
            break
        right -= 1
    stop = first_bar + bars + right
    scored = []
    for (candidate, score, result), begin in zip(pieces, begins):
        bits = note_bits(gen, candidate, min(begin, first_bar), windows=1)[1]
        scored.append((sum(s.bits for s in bits if first_bar + bars <= s.event.bar < stop), score, result))
    bits, score, result = min(scored, key=lambda item: item[0])
    return Result(score, start, end, tuple(every), result.notes, sum(r.tokens for r in made), result.finished,
                  time.perf_counter() - began, "lookahead",
                  {"bits_after": [b for b, *_ in scored], "bars_after": (first_bar + bars, stop)})


def refine(gen: Generator, piece: Piece, rounds: int = 2, fraction: float = 0.1, max_holes: int = 6,
           candidates: int = 4, sampling: SamplingConfig = SamplingConfig(temperature=0.9), seed: int = 0) -> Result:
    """Rewrite, ``rounds`` times, the beats of the ``fraction`` least likely notes (at most
    ``max_holes`` beats a round): ``candidates`` fills per beat, the one that makes the music around
    it most likely wins, the original included (so a beat only changes for the better).
    ``details``: mean bits per note after each round, and the beats rewritten."""
    began = time.perf_counter()
    if not piece.events:
        raise ValueError("nothing to refine: the piece has no notes")
    history = [float(np.mean([s.bits for s in note_bits(gen, piece)[1]]))]
    score, rewritten, notes, tokens, changed = piece.original, set(), 0, 0, 0
    grid = gen.vocab.grid
    for round_index in range(rounds):
        worst = sorted(note_bits(gen, piece)[1], key=lambda s: -s.bits)
        worst = worst[: max(1, int(len(worst) * fraction))]
        holes = list(dict.fromkeys((s.event.bar, s.event.pos // grid * grid, s.event.track) for s in worst))
        for k, (bar, beat, slot) in enumerate(holes[:max_holes]):
            beats = int(gen.vocab.beats_per_bar[piece.timesig(bar)])
            end = (bar, beat + grid) if beat + grid < beats * grid else (bar + 1, 0)
            track = piece.track_of(slot)
            results = gen.infill(piece, Region((bar, beat), end, (track,)), candidates, sampling,
                                 seed + 1000 * round_index + k, mode="refine")
            first = max(0, bar - 2)
            best_bits, best = note_bits(gen, piece, first, windows=1)[0], None
            for result in results:
                candidate = Piece.from_score(result.score, gen.vocab, piece.style)
                bits = note_bits(gen, candidate, first, windows=1)[0]
                if bits < best_bits:
                    best_bits, best = bits, (result, candidate)
            tokens += sum(r.tokens for r in results)
            if best is not None:
                (result, piece), score = best, best[0].score
                notes, changed = notes + result.notes, changed + 1
                rewritten.add(track)
        history.append(float(np.mean([s.bits for s in note_bits(gen, piece)[1]])))
    return Result(score, 0, None, tuple(sorted(rewritten)), notes, tokens, True, time.perf_counter() - began,
                  "refine", {"bits_per_note": history, "beats_rewritten": changed})
