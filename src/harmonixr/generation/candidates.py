"""Piece-aware infill: the song's own bars as candidate fills, ranked beside sampled ones.

Music repeats, and a producer expects a fill that fits the song. :func:`piece_candidates` takes
spans of the hole's length elsewhere in the piece (before it and after it, whole bars apart, on
the hole's tracks) and moves their notes into the hole. Each is scored two ways:

- its **context match**: how alike the bars around the span are to the bars around the hole
  (note F1 of onset and pitch over 1, 2 and 4 bars before and after, :data:`CONTEXT_SCALES`, the
  hole's own notes never looked at): where the song repeats a passage, the bars around it repeat
  too; where it repeats it in another key (a last chorus a step up), the span is transposed
  (melodic notes only) when that matches clearly better (:data:`TRANSPOSE_MARGIN`);
- its **bits** under the model with the music on both sides (:func:`fill_bits`: its rows and its
  end after the infill prompt, which holds the music after the hole and the per-track controls).

Where the song does not repeat (no span matches well), a copy's pitch classes that fit the harmony
around the hole count as well; and the drums of a hole that no span matches clearly play the
common pattern of the best-matching spans and of the bars next to the hole (:func:`common_drums`):
a drummer varies a groove.

``source="piece"`` (the default) returns the copies by that score (bits break ties);
``"best"`` puts the copies that match well (at least :data:`GOOD_MATCH`) first and ranks the
rest, copies and sampled fills together, by bits per note; ``"sampled"`` samples only. On 105
held-out holes the context match chose better fills than the model's bits did (note F1 0.320
against 0.244; docs/evaluation.md, ``benchmarks/infill_quality.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from harmonixr.models.transformer import NoteTransformer, padded_field_nll
from harmonixr.tokens.echo import add_echoes
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK, sort_notes
from harmonixr.tokens.prompt import Bars, Header, Hole, end_row, note_rows, time_key
from harmonixr.tokens.vocab import END, FILLED, MATCHED_COLUMN, SOUNDING_COLUMNS, NoteVocab

SOURCES = ("piece", "best", "sampled")
# Copies kept per hole at most: every span of the piece is matched, the best-matching kept (ties:
# the nearest). Matching only the 24 nearest spans gave held-out POP909 holes note F1 0.215, all of
# them 0.734 (a chorus comes back 30 or more bars later; benchmarks/infill_quality.py, docs/evaluation.md).
MAX_CANDIDATES = 24
SCORE_BATCH = 8
CONTEXT_SCALES = (1, 2, 4)  # bars on each side compared by the context match, averaged over these spans
GOOD_MATCH = 0.5  # "best": a copy whose context matches this well goes before any sampled fill
TRANSPOSITIONS = range(-6, 7)  # semitones a copy's melodic notes may move (drums stay)
# A transposed copy's context must match this much better than the copy in its own key, and it
# ranks by its match less this: on the validation split (165 holes of 2 bars) 0.1, 0.15 and 0.25
# gave note F1 +0.005, +0.007 and +0.004 over no transposition (POP909 +0.042, +0.039, +0.012:
# songs that repeat a chorus a step up); with no margin, -0.017 (spurious matches).
TRANSPOSE_MARGIN = 0.15
# Drums in a hole the song does not clearly repeat (its best copy matches under CLEAR_MATCH) play
# the common pattern of the PATTERN_SPANS best-matching spans (:func:`common_drums`): a drummer
# varies a groove from bar to bar, so no one span is the best guess. Chosen with
# ``python benchmarks/copy_choice.py --split train --pieces 40`` (no model runs; Freedoom has no
# validation pieces): Groove holes' note F1 0.462 -> 0.516, pitch-class overlap 0.859 -> 0.865
# (the bars before: 0.424, 0.844), their drum notes a median 1.14 times the original's (1.27 with
# no PATTERN_MOST, 1.20 with the agreed places alone); Freedoom's unchanged (0.762 -> 0.761; its
# drums repeat exactly). On the validation split Groove went 0.321 -> 0.373 (the bars before: 0.345).
CLEAR_MATCH = 0.8
PATTERN_SPANS = 12
PATTERN_SHARE = 0.3  # a sound is played where spans holding this share of the match weight play it
PATTERN_MOST = 1.25  # and at most this many times as often as the spans play it
# The bar just before the hole and the bar just after it, each repeated through the hole, vote in
# the common pattern too, each with NEIGHBOUR_WEIGHT x the best span's weight: what the drummer
# has just played, and plays next. Groove holes' note F1 (``benchmarks/copy_choice.py --holes 3``,
# no model runs), 0 -> 2: validation split (--pieces 30, 90 holes) 0.459 -> 0.487, training split
# (--pieces 40, 120 holes) 0.495 -> 0.511, Freedoom's 0.830 -> 0.830 (pitch-class overlap 0.891 ->
# 0.897); an ad-hoc sweep on validation gave 0.480, 0.486, 0.485, 0.475 at 1, 2, 3, 5.
NEIGHBOUR_WEIGHT = 2.0
# Where no span's surroundings match the hole's well (all under WEAK_MATCH: the song does not
# repeat here), a copy ranks by its match plus HARMONY_WEIGHT x the overlap of its pitch classes
# with those of the music within HARMONY_BARS of the hole (the hole's own notes left out): the
# harmony around the hole is then the better guide. Chosen with ``benchmarks/copy_choice.py``
# (--pieces 40 on the training split, 30 on the validation split; no model runs): pitch-class
# overlap 0.741 -> 0.767 and 0.760 -> 0.771, note F1 0.414 -> 0.410 and 0.436 -> 0.441;
# GiantMIDI's overlap 0.509 -> 0.636, where copying the bars before has 0.607.
WEAK_MATCH = 0.3
HARMONY_WEIGHT = 0.5
HARMONY_BARS = 2


@dataclass(frozen=True)
class Candidate:
    """A fill: its notes (piece bars, slots), where it came from, and its bits under the model."""

    notes: np.ndarray
    label: str  # "sampled", or "from bars 17-18"
    bits: float = math.nan
    match: float = math.nan  # context match of a copy (0-1)
    offset: int | None = None  # a copy: bars from the hole to the span it came from (negative: before)
    score: float = math.nan  # how a copy ranks: its match, plus its harmony's fit where that is weak (WEAK_MATCH)
    steps: int = 0  # a sampled fill: the sampler's steps
    ended: bool = True  # a sampled fill: closed by the model (False: cut at the note budget)

    @property
    def score_or_0(self) -> float:
        return 0.0 if math.isnan(self.score) else self.score  # a sampled fill matches nothing

    @property
    def bits_per_note(self) -> float:
        return self.bits / (len(self.notes) + 1)  # with the end: a total would favour the sparsest span

    @property
    def tie_break(self) -> float:
        """Bits per note to 1/1000 of a bit: two copies of the same music, scored in batches of other
        widths, differ in the last float bits, and must not swap places from one request to the next."""
        return round(self.bits_per_note, 3)


def distinct(candidates: list[Candidate]) -> list[Candidate]:
    """``candidates`` in order, each set of notes once (the first): variations differ."""
    firsts: dict[bytes, Candidate] = {}
    for c in candidates:
        firsts.setdefault(c.notes.tobytes(), c)
    return list(firsts.values())


def rank(pool: list[Candidate], source: str) -> list[Candidate]:
    """``pool`` in the order ``source`` keeps (see the module's text)."""
    if source == "piece":
        return sorted(pool, key=lambda c: (-c.score_or_0, c.tie_break))
    good = sorted((c for c in pool if c.match >= GOOD_MATCH), key=lambda c: -c.match)
    rest = sorted((c for c in pool if not c.match >= GOOD_MATCH), key=lambda c: c.tie_break)
    return good + rest


class NoteCells:
    """Notes as integer cells (position, pitch), by bar, so that the multiset F1s of the context
    match are a few numpy calls for every span of the piece at once: the notes two windows of bars
    have in common are the sums of what their bars, one by one, have in common (:meth:`common`).
    Melodic pitches may be moved; drums never."""

    PITCHES = 512  # a cell's room for a pitch (moved as far as TRANSPOSITIONS go): never the next position's
    OFFSET = 256  # added to every pitch, so a moved one stays inside its position's room

    def __init__(self, notes: np.ndarray, bars: int, drum_slot: int) -> None:
        inside = notes[(notes[:, BAR] >= 0) & (notes[:, BAR] < bars)]  # no window reaches others
        ordered = inside[np.argsort(inside[:, BAR], kind="stable")]
        self.bar = ordered[:, BAR]
        self.onset = ordered[:, POS] * self.PITCHES
        self.cell = self.onset + ordered[:, PITCH] + self.OFFSET
        self.melodic = (ordered[:, TRACK] != drum_slot).astype(np.int64)
        self.starts = np.searchsorted(self.bar, np.arange(bars + 1), side="left")
        self.bars = bars
        self.room = self.PITCHES * (int(self.cell.max(initial=0)) // self.PITCHES + 2)  # more than any cell, moved or not
        self._ranked: dict[int | None, tuple[np.ndarray, np.ndarray]] = {}
        self._common: dict[tuple[int, int | None], np.ndarray] = {}
        self.matches: dict[tuple[int, int, int | None], np.ndarray] = {}  # :func:`context_match`'s, per hole and key

    def cells(self, shift: int | None) -> np.ndarray:
        """(N,) each note's cell, its melodic pitch moved ``shift`` semitones (None: its onset alone)."""
        return self.onset if shift is None else self.cell + shift * self.melodic

    def ranked(self, shift: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(N,) each note's cell (:meth:`cells`), and (N,) how many of its bar's notes before it in
        a fixed order, itself included, have that cell (1 for the first)."""
        if shift not in self._ranked:
            cells = self.cells(shift)
            key = self.bar * self.room + cells
            order = np.argsort(key, kind="stable")
            ordered = key[order]
            first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # where each run of one cell starts
            rank = np.empty(len(key), dtype=np.int64)
            rank[order] = np.arange(len(key)) - np.repeat(first, np.diff(np.r_[first, len(key)])) + 1
            self._ranked[shift] = (cells, rank)
        return self._ranked[shift]

    def common(self, bar: int, shift: int | None) -> np.ndarray:
        """(bars,) for every bar, how many of its notes, moved ``shift`` (None: onsets alone), the
        notes of ``bar`` have too, unmoved: a multiset intersection (a cell twice in both counts twice)."""
        if (bar, shift) not in self._common:
            counts = np.bincount(self.cells(None if shift is None else 0)[self.starts[bar] : self.starts[bar + 1]],
                                 minlength=self.room)  # (room,) the bar's notes on each cell
            cells, rank = self.ranked(shift)
            shared = rank <= counts[cells]  # the note is one of the cell's first counts
            self._common[(bar, shift)] = np.bincount(self.bar, weights=shared, minlength=self.bars)
        return self._common[(bar, shift)]

    def notes_in(self, first: np.ndarray | int, count: int) -> np.ndarray:
        """How many notes start in the ``count`` bars from ``first`` (every window in the piece)."""
        return self.starts[first + count] - self.starts[first]


def context_match(cells: NoteCells, start: int, length: int, shift: int | None = 0) -> np.ndarray:
    """(bars,) how alike the bars around the hole (bars ``start`` to ``start + length``) are to
    those around the span that starts at each bar, its melodic pitches moved ``shift`` semitones
    (None: onsets alone, which bounds the match in every key from above): for each of
    :data:`CONTEXT_SCALES`, the mean note F1 of that many bars before and after (a side outside the
    piece left out; 0 when neither can be compared), averaged over the scales. ``cells`` holds no
    note of the hole. On the validation split (131 holes of 2 bars) the three scales together chose
    better copies than 2 bars alone: note F1 0.325 against 0.302."""
    if (start, length, shift) in cells.matches:
        return cells.matches[(start, length, shift)]
    bars = cells.bars
    scores = []
    for context in CONTEXT_SCALES:
        f1s, sides = np.zeros(bars), np.zeros(bars, dtype=np.int64)
        for offset in (-context, length):
            a0 = start + offset  # this side of the hole; b0: the same side of every span
            if a0 < 0 or a0 + context > bars:
                continue
            b0 = np.arange(bars) + offset
            b0 = b0[(b0 >= 0) & (b0 + context <= bars)]
            hits = np.zeros(len(b0))
            for j in range(context):
                hits += cells.common(a0 + j, shift)[b0 + j]
            total = cells.notes_in(a0, context) + cells.notes_in(b0, context)
            seen = total > 0  # nothing on either side says nothing
            f1s[b0[seen] - offset] += 2 * hits[seen] / total[seen]
            sides[b0[seen] - offset] += 1
        scores.append(np.where(sides > 0, f1s / np.maximum(sides, 1), 0.0))
    cells.matches[(start, length, shift)] = np.mean(scores, axis=0)
    return cells.matches[(start, length, shift)]


def piece_candidates(notes: np.ndarray, meters: np.ndarray, hole: Hole, bars: int, vocab: NoteVocab,
                     limit: int = MAX_CANDIDATES) -> list[Candidate]:
    """Copies of the hole's span from ``d`` bars away (the same meters there), on the hole's tracks:
    every span of the piece is matched and the ``limit`` best-matching are returned, best first
    (equal matches: the nearest first); a span that overlaps the hole, or holds no note, is not
    offered, nor one whose notes an offered one has already."""
    start, end = hole.start, hole.end if hole.end is not None else (bars, 0)
    length = end[0] - start[0] + (end[1] > 0)
    own = meters[start[0] : start[0] + length]
    tracks = hole.tracks or tuple(np.unique(notes[:, TRACK]).tolist())
    mine = notes[np.isin(notes[:, TRACK], tracks)]
    key = time_key(mine[:, BAR], mine[:, POS], vocab)
    visible = mine[~hole.in_span(mine, vocab)]  # the context match never looks inside the hole
    cells = NoteCells(visible, bars, vocab.drum_slot)
    match_at = context_match(cells, start[0], length)  # (bars,) the match of the span from each bar
    spans = []  # (d, the notes inside the span, its match in its own key): every span of the same meters
    for d in sorted(range(-start[0], bars - start[0]), key=lambda d: (abs(d), d)):
        if -length < d < length or not np.array_equal(meters[start[0] + d : start[0] + d + length], own):
            continue
        inside = (key >= time_key(start[0] + d, start[1], vocab)) & (key < time_key(end[0] + d, end[1], vocab))
        if inside.any():
            spans.append((d, inside, float(match_at[start[0] + d])))
    # only a span that can enter the best ``limit`` in another key is tried in the others
    floor = sorted((m for *_, m in spans), reverse=True)[limit - 1] if len(spans) >= limit else -math.inf
    keyed = []  # (match, d, inside, semitones): each span in the key it matches best
    for d, inside, match in spans:
        shift, moved_match = best_transposition(cells, start[0], length, d, max(match, floor))
        elsewhere = moved_match - TRANSPOSE_MARGIN > match  # the song repeats it in another key
        keyed.append((moved_match - TRANSPOSE_MARGIN, d, inside, shift) if elsewhere else (match, d, inside, 0))
    scored = [(k[0], *k) for k in keyed]  # (score, match, d, inside, semitones)
    if keyed and max(k[0] for k in keyed) < WEAK_MATCH:  # the song does not repeat here: its harmony helps choose
        near = (notes[:, BAR] >= start[0] - HARMONY_BARS) & (notes[:, BAR] < start[0] + length + HARMONY_BARS)
        around = pitch_classes(notes[near & ~hole.contains(notes, vocab)], vocab.drum_slot)
        scored = [(m + HARMONY_WEIGHT * overlap(pitch_classes(mine[inside], vocab.drum_slot, shift), around),
                   m, d, inside, shift) for _, m, d, inside, shift in scored]
    out: list[Candidate] = []
    offered: set[bytes] = set()  # a span the song plays again note for note is offered once
    for score, match, d, inside, shift in sorted(scored, key=lambda k: -k[0]):  # stable: ties nearest first
        moved = mine[inside].copy()
        moved[:, BAR] -= d
        if shift:
            melodic = moved[:, TRACK] != vocab.drum_slot
            moved[melodic, PITCH] = np.clip(moved[melodic, PITCH] + shift, *vocab.spec.pitch_range)
        moved = sort_notes(moved)
        if (notes_key := moved.tobytes()) in offered:
            continue
        offered.add(notes_key)
        first, last = start[0] + d + 1, start[0] + d + length
        label = f"from bars {first}-{last}" if last > first else f"from bar {first}"
        label += f", {'up' if shift > 0 else 'down'} {abs(shift)}" if shift else ""
        out.append(Candidate(moved, label, match=match, offset=d, score=score))
        if len(out) == limit:
            break
    span = (int(time_key(*start, vocab)), int(time_key(*end, vocab)))
    neighbours = (repeated(mine, bar, start[0], length, span, vocab) for bar in (start[0] - 1, start[0] + length)
                  if hole.end is not None and 0 <= bar < bars and (meters[bar] == own).all())  # a continuation: none
    return common_drums(out, vocab.drum_slot, tuple(n for n in neighbours if len(n)))


def repeated(notes: np.ndarray, bar: int, first: int, length: int, span: tuple[int, int], vocab: NoteVocab) -> np.ndarray:
    """``notes``' of bar ``bar`` played again in each of the ``length`` bars from ``first``, those
    inside ``span`` (a hole's first and end time keys, :func:`time_key`)."""
    played = notes[notes[:, BAR] == bar]
    moved = np.tile(played, (length, 1))
    moved[:, BAR] = np.repeat(np.arange(first, first + length), len(played))
    keys = time_key(moved[:, BAR], moved[:, POS], vocab)
    return sort_notes(moved[(keys >= span[0]) & (keys < span[1])])


def common_drums(copies: list[Candidate], drum_slot: int, neighbours: tuple[np.ndarray, ...] = ()) -> list[Candidate]:
    """``copies`` (best first), the first one's drums replaced by the common pattern of the
    :data:`PATTERN_SPANS` best, each weighed by its context match, and of ``neighbours`` (the bars
    next to the hole, each repeated through it: :func:`repeated`), each weighed
    :data:`NEIGHBOUR_WEIGHT` x the best span (see :data:`CLEAR_MATCH`); as they are when the first
    matches clearly or nothing has drums. The pattern plays a sound at the places where voters
    holding :data:`PATTERN_SHARE` of the weight play it, most agreed first, as often as they play it
    on average and at most :data:`PATTERN_MOST` times that: a crash the spans all have somewhere,
    though not at one place, is kept, and a kick the spans move about does not pile up. A note
    takes its velocity, length and timing from the first voter that plays it (the best span, then
    the bar before, the bar after and the other spans)."""
    spans = copies[:PATTERN_SPANS]  # one span alone: its own drums are the pattern
    voters = [c.notes for c in spans[:1]] + list(neighbours) + [c.notes for c in spans[1:]]
    if len(spans) < 2 or spans[0].match >= CLEAR_MATCH or not any((v[:, TRACK] == drum_slot).any() for v in voters):
        return copies
    weights = np.array([max(c.match, 0.0) for c in spans]) + 1e-9  # (S,) equal when nothing matches
    weights = np.concatenate([weights[:1], np.full(len(neighbours), NEIGHBOUR_WEIGHT * weights.max()), weights[1:]])
    votes: dict[tuple[int, int, int], float] = {}  # (bar, position, sound) -> the weight of the voters playing it
    first: dict[tuple[int, int, int], np.ndarray] = {}  # -> its note in the first voter playing it
    times: dict[int, float] = {}  # sound -> how often the voters play it, on average
    for played, w in zip(voters, weights / weights.sum()):
        for note in played[played[:, TRACK] == drum_slot]:
            cell = (int(note[BAR]), int(note[POS]), int(note[PITCH]))
            votes[cell] = votes.get(cell, 0.0) + float(w)
            first.setdefault(cell, note)
            times[cell[2]] = times.get(cell[2], 0.0) + float(w)
    drums = []
    for sound, often in times.items():
        places = sorted((c for c in votes if c[2] == sound), key=lambda c: -votes[c])  # stable: ties in the best span's order
        agreed = sum(votes[c] >= PATTERN_SHARE for c in places)
        drums += [first[c] for c in places[: max(round(often), min(agreed, round(PATTERN_MOST * often)))]]
    best = copies[0]
    notes = sort_notes(np.concatenate([best.notes[best.notes[:, TRACK] != drum_slot], np.stack(drums)]))
    label = f"{best.label}, drums as {len(spans)} like spans{' and the bars around' if len(neighbours) else ''} play"
    return [replace(best, notes=notes, label=label)] + copies[1:]


def pitch_classes(notes: np.ndarray, drum_slot: int, shift: int = 0) -> np.ndarray | None:
    """(12,) the share of ``notes``' melodic notes in each pitch class, moved ``shift`` semitones;
    None when there is no melodic note."""
    pitches = notes[notes[:, TRACK] != drum_slot, PITCH] + shift
    return np.bincount(pitches % 12, minlength=12) / len(pitches) if len(pitches) else None


def overlap(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """The overlap (0-1) of two pitch-class shares; 0 when either has no note."""
    return 0.0 if a is None or b is None else float(np.minimum(a, b).sum())


def best_transposition(cells: NoteCells, start: int, length: int, d: int, beat: float) -> tuple[int, float]:
    """(semitones, context match) of the best of :data:`TRANSPOSITIONS` but none for the span ``d``
    bars away; (0, 0.0) when the onsets alone cannot match better than ``beat`` (its match in its
    own key, or more) by :data:`TRANSPOSE_MARGIN` (no key can then)."""
    if context_match(cells, start, length, None)[start + d] - TRANSPOSE_MARGIN <= beat:
        return 0, 0.0
    matches = [(k, float(context_match(cells, start, length, k)[start + d])) for k in TRANSPOSITIONS if k]
    return max(matches, key=lambda found: (found[1], -abs(found[0])))


def fill_bits(model: NoteTransformer, vocab: NoteVocab, prompt: np.ndarray, fills: list[np.ndarray], hole: Hole,
              bar0: int, bars: Bars, header: Header) -> list[float]:
    """Bits of each fill's rows and its END after ``prompt`` (the infill prompt, ending with FILL)."""
    matched = MATCHED_COLUMN in model.cfg.columns  # worked out only for a model that reads it: 24 copies a hole
    sounding = SOUNDING_COLUMNS[0] in model.cfg.columns
    seqs = [add_echoes(np.concatenate([prompt, note_rows(vocab, f, hole.start[0], bar0, bars, header, FILLED, hole),
                                       end_row(END, FILLED)]), vocab, matched, sounding) for f in fills]
    return sequence_bits(model, seqs, [np.arange(len(seq)) >= len(prompt) for seq in seqs])


@torch.inference_mode()
def sequence_bits(model: NoteTransformer, seqs: list[np.ndarray], targets: list[np.ndarray]) -> list[float]:
    """Bits of each sequence's target rows (each (T_i, R) with its (T_i,) bool target), scored
    :data:`SCORE_BATCH` sequences at a time."""
    out: list[float] = []
    for k in range(0, len(seqs), SCORE_BATCH):
        out += [float(part.sum()) / math.log(2)
                for part in padded_field_nll(model, seqs[k : k + SCORE_BATCH], targets[k : k + SCORE_BATCH])]
    return out
