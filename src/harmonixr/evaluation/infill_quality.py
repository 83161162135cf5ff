"""Infill quality on held-out pieces: fill holes several times and compare with what was there.

For each hole (whole bars, every track, with bars on both sides) of a held-out piece, each method
writes the hole ``samples`` times; each fill is compared with the original notes of the hole:

- note precision / recall / F1: a generated note matches an original one with the same onset and
  pitch (both on the tokenizer's grid);
- pitch-class overlap: the sum over the 12 pitch classes of the smaller of the two normalized
  pitch-class histograms (1: the same harmony);
- rhythm overlap: the same on the onsets' positions within the bar (the grid's steps);
- velocity distance: the absolute difference of the mean velocities.

Methods (:class:`Method`): the model with context on both sides, sampled and greedy, and
piece-aware (the most likely of sampled fills and the song's own spans); the model continuing
from the left context only; two trivial baselines: repeat the bar before the hole in
each of its bars, and copy the hole's length of bars from just before it.

Besides the metrics, each fill's notes are counted per track, so that what a fill does to each
part (drums present? a silent part kept silent?) can be read from the rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from symusic import Score

from harmonixr.data.normalize import GM_DRUM_SOUNDS
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Piece, Region
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.tokens.prompt import Hole as Span
from harmonixr.tokens.prompt import TrackControls

METRICS = ("precision", "recall", "f1", "pitch_class_overlap", "rhythm_overlap", "velocity_distance")


@dataclass(frozen=True)
class Hole:
    piece: Piece
    style: str
    first_bar: int
    bars: int
    source: str = ""

    @property
    def region(self) -> Region:
        return Region((self.first_bar, 0), (self.first_bar + self.bars, 0))

    @property
    def span(self) -> Span:
        """The same bars as the prompt format's hole, every track."""
        return Span((self.first_bar, 0), (self.first_bar + self.bars, 0))


def region_notes(score: Score, start: int, end: int) -> list[tuple[int, int, int]]:
    """(onset, pitch, velocity) of every note of ``score`` starting in [start, end); a drum sound
    General MIDI lacks as its GM sound (``GM_DRUM_SOUNDS``: a Groove hi-hat edge is a hi-hat, in
    the original, the copies and the fills alike)."""
    return [(n.time, GM_DRUM_SOUNDS.get(n.pitch, n.pitch) if t.is_drum else n.pitch, n.velocity)
            for t in score.tracks for n in t.notes if start <= n.time < end]


def first_onsets(score: Score, start: int, end: int) -> list[int | None]:
    """Each track's first note in [start, end), in ticks from ``start`` (None: no note there)."""
    return [min((n.time - start for n in t.notes if start <= n.time < end), default=None) for t in score.tracks]


def longest_silence(score: Score, start: int, end: int) -> int:
    """The longest time (ticks) between two onsets of any track of ``score`` around [start, end),
    from the last onset before it to the first after it (the hole's own start or end where there is
    none): a fill whose every track stops for beats where the song plays on."""
    onsets = np.unique([n.time for t in score.tracks for n in t.notes])
    inside = onsets[(onsets >= start) & (onsets < end)]
    before, after = onsets[onsets < start], onsets[onsets >= end]
    edges = np.concatenate([before[-1:] if len(before) else [start], inside, after[:1] if len(after) else [end]])
    return int(np.diff(edges).max())


def track_counts(score: Score, start: int, end: int) -> list[int]:
    """Notes starting in [start, end) on each track of ``score``."""
    return [sum(1 for n in t.notes if start <= n.time < end) for t in score.tracks]


def melodic_notes(score: Score, start: int, end: int) -> list[list | None]:
    """Each track's notes starting in [start, end) (None: a drum track, or no note there)."""
    return [None if track.is_drum else [n for n in track.notes if start <= n.time < end] or None
            for track in score.tracks]


