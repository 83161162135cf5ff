"""Infill: rewrite a region of a piece (bars, a beat span, some tracks under the others) with the
music on both sides as context.

The prompt is built by the prompt format (:func:`harmonixr.tokens.prompt.infill`), exactly as the
training examples were: the header, the hole's start and end, the tracks it rewrites and their
controls (inferred from the bars around the hole on each track unless given:
:class:`~harmonixr.generation.surroundings.Surroundings`), the music from the hole's start on, the
music before it, and ``FILL``. The model writes the hole's notes after the bars before it;
:class:`~harmonixr.sampling.rules.Rules` keep them inside the hole and on its tracks, hold each
track to what it plays around the hole, and end the fill with ``END``. Piece-aware infill offers
the song's own spans beside the sampled fills (:mod:`~harmonixr.generation.candidates`); a region
too long for one context is filled in halves. :meth:`Generator.infill
<harmonixr.generation.modes.Generator.infill>` is the entry point.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from harmonixr.data.stats import velocity_repeats
from harmonixr.generation import harmony
from harmonixr.generation.asked import meet_loudness, meets, onset_windows, slot_controls
from harmonixr.generation.candidates import SOURCES, Candidate, distinct, fill_bits, piece_candidates, rank
from harmonixr.generation.drums import BACKBEAT_BEATS, BACKBEAT_SHARE, BACKBEAT_TRIES, backbeat_share, has_backbeat
from harmonixr.generation.harmony import add_time_leans
from harmonixr.generation.piece import GenerationError, Piece, Region, written
from harmonixr.generation.requests import (
    FILL_SHARE,
    RESAMPLE_SEED,
    RESAMPLE_TRIES,
    MusicRules,
    RegionTooLong,
    Result,
    rule_fields,
    timed,
)
from harmonixr.generation.surroundings import CONTEXT_BARS, Surroundings
from harmonixr.runtime import autocast, autocast_dtype
from harmonixr.sampling.rules import NoteState, Rules
from harmonixr.sampling.sampler import Placement, Sampled, SamplingConfig
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK, sort_notes
from harmonixr.tokens.prompt import (
    Header,
    Hole,
    TrackControls,
    gap_free_end,
    gap_free_start,
    header_controls,
    infill,
    measure_controls,
    measure_header_controls,
    time_key,
)
from harmonixr.tokens.vocab import END, FILLED, NoteVocab

if TYPE_CHECKING:  # the generator calls this module
    from harmonixr.generation.modes import Generator


def infill_region(gen: Generator, piece: Piece, region: Region, n: int = 1,
                  sampling: SamplingConfig = SamplingConfig(), seed: int = 0, rules: MusicRules = MusicRules(),
                  mode: str = "infill", controls: Mapping[int, TrackControls] | None = None,
                  source: str = "piece", whole: Region | None = None) -> list[Result]:
    """:meth:`Generator.infill <harmonixr.generation.modes.Generator.infill>`: its docstring says
    what each argument asks. ``whole``: where ``region`` is a half of a region too long for one
    context, that region (the hole's tracks from its start to ``region``'s are the model's own
    notes, not the song's)."""
    if source not in SOURCES:
        raise GenerationError(f"source {source!r}: one of {', '.join(SOURCES)}")
    began = time.perf_counter()
    piece = piece.copy()  # empty tracks in the region get a slot in this copy only
    slots = gen.slots(piece, region)
    start, end = region.start, region.end
    if start[0] >= max(piece.bars, 1):
        raise GenerationError(f"the region starts at bar {start[0] + 1}, after the piece's {piece.bars} bars; "
                              "use continue")
    if end is not None and (end[0] > piece.bars or (end[0] == piece.bars and end[1] > 0)) and len(piece.notes):
        raise GenerationError(f"the region ends in bar {end[0] + (end[1] > 0)}, after the piece's {piece.bars} bars; "
                              "end it earlier (or use continue)")
    end = to_the_end(end, piece)
    hole = Hole(start, end, tuple(sorted(slots)) if region.tracks else ())
    others = piece.notes[~np.isin(piece.notes[:, TRACK], hole.tracks)]  # the tracks the hole keeps
    # the notes the halves before this one wrote are no song to hold it to: held to them, a bass
    # added under a POP909 song, or a part rewritten over a whole song, droned on one pitch. The
    # song's own notes of a track rewritten here stay: its part as the song has it (a sparse bridge
    # rewritten read as a new part, free to play: 27-126 notes came back as 413-454)
    whole = whole or region
    own = np.isin(piece.notes[:, TRACK], hole.tracks) & Hole(whole.start, start).in_span(piece.notes, gen.vocab)
    near = Surroundings(replace(piece, notes=piece.notes[~own]), hole, gen.vocab,
                        Hole(whole.start, to_the_end(whole.end, piece)))
    asked = slot_controls(piece, slots, controls)  # the caller's own
    wanted = near.controls(asked)
    budget = fill_budget(gen, piece, hole, wanted)
    try:
        sequence, bar0, header = infill_prompt(gen, piece, hole, wanted, budget)
    except RegionTooLong:
        if len(hole.bars(piece.bars - 1)) < 2:
            raise
        return timed(infill_in_parts(gen, piece, region, n, sampling, seed, rules, mode, controls, source, whole),
                      began)
    last_bar, last_pos = (piece.bars - 1, 0) if end is None else (end[0] - (end[1] == 0), end[1])
    # nothing dropped silently: a track that plays around the hole (and is not told to be silent) plays in it
    required = tuple(s for s, c in wanted.items() if near.must_play(s, c))
    # a track told to be silent (density 0, or a track silent around the hole) gets no note: a mask, not a hope
    silent = {s for s, c in wanted.items() if c.density == 0}
    # said, not left to be found: the tracks silenced because they enter or leave further off
    far = sorted(piece.track_of(s) for s in silent if near.far_one_side(s) and (s not in asked or asked[s].density is None))
    playing = tuple(s for s in slots if s not in silent)
    ranges = tuple((s, c.low if c.low is not None else 0, c.high if c.high is not None else 127)
                   for s, c in asked.items() if s != gen.vocab.drum_slot and (c.low is not None or c.high is not None))
    velocities = tuple((s, c.vel_low or 1, c.vel_high or 127) for s, c in asked.items()
                       if c.vel_low is not None or c.vel_high is not None)
    chords = tuple((s, c.chord) for s, c in asked.items() if c.chord is not None)
    length = hole_length(piece, hole, last_bar, last_pos)
    onsets = onset_windows(asked, length)
    parts = {s: part for s in slots  # a new part's program's
             if s != gen.vocab.drum_slot and near.new_part(s) and (part := gen.typical_part(piece, s)) is not None}
    held = near.held(wanted, asked, length, rules, parts)
    drums = gen.vocab.drum_slot  # a new drum part keeps to its style's kit and groove (the song has none to keep)
    grooved: dict = {}
    if drums in playing and near.new_part(drums) and not held.kit and (kit := gen.new_kit(piece)) is not None:
        held = held._replace(kit=kit.sounds, leans=(*held.leans, (drums, kit.keeping_time(seed))))
        steps = np.concatenate([[0], np.cumsum(piece.bar_positions(last_bar + 1))])
        grooved = kit.timed(steps, range(start[0], last_bar + 1), added=True)
    # a new melodic part repeats a velocity no more often than the song's most repetitive melodic part
    new_parts = [s for s in playing if s != drums and near.new_part(s)]
    song = velocity_repeats(piece.notes[piece.notes[:, TRACK] != drums]) if new_parts else (1.0, 1.0)
    held_velocities = tuple((s, *song) for s in new_parts) if min(song) < 1 else ()
    # a hole inside the song is played to its last bar; one to the song's end, as long as the tracks kept play
    reach = (last_bar if end is not None else int(others[:, BAR].max()) if hole.tracks and len(others) else 0) \
        if required else 0
    limits = Rules(playing or tuple(slots), piece.bar_positions(last_bar + 1), song_start(piece, start, end), last_bar,
                   last_pos, END, required=required, required_by=last_bar, min_bar=reach, track_velocities=velocities,
                   velocity_repeats=held_velocities,
                   **{**held.rules(), **grooved, "track_ranges": ranges + held.ranges, "track_onsets": onsets + held.onsets,
                      "track_chords": chords + held.chords, **rule_fields(rules), **({} if playing else {"max_notes": 0})})
    place = Placement(bar0, piece.bars_meta(last_bar + 1), piece.header(), FILLED, hole)
    state = NoteState(start[0], start[1])
    copies = []
    # a sampled fill keeps to the harmony of the song's best-matching span, as far as it matches;
    # not a refine's beat (its dozens of beats each matched against a long song: refine of POP909
    # songs 2.2 -> 2.9 s, bits per note no lower; benchmarks/sampling.py --parts refine)
    found = piece_candidates(piece.notes, piece.bars_meta().meter, hole, piece.bars, gen.vocab) \
        if source != "sampled" or (harmony.COPY_LEAN and mode != "refine") else []
    if found:
        copied = harmony.harmony_of(near, found[0].notes, found[0].match)
        limits = replace(limits, time_leans=add_time_leans(limits.time_leans, copied))
    if source != "sampled":
        copies = [replace(c, notes=c.notes[~np.isin(c.notes[:, TRACK], list(silent))]) for c in found]
        # a copy keeps every track that plays on both sides (not those next to the hole on one side:
        # whether they enter there, the song's own bars know better)
        both = {s for s, c in wanted.items() if near.both_sides(s, c)}
        copies = [c for c in copies if len(c.notes) and len(sequence) + len(c.notes) < gen.max_len  # one that fits
                  and both <= set(c.notes[:, TRACK].tolist())
                  and meets(c.notes, onsets, ranges, chords, rules, gen.vocab.drum_slot)]
        copies = distinct(copies)  # variations differ: the same notes are offered once, best first
    wanted_draws = max(n - len(copies), 0) if source == "piece" else n  # "piece": sampled fills only make up the number
    kept_loud = {s: TrackControls(loudness=loud) for s, loud in held.loudness}  # held tracks' own loudness
    solo = near.solo_lines()  # a voice sung one note at a time around the hole stays one in the fill

    def finished(out: Sampled) -> Candidate:
        """A sampled fill as it is kept: its held tracks' voices, ends and loudness as around the hole."""
        notes = meet_loudness(near.end_by_hole_end(near.end_at_next(out.notes, solo)), kept_loud)
        return Candidate(notes, "sampled", steps=out.steps, ended=out.ended)

    fills = [finished(out) for out in gen.sample(sequence, wanted_draws, sampling, seed, limits, state, place, budget)] \
        if wanted_draws else []
    resampled = redrawn = 0
    # a new drum part of a style whose kit has a kick and a snare plays them (drums.BACKBEAT_SHARE)
    backbeat = drums in playing and near.new_part(drums) and has_backbeat(held.kit)

    def on_beat(notes: np.ndarray) -> float:
        """The backbeat share of a fill's drums, by spans of four beats."""
        mine = notes[notes[:, TRACK] == drums]
        return backbeat_share(near.step_of(mine) // (BACKBEAT_BEATS * gen.vocab.grid), mine[:, PITCH])

    for attempt in range(1, max(RESAMPLE_TRIES, BACKBEAT_TRIES if backbeat else 0) + 1):
        # nothing dropped silently, no variation twice: draw again
        missing = [k for k, fill in enumerate(fills) if not set(required) <= set(fill.notes[:, TRACK].tolist())] \
            if attempt <= RESAMPLE_TRIES else []
        thin = [k for k, fill in enumerate(fills) if k not in missing and on_beat(fill.notes) < BACKBEAT_SHARE] \
            if backbeat and attempt <= BACKBEAT_TRIES else []
        again = sorted({*missing, *thin, *(alike(fills) if attempt <= RESAMPLE_TRIES else [])})
        if not again:
            break
        for k, out in zip(again, gen.sample(sequence, len(again), sampling, seed + RESAMPLE_SEED * attempt, limits,
                                            state, place, budget)):
            fills[k] = finished(out)
        resampled, redrawn = resampled + len(missing), redrawn + len(thin)
    repeats = len(alike(fills))
    if copies:
        pool = distinct(fills + copies)  # a sampled fill may play the song's own bars
        if source == "piece":  # the model's bits only break ties of the copies' score: score those only
            pool = rank(pool, source)
            pool = [c for c in pool if c.score_or_0 >= pool[min(n, len(pool)) - 1].score_or_0]
        with autocast(torch.device("cpu"), autocast_dtype("auto", torch.device("cpu"))):
            bits = fill_bits(gen.model, gen.vocab, sequence, [c.notes for c in pool], hole, bar0,
                             piece.bars_meta(last_bar + 1), header)
        fills = rank([replace(c, bits=b) for c, b in zip(pool, bits)], source)[:n]
    start_tick = piece.tick(*start)
    end_tick = piece.tick(*end) if end is not None else None
    tracks = sorted({t for s in slots for t in piece.tracks_of(s)}) if region.tracks \
        else list(range(len(piece.original.tracks)))
    timeline = piece.timeline.extended(last_bar + 1)
    loud = {s: c for s, c in asked.items() if c.loudness is not None or c.vel_low is not None or c.vel_high is not None}
    fills = [replace(f, notes=meet_loudness(f.notes, loud)) for f in fills] if loud else fills
    results = []
    for fill in fills:
        score = piece.splice(piece.to_notes(fill.notes, timeline), start_tick, end_tick, tracks)
        results.append(Result(
            score, start_tick, end_tick, tuple(tracks), written(score, start_tick, end_tick, tracks), fill.steps, fill.ended,
            0.0, mode,
            {"controls": {piece.track_of(s): c for s, c in wanted.items()}, "source": fill.label,
             "bits": fill.bits, "required_tracks": [piece.track_of(s) for s in required], "resampled": resampled,
             "alike": repeats, "backbeat_redrawn": redrawn,
             "with_tracks": sorted(set(tracks) - set(region.tracks)) if region.tracks else [], "far_silent": far,
             "missing_tracks": [piece.track_of(s) for s in required if s not in set(fill.notes[:, TRACK].tolist())]}))
    return timed(results, began)


def to_the_end(end: tuple[int, int] | None, piece: Piece) -> tuple[int, int] | None:
    """A region's ``end``, None where it runs to the end of ``piece`` (the bar after its last, or later)."""
    return None if end is None or end[0] >= piece.bars else end


def alike(fills: list[Candidate]) -> list[int]:
    """The fills that hold the same notes as an earlier one."""
    drawn = [fill.notes.tobytes() for fill in fills]
    return [k for k, notes in enumerate(drawn) if notes in drawn[:k]]


def song_start(piece: Piece, start: tuple[int, int], end: tuple[int, int] | None) -> tuple[int, int]:
    """Where a sampled fill of the region from ``start`` to ``end`` may start its first note: at
    ``start``, or, when the song's first note (of any track, the region's own included) lies inside
    the region, there: a fill adds no intro before the song begins (in a chorale that opens on its
    third beat, a rewritten alto does not sing the first two alone)."""
    if not len(piece.notes):
        return start
    first = min(map(tuple, piece.notes[:, [BAR, POS]].tolist()))
    inside = start < first and (end is None or first < tuple(end))
    return (int(first[0]), int(first[1])) if inside else start


def fill_budget(gen: Generator, piece: Piece, hole: Hole, controls: Mapping[int, TrackControls]) -> int:
    """Positions to leave for the fill: 1.5x what the hole held, or what its controls ask for
    (with chords as large as they say; a part without controls as many as the average part
    plays there, and a new part at least as many as its program's parts play in the training
    data, with their chords: a drum part added under a choir plays a dozen onsets a bar), whichever
    is more."""
    held = len(piece.notes_in(hole))
    bars = len(hole.bars(piece.bars - 1))
    span = piece.notes[Hole(hole.start, hole.end).in_span(piece.notes, gen.vocab)]
    per_part = len(span) / max(len(np.unique(span[:, TRACK])), 1)

    def part(slot: int, c: TrackControls) -> float:
        if c.density is not None:
            return c.density * (c.chord or 1) * bars
        typical = gen.typical_part(piece, slot) if not (piece.notes[:, TRACK] == slot).any() else None
        return per_part if typical is None else max(per_part, typical.pace * typical.chord * bars)

    asked = sum(part(s, c) for s, c in controls.items())
    return int(max(1.5 * max(held, asked) + 16, 32))


def infill_prompt(gen: Generator, piece: Piece, hole: Hole, controls: Mapping[int, TrackControls],
                   budget: int) -> tuple[np.ndarray, int, Header]:
    """The widest window of whole bars around the hole whose prompt leaves ``budget`` positions:
    its rows (ending with FILL), its first bar, and its header."""
    v = gen.vocab
    hole_bars = hole.bars(piece.bars - 1)
    room = gen.max_len - budget
    if budget > FILL_SHARE * gen.max_len and len(hole_bars) > 1:
        raise RegionTooLong(f"the region would need about {budget} notes, more than {FILL_SHARE:.0%} of the "
                            f"model's context of {gen.max_len}")
    header = piece.header(controls=context_controls(gen.vocab, piece, hole))

    bars_meta = piece.bars_meta()

    def window(w0: int, w1: int) -> tuple[np.ndarray, int]:
        """The notes of bars ``w0``-``w1`` that the prompt holds, and its first bar."""
        notes = piece.notes[(piece.notes[:, BAR] >= w0) & (piece.notes[:, BAR] < w1)]
        past = notes[time_key(notes[:, BAR], notes[:, POS], v) < time_key(*hole.start, v)]
        w0 = gap_free_start(past, w0, v)  # relative bar counts cannot reach across a long silence
        notes = notes[notes[:, BAR] >= w0]
        after = time_key(notes[:, BAR], notes[:, POS], v) >= time_key(*hole.start, v)
        keep = np.flatnonzero(after)[: gap_free_end(notes[after], hole.start[0], v)]
        return np.concatenate([notes[~after], notes[keep]]), w0

    def build(notes: np.ndarray, w0: int) -> np.ndarray:
        return infill(v, header, sort_notes(notes), w0, bars_meta, hole, controls, fill=False).rows

    def outside(notes: np.ndarray) -> int:  # the notes of a window that get a row of the prompt each
        return int((~hole.contains(notes, v)).sum())

    windows = [(hole_bars[0], min(hole_bars[-1] + 1, max(piece.bars, 1)))]  # a bar more each, left and right in turn
    while (w := windows[-1])[0] > 0 or w[1] < piece.bars:
        windows.append((w[0] - 1, w[1]) if (len(windows) % 2 and w[0] > 0) or w[1] >= piece.bars else (w[0], w[1] + 1))
    first = window(*windows[0])
    rows = build(*first)
    if len(rows) > room:
        raise RegionTooLong(f"the region's bars hold more than the model's context of {gen.max_len} positions; "
                            "choose a shorter span")
    # a prompt is its fixed rows and one row per note of the window outside the hole: counted, not built
    fixed = len(rows) - outside(first[0])
    fits, over, best = 0, len(windows), first  # a wider window never has fewer rows: the widest that fits, by bisection
    while over - fits > 1:
        middle = (fits + over) // 2
        candidate = window(*windows[middle])
        if fixed + outside(candidate[0]) <= room:
            fits, best = middle, candidate
        else:
            over = middle
    if fits:
        rows = build(*best)
        assert len(rows) == fixed + outside(best[0]), "a prompt's rows are counted as built"
    return rows, best[1], header


def context_controls(vocab: NoteVocab, piece: Piece, hole: Hole) -> tuple[int, ...]:
    """Piece-level controls measured on the ``CONTEXT_BARS`` bars on each side of the hole, its
    own notes left out (training measures them on the window; the hole is not known here)."""
    hole_bars = hole.bars(piece.bars - 1)
    first, last = max(hole_bars[0] - CONTEXT_BARS, 0), min(hole_bars[-1] + 1 + CONTEXT_BARS, max(piece.bars, 1))
    near = piece.notes[(piece.notes[:, BAR] >= first) & (piece.notes[:, BAR] < last)]
    near = near[~hole.contains(near, vocab)]
    bars = (last - first) - (len(hole_bars) if not hole.tracks else 0)
    if not len(near):
        return ()
    qpm = float(piece.timeline.qpm[min(hole.start[0], piece.bars - 1)])
    return header_controls(vocab, **measure_header_controls(vocab, near, max(bars, 1), qpm))


def infill_in_parts(gen: Generator, piece: Piece, region: Region, n: int, sampling: SamplingConfig, seed: int,
                     rules: MusicRules, mode: str, controls: Mapping[int, TrackControls] | None,
                     source: str, whole: Region | None = None) -> list[Result]:
    """A region too long for one context: its first half (``n`` variations of it, as one region's
    are: the song's spans best first, then sampled fills), then each variation's second half with
    its first half's new notes as context."""
    last = region.end[0] - (region.end[1] == 0) if region.end is not None else piece.bars - 1
    mid = ((region.start[0] + last + 1) // 2, 0)
    results = []
    firsts = infill_region(gen, piece, replace(region, end=mid), n, sampling, seed, rules, mode, controls, source,
                           whole or region)
    for k, first in enumerate(firsts):
        rest = Piece.from_score(first.score, gen.vocab, piece.style)
        # a new part's second half is the model's too: the first half's own bars are no song to copy
        second = infill_region(gen, rest, replace(region, start=mid), 1, sampling, seed + k + 7919, rules, mode,
                               played_on(rest, region, mid, controls) if mode == "add-track" else controls,
                               "sampled" if mode == "add-track" else source,
                               whole or region)[0]
        results.append(Result(second.score, first.start_tick, second.end_tick,
                              tuple(sorted({*first.tracks, *second.tracks})), first.notes + second.notes,
                              first.positions + second.positions, first.finished and second.finished, 0.0, mode,
                              halves(first.details, second.details)))
    return results


def played_on(piece: Piece, region: Region, mid: tuple[int, int],
              controls: Mapping[int, TrackControls] | None) -> Mapping[int, TrackControls] | None:
    """The controls of a long region's second half where the region adds a part (over a whole
    song): it plays on at the density and chord size it played in the first half (in ``piece``, the
    first half written), unless ``controls`` asks otherwise. Without them, a bass added under a
    145-bar POP909 song stopped in bar 68."""
    if not region.tracks:
        return controls
    out = dict(controls or {})
    bars = mid[0] - region.start[0]
    for track in region.tracks:
        slot = piece.slot_of(track)
        rows = piece.notes[(piece.notes[:, TRACK] == slot) & (piece.notes[:, BAR] >= region.start[0])
                           & (piece.notes[:, BAR] < mid[0])] if slot is not None else piece.notes[:0]
        if not len(rows):
            continue
        first = measure_controls(rows, bars, piece.vocab)
        asked = out.get(track, TrackControls())
        out[track] = replace(asked, density=asked.density if asked.density is not None else first.density,
                             chord=asked.chord if asked.chord is not None else first.chord)
    return out


def hole_length(piece: Piece, hole: Hole, last_bar: int, last_pos: int) -> float:
    """The hole's length in bars (a bar of the piece's timeline each; a beat span a share of one)."""
    positions = piece.bar_positions(last_bar + 1)
    length = 0.0
    for bar in range(hole.start[0], last_bar + 1):
        size = positions[min(bar, len(positions) - 1)]
        first = hole.start[1] if bar == hole.start[0] else 0
        stop = last_pos if bar == last_bar and last_pos else size
        length += max(stop - first, 0) / size
    return length


def halves(first: dict, second: dict) -> dict:
    """The details of a fill written in two halves: both sources (``from bars 9-10, then sampled``),
    the first half's controls, and the tracks required, drawn again for and missing in either."""
    def tracks(key: str) -> list[int]:
        return sorted({*first.get(key, ()), *second.get(key, ())})

    sources = dict.fromkeys((first.get("source", "sampled"), second.get("source", "sampled")))
    return {"controls": first.get("controls", {}), "source": ", then ".join(sources),
            "bits": first.get("bits", math.nan) + second.get("bits", math.nan),
            "required_tracks": tracks("required_tracks"), "missing_tracks": tracks("missing_tracks"),
            "with_tracks": tracks("with_tracks"), "far_silent": tracks("far_silent"),
            "resampled": first.get("resampled", 0) + second.get("resampled", 0),
            "alike": first.get("alike", 0) + second.get("alike", 0),
            "backbeat_redrawn": first.get("backbeat_redrawn", 0) + second.get("backbeat_redrawn", 0)}
