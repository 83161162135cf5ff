"""The generation modes, as library functions: infill, continue, generate, add a track.

Prompts are built by the prompt format (:mod:`harmonixr.tokens.prompt`), exactly as the training
examples were:

- **infill** (a span of bars or beats, all tracks or some): the header, the hole's start and end,
  the tracks it rewrites and their controls (inferred from the bars around the hole on each track
  unless given: a drum track keeps drumming at its density, a silent track stays silent), the
  music from the hole's start on, the music before it, and ``FILL``. The model writes the hole's
  notes after the bars before it; :class:`~harmonixr.sampling.grammar.Rules` keep them inside the
  hole and on its tracks, and end the fill with ``END``.
- **continue / generate**: a plain window (header, the last bars so far) and the model writes on,
  a window at a time, until the requested bars are there (or the notes asked for).
- **add a track**: a new slot in the header, then an infill of that track alone over the span.

Every mode returns :class:`Result` s whose ``score`` is the original with the region rewritten
(:meth:`Piece.splice`), one per variation; all variations of a call are sampled in one batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from symusic import Score

from harmonixr.generation.candidates import SOURCES, Candidate, fill_bits, piece_candidates, rank
from harmonixr.generation.piece import GenerationError, Piece, Region
from harmonixr.generation.postprocess import Key, score_to_mean_velocity
from harmonixr.generation.surroundings import (
    ANY_PITCH,
    CONTEXT_BARS,
    Surroundings,
    meet_loudness,
    meets,
    onset_windows,
)
from harmonixr.models.checkpoint import load_checkpoint
from harmonixr.runtime import autocast, autocast_dtype
from harmonixr.sampling.grammar import UNLIMITED, NoteGrammar, NoteState, Rules
from harmonixr.sampling.sampler import Placement, Sampled, Sampler, SamplingConfig
from harmonixr.tokens.notes import BAR, POS, TRACK, sort_notes
from harmonixr.tokens.prompt import (
    Header,
    Hole,
    TrackControls,
    gap_free_end,
    gap_free_start,
    header_controls,
    infill,
    measure_header_controls,
    plain,
    time_key,
)
from harmonixr.tokens.vocab import BODY, END, EOS, FILLED

FILL_SHARE = 0.6  # at most this share of the context may be left for a region's notes
RESAMPLE_TRIES = 2  # a fill that leaves out a track that must play is drawn again this many times
MIN_ROOM = 16  # positions a continuation window must leave for new notes
RESAMPLE_SEED = 1_000_003  # a row drawn again uses seed + this x the attempt


class RegionTooLong(GenerationError):
    """The region's own notes do not fit the model's context."""


@dataclass(frozen=True)
class MusicRules:
    """Optional musical constraints, enforced while sampling (see :class:`Rules`)."""

    pitch_range: tuple[int, int] = ANY_PITCH
    scale: frozenset[int] | None = None  # pitch classes (see postprocess.scale_pitch_classes)
    tonic: frozenset[int] = frozenset()  # pitch classes melodic notes lean to (a key's tonic chord)
    max_polyphony: int = UNLIMITED
    max_notes_per_bar: int = UNLIMITED

    @classmethod
    def in_key(cls, key: Key, **rest: Any) -> MusicRules:
        """New notes in ``key``'s scale, leaning to its tonic chord (grammar.TONIC_LEAN): A minor and
        C major share a scale, and only the lean makes the one asked for the one heard."""
        return cls(scale=key.pitch_classes, tonic=key.tonic_chord, **rest)


@dataclass
class Result:
    """One variation: the whole piece with the region rewritten, and what was made."""

    score: Score
    start_tick: int
    end_tick: int | None
    tracks: tuple[int, ...]  # original track indices written
    notes: int  # notes generated
    positions: int  # model steps taken (one per note, and the end)
    finished: bool  # the model closed the region itself (False: cut at the note budget or the context)
    seconds: float  # compute time of the call (shared by its variations)
    mode: str = ""
    details: dict = field(default_factory=dict)  # mode-specific figures (refine: bits per note per round)

    @property
    def incomplete(self) -> bool:
        """Written, but not what was asked: empty, cut at the note budget, or a track left out."""
        return self.notes == 0 or not self.finished or bool(self.details.get("missing_tracks"))

    def notices(self) -> list[str]:
        """What must be said with this result (the CLI prints it, the studio shows it)."""
        said = []
        if not self.finished:
            said.append("cut at the note budget")
        if self.details.get("resampled"):
            said.append(f"{self.details['resampled']} draw(s) repeated so that every track playing around the region plays")
        if self.details.get("missing_tracks"):
            said.append("no notes on track(s) " + ", ".join(str(t + 1) for t in self.details["missing_tracks"])
                        + " although they play around the region")
        if self.notes == 0:
            said.append("no notes were written")
        return said


class Generator:
    """A trained model ready to write music: load once, call the modes many times."""

    def __init__(self, checkpoint: str | Path, backend: str = "auto", device: str = "cpu") -> None:
        loaded = load_checkpoint(checkpoint, device)
        self.model, self.vocab = loaded.model, loaded.vocab
        self.sampler = Sampler(self.model, backend)
        self.max_len = self.model.cfg.max_len
        self.trace = False  # RL: keep every sampling call's masks and draws (see rl/rollout.py)
        self.calls: list[dict] = []  # with ``trace``: per sampling call, the prompt and the rows' traces

    @contextmanager
    def time_limit(self, seconds: float | None) -> Iterator[None]:
        """Calls inside the block raise :class:`~harmonixr.sampling.sampler.SamplingTimeout` once
        ``seconds`` have passed (None: no limit); a web server bounds each request this way."""
        self.sampler.deadline = None if seconds is None else time.monotonic() + seconds
        try:
            yield
        finally:
            self.sampler.deadline = None

    def piece(self, source: str | Path | Score, style: str = "unknown") -> Piece:
        """A :class:`Piece` from a MIDI path (parsed in a child process) or a Score."""
        if isinstance(source, Score):
            return Piece.from_score(source, self.vocab, style)
        return Piece.from_file(str(source), self.vocab, style)

    # -- infill ----------------------------------------------------------------------------
    def infill(self, piece: Piece, region: Region, n: int = 1, sampling: SamplingConfig = SamplingConfig(),
               seed: int = 0, rules: MusicRules = MusicRules(), mode: str = "infill",
               controls: Mapping[int, TrackControls] | None = None, source: str = "piece") -> list[Result]:
        """Rewrite ``region`` of ``piece`` ``n`` times, with the music on both sides as context.

        ``controls``: per original track index, what the fill should be like on that track (a
        control left None is inferred from the bars around the hole:
        :meth:`~harmonixr.generation.surroundings.Surroundings.controls`). A sampled fill is held
        to what each track plays around the hole (its density, pitches, biggest chord, rhythm and
        drum kit; a track that enters or leaves in the hole at most its density there, and it may
        stay silent) except where the caller asks otherwise:
        :meth:`~harmonixr.generation.surroundings.Surroundings.held`.
        ``source``: ``"piece"`` (piece-aware: the song's own spans of the hole's length whose
        surroundings match the hole's best, sampled fills making up the number), ``"best"`` (those
        copies that match well, then copies and ``n`` sampled fills by bits per note) or
        ``"sampled"`` (:mod:`~harmonixr.generation.candidates`); ``details["source"]`` says where
        each came from. Controls set by the caller are met by copies too: a copy is offered only
        where it already does what they ask (onsets in the asked window, pitches in the asked
        range, chords no bigger than asked), with its velocities brought to the asked loudness and
        range as a sampled fill's are; it keeps the song's own rhythm."""
        if source not in SOURCES:
            raise GenerationError(f"source {source!r}: one of {', '.join(SOURCES)}")
        began = time.perf_counter()
        piece = piece.copy()  # empty tracks in the region get a slot in this copy only
        slots = self._slots(piece, region)
        start, end = region.start, region.end
        if start[0] >= max(piece.bars, 1):
            raise GenerationError(f"the region starts at bar {start[0] + 1}, after the piece's {piece.bars} bars; "
                                  "use continue")
        if end is not None and (end[0] > piece.bars or (end[0] == piece.bars and end[1] > 0)) and len(piece.notes):
            raise GenerationError(f"the region ends in bar {end[0] + (end[1] > 0)}, after the piece's {piece.bars} bars; "
                                  "end it earlier (or use continue)")
        if end is not None and end[0] >= piece.bars:
            end = None  # to the end of the piece
        hole = Hole(start, end, tuple(sorted(slots)) if region.tracks else ())
        near = Surroundings(piece, hole, self.vocab)
        wanted = near.controls(controls)
        budget = self._fill_budget(piece, hole, wanted)
        try:
            sequence, bar0, header = self._infill_prompt(piece, hole, wanted, budget)
        except RegionTooLong:
            if len(hole.bars(piece.bars - 1)) < 2:
                raise
            return _timed(self._infill_in_parts(piece, region, n, sampling, seed, rules, mode, controls, source),
                          began)
        last_bar, last_pos = (piece.bars - 1, 0) if end is None else (end[0] - (end[1] == 0), end[1])
        # nothing dropped silently: a track that plays around the hole (and is not told to be silent) plays in it
        required = tuple(s for s, c in wanted.items() if near.must_play(s, c))
        # a track told to be silent (density 0, or a track silent around the hole) gets no note: a mask, not a hope
        silent = {s for s, c in wanted.items() if c.density == 0}
        playing = tuple(s for s in slots if s not in silent)
        asked = {s: c for s in slots if (c := (controls or {}).get(piece.track_of(s))) is not None}  # the caller's own
        for s, c in asked.items():
            if (problem := c.problem()) is not None:
                raise GenerationError(f"track {piece.track_of(s) + 1}: {problem}")
        ranges = tuple((s, c.low if c.low is not None else 0, c.high if c.high is not None else 127)
                       for s, c in asked.items() if s != self.vocab.drum_slot and (c.low is not None or c.high is not None))
        velocities = tuple((s, c.vel_low or 1, c.vel_high or 127) for s, c in asked.items()
                           if c.vel_low is not None or c.vel_high is not None)
        chords = tuple((s, c.chord) for s, c in asked.items() if c.chord is not None)
        length = _hole_length(piece, hole, last_bar, last_pos)
        onsets = onset_windows(asked, length)
        held = near.held(wanted, asked, length, rules)
        reach = last_bar if required and end is not None else 0  # a hole inside the song is played to its last bar
        limits = Rules(playing or tuple(slots), piece.bar_positions(last_bar + 1), start, last_bar, last_pos, END,
                       required=required, required_by=last_bar, min_bar=reach, track_ranges=ranges + held.ranges,
                       track_velocities=velocities, track_onsets=onsets + held.onsets, drum_kit=held.kit,
                       track_rhythms=held.rhythms, track_chords=chords + held.chords, track_leans=held.leans,
                       **{**_rule_fields(rules), **({} if playing else {"max_notes": 0})})
        place = Placement(bar0, piece.bars_meta(last_bar + 1), piece.header(), FILLED, hole)
        state = NoteState(start[0], start[1])
        copies = []
        if source != "sampled":
            copies = [replace(c, notes=c.notes[~np.isin(c.notes[:, TRACK], list(silent))])
                      for c in piece_candidates(piece.notes, piece.bars_meta().meter, hole, piece.bars, self.vocab)]
            copies = [c for c in copies if len(c.notes) and len(sequence) + len(c.notes) < self.max_len  # one that fits
                      and set(required) <= set(c.notes[:, TRACK].tolist())
                      and meets(c.notes, onsets, ranges, chords, rules, self.vocab.drum_slot)]
        wanted_draws = max(n - len(copies), 0) if source == "piece" else n  # "piece": sampled fills only make up the number
        outs = self._sample(sequence, wanted_draws, sampling, seed, limits, state, place, budget) if wanted_draws else []
        resampled = 0
        for attempt in range(1, RESAMPLE_TRIES + 1):  # nothing dropped silently: draw again, then report
            missing = [k for k, out in enumerate(outs) if not set(required) <= set(out.notes[:, TRACK].tolist())]
            if not missing:
                break
            again = self._sample(sequence, len(missing), sampling, seed + RESAMPLE_SEED * attempt, limits, state, place,
                                 budget)
            for k, out in zip(missing, again):
                outs[k] = out
            resampled += len(missing)
        fills = [Candidate(out.notes, "sampled") for out in outs]
        steps = {id(f.notes): (out.steps, out.ended) for f, out in zip(fills, outs)}
        if copies:
            pool = fills + copies
            if source == "piece":  # the model's bits only break ties of the context match: score those only
                pool = rank(pool, source)
                pool = [c for c in pool if c.match_or_0 >= pool[min(n, len(pool)) - 1].match_or_0]
            with autocast(torch.device("cpu"), autocast_dtype("auto", torch.device("cpu"))):
                bits = fill_bits(self.model, self.vocab, sequence, [c.notes for c in pool], hole, bar0,
                                 piece.bars_meta(last_bar + 1), header)
            fills = rank([replace(c, bits=b) for c, b in zip(pool, bits)], source)[:n]
        start_tick = piece.tick(*start)
        end_tick = piece.tick(*end) if end is not None else None
        tracks = sorted({piece.track_of(s) for s in slots}) if region.tracks else list(range(len(piece.original.tracks)))
        timeline = piece.timeline.extended(last_bar + 1)
        loud = {s: c for s, c in asked.items() if c.loudness is not None or c.vel_low is not None or c.vel_high is not None}
        fills = [replace(f, notes=meet_loudness(f.notes, loud)) for f in fills] if loud else fills
        results = []
        for fill in fills:
            taken, ended = steps.get(id(fill.notes), (0, True))
            results.append(Result(
                piece.splice(piece.to_notes(fill.notes, timeline), start_tick, end_tick, tracks), start_tick,
                end_tick, tuple(tracks), len(fill.notes), taken, ended, 0.0, mode,
                {"controls": {piece.track_of(s): c for s, c in wanted.items()}, "source": fill.label,
                 "bits": fill.bits, "required_tracks": [piece.track_of(s) for s in required], "resampled": resampled,
                 "missing_tracks": [piece.track_of(s) for s in required if s not in set(fill.notes[:, TRACK].tolist())]}))
        return _timed(results, began)

    def _fill_budget(self, piece: Piece, hole: Hole, controls: Mapping[int, TrackControls]) -> int:
        """Positions to leave for the fill: 1.5x what the hole held, or what its controls ask for
        (with chords as large as they say; a part without controls as many as the average part
        plays there), whichever is more."""
        held = len(piece.notes_in(hole))
        bars = len(hole.bars(piece.bars - 1))
        span = piece.notes[Hole(hole.start, hole.end).in_span(piece.notes, self.vocab)]
        per_part = len(span) / max(len(np.unique(span[:, TRACK])), 1)
        asked = sum((c.density or 0.0) * (c.chord or 1) * bars if c.density is not None else per_part
                    for c in controls.values())
        return int(max(1.5 * max(held, asked) + 16, 32))

    def _infill_prompt(self, piece: Piece, hole: Hole, controls: Mapping[int, TrackControls],
                       budget: int) -> tuple[np.ndarray, int, Header]:
        """The widest window of whole bars around the hole whose prompt leaves ``budget`` positions:
        its rows (ending with FILL), its first bar, and its header."""
        v = self.vocab
        hole_bars = hole.bars(piece.bars - 1)
        room = self.max_len - budget
        if budget > FILL_SHARE * self.max_len and len(hole_bars) > 1:
            raise RegionTooLong(f"the region would need about {budget} notes, more than {FILL_SHARE:.0%} of the "
                                f"model's context of {self.max_len}")
        header = piece.header(controls=self.context_controls(piece, hole))

        bars_meta = piece.bars_meta()

        def build(w0: int, w1: int) -> tuple[np.ndarray, int]:
            notes = piece.notes[(piece.notes[:, BAR] >= w0) & (piece.notes[:, BAR] < w1)]
            past = notes[time_key(notes[:, BAR], notes[:, POS], v) < time_key(*hole.start, v)]
            w0 = gap_free_start(past, w0, v)  # relative bar counts cannot reach across a long silence
            notes = notes[notes[:, BAR] >= w0]
            after = time_key(notes[:, BAR], notes[:, POS], v) >= time_key(*hole.start, v)
            keep = np.flatnonzero(after)[: gap_free_end(notes[after], hole.start[0], v)]
            notes = np.concatenate([notes[~after], notes[keep]])
            return infill(v, header, sort_notes(notes), w0, bars_meta, hole, controls, fill=False).rows, w0

        windows = [(hole_bars[0], min(hole_bars[-1] + 1, max(piece.bars, 1)))]  # a bar more each, left and right in turn
        while (w := windows[-1])[0] > 0 or w[1] < piece.bars:
            windows.append((w[0] - 1, w[1]) if (len(windows) % 2 and w[0] > 0) or w[1] >= piece.bars else (w[0], w[1] + 1))
        best = build(*windows[0])
        if len(best[0]) > room:
            raise RegionTooLong(f"the region's bars hold more than the model's context of {self.max_len} positions; "
                                "choose a shorter span")
        fits, over = 0, len(windows)  # a wider window never has fewer rows: the widest that fits, by bisection
        while over - fits > 1:
            middle = (fits + over) // 2
            if len((candidate := build(*windows[middle]))[0]) <= room:
                fits, best = middle, candidate
            else:
                over = middle
        rows, bar0 = best
        return rows, bar0, header

    def context_controls(self, piece: Piece, hole: Hole) -> tuple[int, ...]:
        """Piece-level controls measured on the ``CONTEXT_BARS`` bars on each side of the hole, its
        own notes left out (training measures them on the window; the hole is not known here)."""
        hole_bars = hole.bars(piece.bars - 1)
        first, last = max(hole_bars[0] - CONTEXT_BARS, 0), min(hole_bars[-1] + 1 + CONTEXT_BARS, max(piece.bars, 1))
        near = piece.notes[(piece.notes[:, BAR] >= first) & (piece.notes[:, BAR] < last)]
        near = near[~hole.contains(near, self.vocab)]
        bars = (last - first) - (len(hole_bars) if not hole.tracks else 0)
        if not len(near):
            return ()
        qpm = float(piece.timeline.qpm[min(hole.start[0], piece.bars - 1)])
        return header_controls(self.vocab, **measure_header_controls(self.vocab, near, max(bars, 1), qpm))

    def _infill_in_parts(self, piece: Piece, region: Region, n: int, sampling: SamplingConfig, seed: int,
                         rules: MusicRules, mode: str, controls: Mapping[int, TrackControls] | None,
                         source: str) -> list[Result]:
        """A region too long for one context: its first half, then its second half with the first
        half's new notes as context (each variation in turn)."""
        last = region.end[0] - (region.end[1] == 0) if region.end is not None else piece.bars - 1
        mid = ((region.start[0] + last + 1) // 2, 0)
        results = []
        for k in range(n):
            first = self.infill(piece, replace(region, end=mid), 1, sampling, seed + k, rules, mode, controls,
                                source)[0]
            rest = Piece.from_score(first.score, self.vocab, piece.style)
            second = self.infill(rest, replace(region, start=mid), 1, sampling, seed + k + 7919, rules, mode,
                                 controls, source)[0]
            results.append(Result(second.score, first.start_tick, second.end_tick,
                                  tuple(sorted({*first.tracks, *second.tracks})), first.notes + second.notes,
                                  first.positions + second.positions, first.finished and second.finished, 0.0, mode,
                                  _halves(first.details, second.details)))
        return results

    def add_track(self, piece: Piece, program: int, region: Region | None = None, name: str | None = None,
                  **kwargs: Any) -> list[Result]:
        """A new part (GM ``program``) over ``region`` (default: the whole piece), under the others."""
        piece = piece.copy()
        piece.add_slot(program, name)
        track = len(piece.original.tracks) - 1
        region = region or Region((0, 0), None)
        return self.infill(piece, replace(region, tracks=(track,)), mode="add-track", **kwargs)

    # -- continue / generate ---------------------------------------------------------------
    def continue_(self, piece: Piece, bars: int = 8, after_bar: int | None = None, n: int = 1,
                  sampling: SamplingConfig = SamplingConfig(), seed: int = 0, rules: MusicRules = MusicRules(),
                  mode: str = "continue", after_notes: int | None = None, notes: int | None = None,
                  controls: tuple[int, ...] | None = None) -> list[Result]:
        """Continue ``piece`` from the end of bar ``after_bar`` (default: the end), or right after
        its first ``after_notes`` notes; write ``bars`` bars, or ``notes`` notes (then ``bars`` is a
        cap). What followed the primer in the original is dropped."""
        if bars < 1 or (notes is not None and notes < 1):
            raise GenerationError("ask for at least one bar (or one note)")
        if after_notes is not None:
            if not 0 < after_notes <= len(piece.notes):
                raise GenerationError(f"the piece has {len(piece.notes)} notes; the primer must hold 1 to {len(piece.notes)}")
            last = piece.notes[after_notes - 1]  # every note starting up to the N-th note's onset is the primer
            cut = (int(last[BAR]), int(last[POS]) + 1)
            primer = piece.before(cut)
            start_tick = piece.tick(*cut)
            return self._extend(piece, primer, cut, cut[0] + bars, notes, n, sampling, seed, rules, mode, start_tick,
                                controls)
        if after_bar is not None and not 0 <= after_bar <= piece.bars:
            raise GenerationError(f"--after-bar {after_bar}: the piece has {piece.bars} bars")
        after = piece.bars if after_bar is None else after_bar
        primer = piece.notes[piece.notes[:, BAR] < after]
        return self._extend(piece, primer, (after, 0), after + bars, notes, n, sampling, seed, rules, mode,
                            piece.tick(after), controls)

    def _extend(self, piece: Piece, primer: np.ndarray, first: tuple[int, int], total: int, notes: int | None,
                n: int, sampling: SamplingConfig, seed: int, rules: MusicRules, mode: str, start_tick: int,
                controls: tuple[int, ...] | None, density: float | None = None) -> list[Result]:
        """Write on after the notes ``primer`` from ``first`` up to bar ``total`` (or ``notes`` new
        notes); the result is the original up to ``start_tick`` and the new notes from there.
        ``density``: notes per bar of all tracks together, shared among them and paced (each window
        asks for the share of the bars it has left)."""
        began = time.perf_counter()
        rows = [_Row(primer) for _ in range(n)]
        positions = piece.bar_positions(total)
        bars_meta = piece.bars_meta(total)
        timeline = piece.timeline.extended(total)
        window = 0
        while active := [row for row in rows if not row.finished]:
            groups = [active] if window == 0 else [[row] for row in active]  # the first window: one batch
            for k, group in enumerate(groups):
                so_far = group[0].notes
                w0, context = self._left_window(so_far, first, int(self.max_len * FILL_SHARE) - len(piece.slots) - 8)
                header = piece.header(controls=self._continue_controls(piece, context, w0, first, controls))
                sequence = plain(self.vocab, header, context, w0, bars_meta, ends=False).rows
                if window > 0 and self.max_len - len(sequence) < MIN_ROOM:
                    for row in group:  # what was written fills the context alone: no window can follow it
                        row.finished = True
                    continue
                last = context[-1] if len(context) else None
                state = NoteState(int(last[BAR]) if last is not None else w0, int(last[POS]) if last is not None else 0,
                                  int(last[TRACK]) if last is not None else -1, int(last[4]) if last is not None else -1)
                left = None if notes is None else notes - group[0].made
                start = first if window == 0 else _after(so_far, first)
                share = TrackControls(density=density / len(piece.slots)) if density else None
                left_bars = total - start[0] - start[1] / positions[min(start[0], len(positions) - 1)]
                paced = onset_windows({s: share for s in piece.slots}, left_bars) if share else ()
                limits = Rules(tuple(piece.slots), positions, start, total - 1, 0, EOS,
                               max_notes=left if left is not None else UNLIMITED, min_notes=left or 0,
                               min_bar=total - 1 if notes is None else 0,  # asked for bars: it reaches the last
                               required=tuple(piece.slots) if mode == "generate" and window == 0 else (),  # every part
                               required_by=1 if mode == "generate" else UNLIMITED,  # plays, entering by bar 2
                               track_onsets=paced, count_notes=bool(paced), **_rule_fields(rules))
                place = Placement(w0, bars_meta, header, BODY)
                outs = self._sample(sequence, len(group), sampling, seed + 7919 * window + k, limits, state, place,
                                    self.max_len - len(sequence))
                for row, out in zip(group, outs):
                    row.extend(out, total, notes)
            window += 1
        results = []
        for row in rows:
            new = row.notes[len(primer):]
            made = {t: [x for x in found if x.time >= start_tick] for t, found in piece.to_notes(new, timeline).items()}
            score = piece.splice(made, start_tick, None, list(range(len(piece.original.tracks))))
            _drop_meta_after(score, start_tick)
            results.append(Result(score, start_tick, None, tuple(range(len(piece.original.tracks))),
                                  sum(map(len, made.values())), row.steps, row.done, 0.0, mode))
        return _timed(results, began)

    def _continue_controls(self, piece: Piece, context: np.ndarray, w0: int, first: tuple[int, int],
                           given: tuple[int, ...] | None) -> tuple[int, ...]:
        if given is not None:
            return given
        if not len(context):
            return ()
        qpm = float(piece.timeline.extended(first[0] + 1).qpm[first[0]])
        return header_controls(self.vocab, **measure_header_controls(self.vocab, context, max(first[0] - w0, 1), qpm))

    def _left_window(self, notes: np.ndarray, first: tuple[int, int], budget: int) -> tuple[int, np.ndarray]:
        """The last whole bars of ``notes`` that fit ``budget`` positions, and their first bar."""
        if not len(notes):
            return first[0], notes
        bars = notes[:, BAR]
        w0 = int(bars[-1])
        for bar in np.unique(bars)[::-1]:
            if int((bars >= bar).sum()) > budget:
                break
            w0 = int(bar)
        if (bars >= w0).sum() > budget:  # one bar denser than the budget: its last notes
            return int(bars[-budget]), notes[-budget:]
        w0 = gap_free_start(notes[bars >= w0], w0, self.vocab)
        return w0, notes[bars >= w0]

    def generate(self, programs: list[int], style: str = "unknown", bars: int = 8, tempo: float = 120.0,
                 time_signature: tuple[int, int] = (4, 4), controls: Mapping[str, Any] | None = None, n: int = 1,
                 sampling: SamplingConfig = SamplingConfig(), seed: int = 0, rules: MusicRules = MusicRules(),
                 notes: int | None = None) -> list[Result]:
        """A new piece for ``programs`` (GM programs, -1: drums) in ``style``, ``bars`` long (or
        ``notes`` notes long, ``bars`` then being a cap).

        ``controls``: keyword arguments of :func:`header_controls` (density, loudness, pitch_range;
        default: the tempo's control only). An asked density (notes per bar, all tracks) is also met:
        each track gets its share, within
        :data:`~harmonixr.generation.surroundings.DENSITY_TOLERANCE`, paced through the piece."""
        piece = self.new_piece(programs, style, tempo, time_signature, bars)
        values = self.header_values(tempo, controls)
        density = (controls or {}).get("density")
        made = self._extend(piece, piece.notes, (0, 0), bars, notes, n, sampling, seed, rules, "generate", 0, values,
                            density=None if density is None or notes is not None else float(density))
        loudness = (controls or {}).get("loudness")
        return made if loudness is None else [replace(r, score=score_to_mean_velocity(r.score, float(loudness))) for r in made]

    def header_values(self, tempo: float, controls: Mapping[str, Any] | None = None) -> tuple[int, ...]:
        """The control value ids of a new piece: its tempo's, and those of ``controls``."""
        return header_controls(self.vocab, tempo=tempo, **dict(controls or {}))

    def new_piece(self, programs: list[int], style: str = "unknown", tempo: float = 120.0,
                  time_signature: tuple[int, int] = (4, 4), bars: int = 8) -> Piece:
        """The empty piece :meth:`generate` writes into."""
        return Piece.empty(self.vocab, programs, style, tempo, time_signature, bars)

    # -- helpers ---------------------------------------------------------------------------
    def _slots(self, piece: Piece, region: Region) -> list[int]:
        if not region.tracks:
            return piece.slots
        slots = []
        for track in region.tracks:
            if not 0 <= track < len(piece.original.tracks):
                raise GenerationError(f"track {track + 1} does not exist (the piece has {len(piece.original.tracks)})")
            slot = piece.slot_of(track)
            if slot is None:  # an empty track: it becomes a new part
                slot = piece.add_slot(piece.original.tracks[track].program, track=track)
            slots.append(slot)
        return slots

    def _sample(self, sequence: np.ndarray, n: int, sampling: SamplingConfig, seed: int, limits: Rules,
                state: NoteState, place: Placement, room: int) -> list[Sampled]:
        if self.max_len - len(sequence) < 2:
            raise GenerationError("no room left in the model's context for generation")
        grammar = NoteGrammar(self.vocab, limits)
        cfg = replace(sampling, max_notes=max(1, min(sampling.max_notes, room, limits.max_notes)))
        outs = self.sampler.generate(sequence, n, cfg, seed, grammar, state, place, trace=self.trace)
        if self.trace:
            self.calls.append({"prompt": sequence, "outs": outs, "place": place, "rules": limits})
        return outs


def _hole_length(piece: Piece, hole: Hole, last_bar: int, last_pos: int) -> float:
    """The hole's length in bars (a bar of the piece's timeline each; a beat span a share of one)."""
    positions = piece.bar_positions(last_bar + 1)
    length = 0.0
    for bar in range(hole.start[0], last_bar + 1):
        size = positions[min(bar, len(positions) - 1)]
        first = hole.start[1] if bar == hole.start[0] else 0
        stop = last_pos if bar == last_bar and last_pos else size
        length += max(stop - first, 0) / size
    return length


def _rule_fields(rules: MusicRules) -> dict:
    return {"pitch_range": rules.pitch_range, "scale": rules.scale, "tonic": rules.tonic, "max_polyphony": rules.max_polyphony,
            "max_notes_per_bar": rules.max_notes_per_bar}


def _after(notes: np.ndarray, first: tuple[int, int]) -> tuple[int, int]:
    """Where a continuation that wrote ``notes`` goes on: at their last onset or later (and never
    before ``first``)."""
    if not len(notes):
        return first
    last = (int(notes[-1, BAR]), int(notes[-1, POS]))
    return max(last, first)


@dataclass
class _Row:
    """One variation of a continuation, grown a window at a time."""

    notes: np.ndarray  # the primer and what was written so far
    steps: int = 0
    made: int = 0  # new notes so far
    done: bool = False  # the model ended the piece (EOS) or wrote every bar or note asked for
    finished: bool = False

    def extend(self, out: Sampled, total: int, notes: int | None) -> None:
        """Add the notes of ``out``; a row cut by the context loses its last bar (written again)."""
        self.steps += out.steps
        new = out.notes
        if not out.ended and len(new):
            last = int(new[-1, BAR])
            if last < total - 1:
                new = new[new[:, BAR] < last] if (new[:, BAR] < last).any() else new
        self.notes = sort_notes(np.concatenate([self.notes, new])) if len(new) else self.notes
        self.made += len(new)
        self.done = out.ended or (notes is not None and self.made >= notes)
        self.finished = self.done or not len(new)


def _drop_meta_after(score: Score, tick: int) -> None:
    """Remove tempo and time-signature changes after ``tick`` (they belonged to the dropped music)."""
    for events in (score.tempos, score.time_signatures):
        kept = [e for e in events if e.time <= tick]
        events.clear()
        events.extend(kept)


def _halves(first: dict, second: dict) -> dict:
    """The details of a fill written in two halves: both sources (``from bars 9-10, then sampled``),
    the first half's controls, and the tracks required, drawn again for and missing in either."""
    def tracks(key: str) -> list[int]:
        return sorted({*first.get(key, ()), *second.get(key, ())})

    sources = dict.fromkeys((first.get("source", "sampled"), second.get("source", "sampled")))
    return {"controls": first.get("controls", {}), "source": ", then ".join(sources),
            "bits": first.get("bits", math.nan) + second.get("bits", math.nan),
            "required_tracks": tracks("required_tracks"), "missing_tracks": tracks("missing_tracks"),
            "resampled": first.get("resampled", 0) + second.get("resampled", 0)}


def _timed(results: list[Result], began: float) -> list[Result]:
    seconds = time.perf_counter() - began
    for result in results:
        result.seconds = seconds
    return results