def chord_shares(score: Score, start: int, end: int) -> list[float | None]:
    """Each melodic track's share of its onsets in [start, end) where two notes or more start
    together (None: a drum track, or no note there)."""
    return [None if notes is None else float((np.unique([n.time for n in notes], return_counts=True)[1] >= 2).mean())
            for notes in melodic_notes(score, start, end)]


def median_durations(score: Score, start: int, end: int) -> list[float | None]:
    """The median duration (ticks) of each melodic track's notes starting in [start, end) (None: a
    drum track, or no note there)."""
    return [None if notes is None else float(np.median([n.duration for n in notes]))
            for notes in melodic_notes(score, start, end)]


def onset_spread(notes: list[tuple[int, int, int]], step: float) -> float:
    """Standard deviation of the onsets' offsets from the grid, in grid steps (0: on the grid;
    uniform timing would be about 0.29)."""
    if len(notes) < 2:
        return float("nan")
    exact = np.asarray([t for t, _, _ in notes], dtype=np.float64) / step
    return float(np.std(exact - np.round(exact)))


def snap(notes: list[tuple[int, int, int]], step: int) -> list[tuple[int, int, int]]:
    """Onsets moved to the nearest grid step (performed timing then matches its written note)."""
    return [(int(round(t / step)) * step, p, v) for t, p, v in notes]


def histogram_overlap(a: list[int], b: list[int], bins: int) -> float:
    """The overlap (0-1) of the histograms of ``a`` and ``b`` mod ``bins``, each as shares; 0 when either is empty."""
    if not a or not b:
        return 0.0
    ha = np.bincount(np.asarray(a) % bins, minlength=bins) / len(a)
    hb = np.bincount(np.asarray(b) % bins, minlength=bins) / len(b)
    return float(np.minimum(ha, hb).sum())


def compare_notes(made: list[tuple[int, int, int]], truth: list[tuple[int, int, int]], start: int,
                  bar_ticks: int, step: int) -> dict[str, float]:
    """The metrics of one fill against the original notes of its hole (onsets compared on the grid)."""
    made, truth = snap(made, step), snap(truth, step)
    hits = sum((Counter((t, p) for t, p, _ in made) & Counter((t, p) for t, p, _ in truth)).values())
    precision = hits / len(made) if made else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    positions = bar_ticks // max(step, 1)
    where = lambda notes: [((t - start) % bar_ticks) // max(step, 1) for t, _, _ in notes]  # noqa: E731
    velocity = abs(np.mean([v for *_, v in made]) - np.mean([v for *_, v in truth])) if made and truth else 127.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "pitch_class_overlap": histogram_overlap([p for _, p, _ in made], [p for _, p, _ in truth], 12),
            "rhythm_overlap": histogram_overlap(where(made), where(truth), positions), "velocity_distance": float(velocity)}


def draw_holes(pieces: list[tuple[Piece, str]], per_piece: int, rng: np.random.Generator, max_bars: int = 4) -> list[Hole]:
    """``per_piece`` holes of 1 to ``max_bars`` whole bars per piece, never the first or last bar."""
    holes = []
    for piece, style in pieces:
        if piece.bars < 4:
            continue
        for _ in range(per_piece):
            bars = int(rng.integers(1, min(max_bars, piece.bars - 2) + 1))
            first = int(rng.integers(1, piece.bars - bars))
            holes.append(Hole(piece, style, first, bars))
    return holes


MARGIN_BARS = 2  # bars of the piece a held-out hole leaves on each side at least


def middle_holes(pieces: list[tuple[Piece, str, str]], bars: int, per_piece: int = 1) -> list[Hole]:
    """``per_piece`` holes of ``bars`` whole bars in each piece, centred at 1/(k+1), 2/(k+1), ...
    of it (one: its middle), each with :data:`MARGIN_BARS` bars or more on both sides and none
    overlapping the one before; a piece too short for all of them is left out."""
    return [Hole(piece, style, first, bars, source) for piece, style, source in pieces
            for first in hole_starts(piece.bars, bars, per_piece)]


def hole_starts(piece_bars: int, bars: int, per_piece: int) -> list[int]:
    """The first bars of :func:`middle_holes`' holes in a piece of ``piece_bars`` bars (none: too short)."""
    firsts = [piece_bars * k // (per_piece + 1) - bars // 2 for k in range(1, per_piece + 1)]
    fits = firsts[0] >= MARGIN_BARS and firsts[-1] + bars + MARGIN_BARS <= piece_bars \
        and all(b - a >= bars for a, b in zip(firsts, firsts[1:]))
    return firsts if fits else []


def shortest_piece(bars: int, per_piece: int) -> int:
    """The fewest bars a piece needs for :func:`middle_holes`' holes."""
    return next(n for n in range(1, 1 + (per_piece + 1) * (bars + 2 * MARGIN_BARS)) if hole_starts(n, bars, per_piece))


def repeat_neighbour(hole: Hole) -> list[tuple[int, int, int]]:
    """The trivial fill: the bar just before the hole, repeated in every bar of the hole."""
    piece, first = hole.piece, hole.first_bar
    source = region_notes(piece.original, piece.tick(first - 1), piece.tick(first))
    out = []
    for k in range(hole.bars):
        shift, stop = piece.tick(first + k) - piece.tick(first - 1), piece.tick(first + k + 1)
        out += [(t + shift, p, v) for t, p, v in source if t + shift < stop]
    return out


def copy_neighbour(hole: Hole) -> list[tuple[int, int, int]]:
    """The trivial fill: the notes of the bars just before the hole, moved into it."""
    piece, first, bars = hole.piece, hole.first_bar, hole.bars
    source = max(0, first - bars)
    shift = piece.tick(first) - piece.tick(source)
    notes = region_notes(piece.original, piece.tick(source), piece.tick(first))
    end = piece.tick(first + bars)
    return [(t + shift, p, v) for t, p, v in notes if t + shift < end]


@dataclass(frozen=True)
class Method:
    """How one row of the table fills a hole: ``kind`` is ``infill`` (context on both sides),
    ``left`` (continuation from the left context only), ``repeat`` (the bar before, repeated) or
    ``copy`` (as many bars as the hole has, from just before it)."""

    kind: str
    generator: Generator | None = None
    sampling: SamplingConfig | None = None
    source: str = "sampled"  # infill: "sampled", "piece" (the song's spans) or "best" (both)
    free_rhythm: bool = False  # infill: no track kept to its rhythm (an ablation of the default)

    @property
    def deterministic(self) -> bool:
        """Filled once: the copies, greedy decoding, and piece-aware infill (its first fill is the best-matching span)."""
        return (self.kind in ("copy", "repeat") or self.source == "piece"
                or (self.sampling is not None and self.sampling.top_k == 1))


def evaluate_infill(methods: dict[str, Method], holes: list[Hole], samples: int, seed: int = 0) -> list[dict]:
    """One row per (method, hole, fill) with the metrics; deterministic methods fill once."""
    rows = []
    pieces: dict[int, int] = {}  # a piece's holes share its index
    for index, hole in enumerate(holes):
        piece = hole.piece
        piece_index = pieces.setdefault(id(piece), len(pieces))
        start, end = piece.tick(hole.first_bar), piece.tick(hole.first_bar + hole.bars)
        truth = region_notes(piece.original, start, end)
        bar_ticks = piece.tick(hole.first_bar + 1) - start
        step = max(piece.original.ticks_per_quarter // piece.vocab.grid, 1)
        fine_step = piece.original.ticks_per_quarter / piece.vocab.grid
        truth_tracks, truth_first = track_counts(piece.original, start, end), first_onsets(piece.original, start, end)
        truth_chords = chord_shares(piece.original, start, end)
        truth_lengths = median_durations(piece.original, start, end)
        quarter = piece.original.ticks_per_quarter
        truth_silence = longest_silence(piece.original, start, end) / quarter
        for name, method in methods.items():
            n = 1 if method.deterministic else samples
            if method.kind in ("copy", "repeat"):
                fill = copy_neighbour(hole) if method.kind == "copy" else repeat_neighbour(hole)
                fills = [fill]
                counts: list[list[int] | None] = [None]  # no per-track counts for a copy
                firsts: list[list[int | None] | None] = [None]
                chords: list[list[float | None] | None] = [None]
                lengths: list[list[float | None] | None] = [None]
                quiet: list[float | None] = [None]
            else:
                gen, sampling = method.generator, method.sampling
                assert gen is not None and sampling is not None, f"method {name} samples: it needs a model"
                if method.kind == "left":
                    made = gen.continue_(piece, bars=hole.bars, after_bar=hole.first_bar, n=n,
                                         sampling=sampling, seed=seed + index, source="sampled")
                else:
                    free = ({k: TrackControls(rhythm=False) for k in range(len(piece.original.tracks))}
                            if method.free_rhythm else None)
                    made = gen.infill(piece, hole.region, n, sampling, seed + index, source=method.source,
                                      controls=free)
                fills = [region_notes(r.score, start, end) for r in made]
                counts = [track_counts(r.score, start, end) for r in made]
                firsts = [first_onsets(r.score, start, end) for r in made]
                chords = [chord_shares(r.score, start, end) for r in made]
                lengths = [median_durations(r.score, start, end) for r in made]
                quiet = [longest_silence(r.score, start, end) / quarter for r in made]
            for k, (fill, per_track, first, chord, length, silence) in enumerate(
                    zip(fills, counts, firsts, chords, lengths, quiet)):
                rows.append({"method": name, "hole": index, "piece": piece_index, "sample": k, "style": hole.style,
                             "source": hole.source, "bars": hole.bars, "truth_notes": len(truth), "notes": len(fill),
                             "truth_tracks": truth_tracks, "tracks": per_track, "bar_ticks": bar_ticks,
                             "truth_first_onsets": truth_first, "first_onsets": first,
                             "truth_chords": truth_chords, "chords": chord,
                             "truth_durations": truth_lengths, "durations": length,
                             "truth_silence": truth_silence, "silence": silence,
                             "onset_spread": onset_spread(fill, fine_step), "truth_onset_spread": onset_spread(truth, fine_step),
                             **compare_notes(fill, truth, start, bar_ticks, step)})
    return rows


def late_entries(rows: list[dict]) -> tuple[int, int]:
    """(late, compared): over the fills' tracks that play in the hole both in the fill and in the
    original, those whose fill starts more than a bar after the original's first note there (a
    part that enters late leaves a silence the song does not have)."""
    late = compared = 0
    for r in rows:
        for fill, truth in zip(r["first_onsets"] or [], r["truth_first_onsets"]):
            if fill is not None and truth is not None:
                compared += 1
                late += fill > truth + r["bar_ticks"]
    return late, compared


def silences(rows: list[dict]) -> tuple[float, float, float]:
    """Over the fills (those with a score), the mean longest time with no onset of any track in
    the hole (:func:`longest_silence`, in quarter notes), the original's, and the share of fills
    whose silence outlasts the original's by more than a quarter note."""
    made = [r for r in rows if r["silence"] is not None]
    if not made:
        return float("nan"), float("nan"), float("nan")
    return (float(np.mean([r["silence"] for r in made])), float(np.mean([r["truth_silence"] for r in made])),
            float(np.mean([r["silence"] > r["truth_silence"] + 1 for r in made])))


def kept_chords(rows: list[dict], least: float = 0.8) -> tuple[float, int]:
    """(share, compared): over the fills' melodic tracks whose original starts chords at ``least``
    of its onsets in the hole or more (octave doublings, pads) and that play in the fill, the mean
    share of the fill's onsets on that track that are chords too."""
    shares = [fill for r in rows for fill, truth in zip(r["chords"] or [], r["truth_chords"])
              if fill is not None and truth is not None and truth >= least]
    return (float(np.mean(shares)) if shares else float("nan")), len(shares)


def duration_error(rows: list[dict]) -> tuple[float, int]:
    """(error, compared): over the fills' melodic tracks that play both in the fill and in the
    original hole, the mean of |log2| of the ratio of their median note durations (0: the same; 1:
    twice or half as long)."""
    errors = [abs(np.log2(fill / truth)) for r in rows for fill, truth in zip(r["durations"] or [], r["truth_durations"])
              if fill and truth]
    return (float(np.mean(errors)) if errors else float("nan")), len(errors)


def paired(rows: list[dict], method: str, against: str,
           metrics: tuple[str, ...] = ("f1", "pitch_class_overlap")) -> dict:
    """``method`` minus ``against`` per hole (each method's fills of a hole averaged), over the holes
    both filled: the mean difference of each metric, its standard error, and the holes won and lost.
    Where a piece holds several holes (rows with a ``piece``), their differences are averaged per
    piece first and the standard error is over pieces: a piece's holes share its luck. A
    difference of more than two standard errors is one the pieces' luck is unlikely to explain."""
    def per_hole(name: str, metric: str) -> dict[int, float]:
        sums: dict[int, list[float]] = {}
        for r in rows:
            if r["method"] == name:
                sums.setdefault(r["hole"], []).append(r[metric])
        return {h: float(np.mean(v)) for h, v in sums.items()}

    piece_of = {r["hole"]: r.get("piece", r["hole"]) for r in rows}
    out: dict = {"method": method, "against": against}
    for metric in metrics:
        mine, theirs = per_hole(method, metric), per_hole(against, metric)
        holes = sorted(mine.keys() & theirs.keys())
        diff = np.array([mine[h] - theirs[h] for h in holes])
        by_piece: dict[int, list[float]] = {}
        for h, d in zip(holes, diff):
            by_piece.setdefault(piece_of[h], []).append(float(d))
        means = np.array([np.mean(v) for v in by_piece.values()])
        out["holes"], out["pieces"] = len(diff), len(means)
        out[metric] = float(diff.mean()) if len(diff) else float("nan")
        out[f"{metric}_se"] = float(means.std(ddof=1) / np.sqrt(len(means))) if len(means) > 1 else float("nan")
        out[f"{metric}_won_lost"] = f"{int((diff > 0).sum())}/{int((diff < 0).sum())}"
    return out


def summarize(rows: list[dict]) -> list[dict]:
    """Mean of each metric per method (and the number of fills); a copy has no ``silence``
    (:func:`silences`: NaN)."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        ratios = [r["notes"] / r["truth_notes"] for r in mine if r["truth_notes"]]
        spread = [r["onset_spread"] for r in mine if np.isfinite(r["onset_spread"])]
        truth_spread = [r["truth_onset_spread"] for r in mine if np.isfinite(r["truth_onset_spread"])]
        silence, truth_silence, _ = silences(mine)
        out.append({"method": method, "fills": len(mine), **{m: float(np.mean([r[m] for r in mine])) for m in METRICS},
                    "onset_spread": float(np.mean(spread)) if spread else float("nan"),
                    "truth_onset_spread": float(np.mean(truth_spread)) if truth_spread else float("nan"),
                    "notes_per_fill": float(np.mean([r["notes"] for r in mine])),
                    "truth_notes_per_hole": float(np.mean([r["truth_notes"] for r in mine])),
                    "median_note_ratio": float(np.median(ratios)) if ratios else float("nan"),
                    "silence": silence, "truth_silence": truth_silence})
    return out
