"""The generator: a trained model loaded once, and its modes as methods: infill, continue,
generate, add a track.

- **infill** (a span of bars or beats, all tracks or some) with the music on both sides as
  context: :mod:`~harmonixr.generation.infill`.
- **continue / generate**: a plain window (header, the last bars so far, built by the prompt
  format, :mod:`harmonixr.tokens.prompt`, exactly as the training examples were) and the model
  writes on, a window at a time, until the requested bars are there (or the notes asked for).
- **add a track**: a new slot in the header, then an infill of that track alone over the span.

Every mode returns :class:`~harmonixr.generation.requests.Result` s whose ``score`` is the
original with the region rewritten (:meth:`Piece.splice`), one per variation; all variations of a
call are sampled in one batch (:meth:`Generator.sample`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
from symusic import Score

from harmonixr.data.stats import DRUMS, EVERY_STYLE, GROOVE_METER, LOUD, TypicalPart
from harmonixr.generation import drums, harmony, surroundings
from harmonixr.generation.asked import meet_loudness, onset_windows
from harmonixr.generation.candidates import Candidate, piece_candidates
from harmonixr.generation.drums import BACKBEAT_BEATS, Kit, has_backbeat, with_backbeat
from harmonixr.generation.harmony import TimeLeans, add_time_leans
from harmonixr.generation.infill import infill_region
from harmonixr.generation.piece import GenerationError, Piece, Region, drop_after, written
from harmonixr.generation.postprocess import Key, estimate_key, score_to_mean_velocity
from harmonixr.generation.requests import ANY_PITCH, FILL_SHARE, RESAMPLE_SEED, MusicRules, Result, rule_fields, timed
from harmonixr.generation.surroundings import INFERRED_TOLERANCE, Surroundings, context_bars
from harmonixr.models.checkpoint import load_checkpoint
from harmonixr.sampling.grammar import NoteGrammar
from harmonixr.sampling.rules import UNLIMITED, NoteState, Rules
from harmonixr.sampling.sampler import Placement, Sampled, Sampler, SamplingConfig
from harmonixr.tokens.notes import BAR, POS, TRACK, sort_notes
from harmonixr.tokens.prompt import Hole, TrackControls, gap_free_start, header_controls, measure_header_controls, plain
from harmonixr.tokens.vocab import BODY, EOS

MIN_ROOM = 16  # positions a continuation window must leave for new notes
CONTINUE_SOURCES = ("piece", "sampled")  # continue_: the song's own bars first, or sampled only
# A new piece asked in a key and heard in another (most often its relative major or minor: they
# share a scale) is drawn again, this many times at most; chosen with benchmarks/keys.py.
KEY_TRIES = 3
# A new piece's parts lean to a chord plan (generation/harmony.py): without it, long new pieces
# drift to one pitch (benchmarks/long_pieces.py). False: no plan.
PLAN_CHORDS = True
# A new piece's melodic part of a style whose parts change velocity note by note (they repeat the
# velocity of the note before less than DYNAMIC_REPEATS of the time: POP909's pop 0.109, the
# performed piano 0.035) gives its notes at data.stats.LOUD or more at most their share there (pop:
# 0.029). Not a style whose parts keep a velocity (game music 0.753: a loud part is loud
# throughout; classical 0.962), nor one without melodic parts (every style's: 0.596). New 8-bar pop
# pieces (python benchmarks/piece_velocities.py --seeds 0,1,2,3): mean velocity 92.2 -> 84.1,
# spread in a part 14.2 -> 12.3, at 120 or more 0.132 -> 0.008 (POP909's parts: 86.6, 12.2, 0.031);
# capped as well, game music's loud notes fell 0.060 -> 0.005 (its parts: 0.194), and classical
# parts' mean rose 66.3 -> 76.3 (theirs 66.4).
DYNAMIC_REPEATS = 0.5


class Generator:
    """A trained model ready to write music: load once, call the modes many times."""

    def __init__(self, checkpoint: str | Path, backend: str = "auto", device: str = "cpu") -> None:
        loaded = load_checkpoint(checkpoint, device)
        self.model, self.vocab = loaded.model, loaded.vocab
        # per GM program (-1: drums), the pitches, onsets per bar and chord size of its parts in the
        # training data (data.stats.program_parts): a part written from nothing keeps to them
        self.program_parts = {program: TypicalPart(*rest) for program, *rest in loaded.meta.get("program_parts", [])}
        # per style, the drum sounds its parts play and how often (data.stats.drum_kits): a new drum part keeps to them
        self.drum_kits = {style: [(int(sound), float(share)) for sound, share in sounds]
                          for style, sounds in loaded.meta.get("drum_kits", [])}
        # and where in a 4/4 bar, with what velocities (data.stats.drum_grooves): a new drum part leans to them
        self.drum_grooves = dict(loaded.meta.get("drum_grooves", []))
        # and how often a hit repeats the velocity of the one before (data.stats.drum_repeats): a new drum part no more
        self.drum_repeats = {style: (float(after), float(sound)) for style, after, sound in loaded.meta.get("drum_repeats", [])}
        # and how often a note of a melodic part does, and one of its pitch, and how often one is loud
        # (data.stats.melodic_velocities): a new piece's no more
        self.melodic_velocities = {style: (float(after), float(pitch), float(loud))
                                   for style, after, pitch, loud in loaded.meta.get("melodic_velocities", [])}
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
        drum kit, and a lean to its pitch classes; a track that enters or leaves in the hole at
        most its density there, silent unless it plays next to the hole) except where the caller
        asks otherwise:
        :meth:`~harmonixr.generation.surroundings.Surroundings.held`.
        ``source``: ``"piece"`` (piece-aware: the song's own spans of the hole's length whose
        surroundings match the hole's best, sampled fills making up the number), ``"best"`` (those
        copies that match well, then copies and ``n`` sampled fills by bits per note) or
        ``"sampled"`` (:mod:`~harmonixr.generation.candidates`); ``details["source"]`` says where
        each came from. Controls set by the caller are met by copies too: a copy is offered only
        where it already does what they ask (onsets in the asked window, pitches in the asked
        range, chords no bigger than asked), with its velocities brought to the asked loudness and
        range as a sampled fill's are; it keeps the song's own rhythm."""
        return infill_region(self, piece, region, n, sampling, seed, rules, mode, controls, source)

    def add_track(self, piece: Piece, program: int, region: Region | None = None, name: str | None = None,
                  **kwargs: Any) -> list[Result]:
        """A new part (GM ``program``, -1: drums) over ``region`` (default: the whole piece), under the others."""
        piece = piece.copy()
        piece.add_slot(program, name)
        track = len(piece.original.tracks) - 1
        region = region or Region((0, 0), None)
        return self.infill(piece, replace(region, tracks=(track,)), mode="add-track", **kwargs)

    # -- continue / generate ---------------------------------------------------------------
    def continue_(self, piece: Piece, bars: int = 8, after_bar: int | None = None, n: int = 1,
                  sampling: SamplingConfig = SamplingConfig(), seed: int = 0, rules: MusicRules = MusicRules(),
                  mode: str = "continue", after_notes: int | None = None, notes: int | None = None,
                  controls: tuple[int, ...] | None = None, source: str = "piece") -> list[Result]:
        """Continue ``piece`` from the end of bar ``after_bar`` (default: the end), or right after
        its first ``after_notes`` notes; write ``bars`` bars, or ``notes`` notes (then ``bars`` is a
        cap). What followed the primer in the original is dropped.

        ``source="piece"`` (a continuation of whole bars after a bar line): first the bars that
        followed the passages likest the bars before the cut (piece-aware infill's context match
        on a hole from the cut, the primer alone around it; best first, labelled ``from bars
        13-16``), then sampled continuations make up the number; ``"sampled"``: sampled only,
        leaning to the harmony of the likest passage's bars (:data:`~harmonixr.generation.harmony.COPY_LEAN`).
        In a sampled one, each track
        that plays in the bars just before the cut plays on, held to what it plays there as a
        sampled fill is (unless a count of ``notes`` is asked); a track silent there stays silent
        (:data:`HOLD_TRACKS`)."""
        if bars < 1 or (notes is not None and notes < 1):
            raise GenerationError("ask for at least one bar (or one note)")
        if source not in CONTINUE_SOURCES:
            raise GenerationError(f"source {source!r}: one of {', '.join(CONTINUE_SOURCES)}")
        if after_notes is not None:
            if not 0 < after_notes <= len(piece.notes):
                raise GenerationError(f"the piece has {len(piece.notes)} notes; the primer must hold 1 to {len(piece.notes)}")
            last = piece.notes[after_notes - 1]  # every note starting up to the N-th note's onset is the primer
            first = (int(last[BAR]), int(last[POS]) + 1)
            primer = piece.before(first)
        else:
            if after_bar is not None and not 0 <= after_bar <= piece.bars:
                raise GenerationError(f"--after-bar {after_bar}: the piece has {piece.bars} bars")
            first = (piece.bars if after_bar is None else after_bar, 0)
            primer = piece.notes[piece.notes[:, BAR] < first[0]]
        began = time.perf_counter()
        total = first[0] + bars
        whole_bars = after_notes is None and notes is None  # a copy is whole bars from a bar line
        likest = piece_candidates(primer, piece.bars_meta(total).meter, Hole(first, (total, 0)), total, self.vocab) \
            if len(primer) and (source == "piece" and whole_bars or harmony.COPY_LEAN) else []
        copies = [self._spliced(piece, copy.notes, piece.tick(*first), total, 0, True, mode, {"source": copy.label})
                  for copy in likest[:n]] if source == "piece" and whole_bars else []
        drawn = self._extend(piece, primer, first, total, notes, n - len(copies), sampling, seed, rules, mode,
                             piece.tick(*first), controls, likest=likest[0] if likest else None) if len(copies) < n else []
        return timed(copies + drawn, began)

    def _spliced(self, piece: Piece, new: np.ndarray, start_tick: int, total: int, steps: int, finished: bool,
                 mode: str, details: dict | None = None) -> Result:
        """``piece`` up to ``start_tick`` and the notes ``new`` (rows of its bars, up to bar
        ``total``) from there on, as a :class:`Result`. A note still sounding at bar ``total``
        ends there: a new piece or a continuation of N bars is N bars long (7 of 30 new 3-bar
        pieces rang on into a fourth)."""
        timeline = piece.timeline.extended(total)
        end = timeline.tick(total)
        made = {t: [x for x in found if x.time >= start_tick] for t, found in piece.to_notes(new, timeline).items()}
        for found in made.values():
            for x in found:
                x.duration = max(min(x.duration, end - x.time), 1)
        tracks = list(range(len(piece.original.tracks)))
        score = piece.splice(made, start_tick, None, tracks)
        drop_after(score, start_tick)
        return Result(score, start_tick, None, tuple(tracks), written(score, start_tick, None, tracks), steps, finished,
                      0.0, mode, details or {})

    def _extend(self, piece: Piece, primer: np.ndarray, first: tuple[int, int], total: int, notes: int | None,
                n: int, sampling: SamplingConfig, seed: int, rules: MusicRules, mode: str, start_tick: int,
                controls: tuple[int, ...] | None, density: float | None = None,
                likest: Candidate | None = None, chords: harmony.Plan | None = None) -> list[Result]:
        """Write on after the notes ``primer`` from ``first`` up to bar ``total`` (or ``notes`` new
        notes); the result is the original up to ``start_tick`` and the new notes from there.
        ``density``: notes per bar of all tracks together, shared among them and paced (each window
        asks for the share of the bars it has left); ``likest``: the bars that followed the passage
        likest the bars before ``first``, whose harmony a held continuation leans to; ``chords``:
        a new piece's chord plan, which its parts lean to."""
        began = time.perf_counter()
        rows = [_Row(primer) for _ in range(n)]
        # a continuation holds the tracks that play in the bars before it to what they play there, as
        # a sampled fill is held (Surroundings.held, a hole open to the end: its primer alone around
        # it), and the tracks silent there stay silent (unless every track is)
        near = Surroundings(replace(piece, notes=primer, timeline=piece.timeline.extended(total)), Hole(first, None),
                            self.vocab, context=context_bars(total - first[0])) \
            if HOLD_TRACKS and len(primer) and mode != "generate" else None
        wanted = {s: c for s, c in near.controls().items() if near.held_to(s, c)} if near is not None else {}
        # and leans to the harmony of the bars that followed the earlier passage most like the
        # bars before the cut (harmony.COPY_LEAN x how alike), as a sampled fill does
        heard = harmony.harmony_of(near, likest.notes, likest.match) if near is not None and likest is not None else ()
        positions = piece.bar_positions(total)
        bars_meta = piece.bars_meta(total)
        # the drums on their style's kit and groove; every part's velocities as varied as its style's parts'
        new_parts = {**self._kit_rules(piece, total, seed), **self._velocity_rules(piece)} if mode == "generate" else {}
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
                kept = {"required": tuple(piece.slots) if mode == "generate" and window == 0 else (),  # every part
                        "track_onsets": paced}  # plays, entering by bar 2
                if mode == "generate" and notes is None and not density and surroundings.HOLD_NEW_PARTS:  # each part
                    kept = {**kept, **self._typical_parts(piece, left_bars, rules)}  # as its program's parts play
                kept = {**kept, **new_parts}
                if chords is not None:  # the other parts on a chord plan
                    kept = {**kept, **self._plan_rules(piece, chords, total)}
                if near is not None and wanted and notes is None:  # (a count of notes asked: spent as the model likes)
                    held = {**near.held(wanted, {}, left_bars, rules).rules(), "track_leans": ()}  # (HOLD_TRACKS)
                    kept = {**held, "required": tuple(sorted(wanted)) if window == 0 else (),  # and by their seams
                            "track_first": held["track_first"] if window == 0 else ()}
                if heard:
                    kept = {**kept, "time_leans": add_time_leans(cast(TimeLeans, kept.get("time_leans", ())), heard)}
                limits = Rules(tuple(sorted(wanted)) or tuple(piece.slots), positions, start, total - 1, 0, EOS,
                               max_notes=left if left is not None else UNLIMITED, min_notes=left or 0,
                               min_bar=total - 1 if notes is None else 0,  # asked for bars: it reaches the last
                               required_by=1 if mode == "generate" else total - 1,
                               count_notes=bool(paced), **{**rule_fields(rules), **kept})
                place = Placement(w0, bars_meta, header, BODY)
                outs = self.sample(sequence, len(group), sampling, seed + 7919 * window + k, limits, state, place,
                                    self.max_len - len(sequence))
                for row, out in zip(group, outs):
                    row.extend(out, total, notes)
            window += 1
        results = []
        loud = {s: TrackControls(loudness=loud) for s, loud in near.held(wanted, {}, 1.0, rules).loudness} \
            if near is not None and wanted else {}
        solo = near.solo_lines() if near is not None else ()
        for row in rows:
            new = meet_loudness(near.end_at_next(row.notes[len(primer):], solo), loud) if near is not None else \
                row.notes[len(primer):]
            results.append(self._spliced(piece, new, start_tick, total, row.steps, row.done, mode))
        return timed(results, began)

    def typical_part(self, piece: Piece, slot: int) -> TypicalPart | None:
        """What the parts of ``slot``'s GM program (the drums' for the drum slot) play in the
        training data; None where the model has none."""
        return self.program_parts.get(DRUMS if slot == self.vocab.drum_slot else piece.tracks.programs[slot])

    def new_kit(self, piece: Piece) -> Kit | None:
        """The kit a new drum part of ``piece`` keeps to: its style's in the training data, else every
        style's (None: the checkpoint has no kits)."""
        shares = self.drum_kits.get(piece.style, self.drum_kits.get(EVERY_STYLE))
        groove = self.drum_grooves.get(piece.style) or self.drum_grooves.get(EVERY_STYLE) or ()
        return Kit.of(shares, drums.KIT_LEAN, groove, GROOVE_METER[0] * self.vocab.grid) if shares else None

    def _kit_rules(self, piece: Piece, bars: int, seed: int) -> dict[str, Any]:
        """The Rules fields that hold ``piece``'s drum slot, a new part of ``bars`` bars, to
        :meth:`new_kit` and its groove, keeping time on the hi-hat or the ride (drawn from ``seed``)."""
        if self.vocab.drum_slot not in piece.slots or (kit := self.new_kit(piece)) is None:
            return {}
        steps = np.concatenate([[0], np.cumsum(piece.bar_positions(bars))])
        return {"drum_kit": kit.sounds, "track_leans": ((self.vocab.drum_slot, kit.keeping_time(seed)),),
                **kit.timed(steps, range(bars))}

    def _velocity_rules(self, piece: Piece) -> dict[str, Any]:
        """The Rules fields that hold each part of a new ``piece`` off the velocity of its note before
        as often as its style's parts in the training data (:attr:`drum_repeats`,
        :attr:`melodic_velocities`; every style's where the style has too few), a drum part off its
        sound's note before too, and a melodic part's notes at :data:`~harmonixr.data.stats.LOUD` or
        more to their share there where its style's parts play with dynamics (:data:`DYNAMIC_REPEATS`).
        (A melodic part held off its pitch's note before too, a classical piece's parts, whose
        dynamics change from passage to passage, drifted louder: mean velocity 66 -> 81, theirs 66;
        ``benchmarks/piece_velocities.py``.)"""
        repeats, caps = [], []
        melodic = self.melodic_velocities.get(piece.style, self.melodic_velocities.get(EVERY_STYLE, (1.0, 1.0, 1.0)))
        for slot in piece.slots:
            if slot == self.vocab.drum_slot:
                most = self.drum_repeats.get(piece.style, self.drum_repeats.get(EVERY_STYLE, (1.0, 1.0)))
            else:
                after, _, loud = melodic
                most = (after, 1.0)
                caps += [(slot, LOUD, loud)] if after < DYNAMIC_REPEATS else []
            repeats += [(slot, *most)] if min(most) < 1 else []
        return {"velocity_repeats": tuple(repeats), "velocity_caps": tuple(caps)}

    def _plan_rules(self, piece: Piece, plan: harmony.Plan, bars: int) -> dict[str, Any]:
        """The Rules fields that lean a new piece's melodic parts to the chords of ``plan`` over
        ``bars`` bars, its basses to their roots."""
        chords = plan.chords
        starts = np.concatenate([[0], np.cumsum(piece.bar_positions(bars))])
        basses = harmony.bass_slots({s: piece.tracks.program(s, self.vocab) for s in piece.slots})
        out: dict[str, Any] = {"time_leans": harmony.plan_leans(chords, starts, bass=False)}
        return out | ({"bass_slots": basses, "bass_leans": harmony.plan_leans(chords, starts, bass=True)} if basses else {})

    def _typical_parts(self, piece: Piece, bars: float, rules: MusicRules) -> dict[str, Any]:
        """Rules fields that hold each part of a new piece of ``bars`` bars to what its GM program's
        parts play in the training data (:attr:`program_parts`): its onsets per bar within
        :data:`~harmonixr.generation.surroundings.INFERRED_TOLERANCE`, paced through the piece, its
        chords (no bigger than its program's at 95% of their onsets) and a melodic part's pitches
        (unless the rules ask for a pitch range)."""
        paces, ranges, chords = {}, [], []
        for slot in piece.slots:
            if (typical := self.typical_part(piece, slot)) is None:
                continue
            low, high, pace, chord, _ = typical
            paces[slot] = TrackControls(density=pace)
            chords.append((slot, chord))
            if slot != self.vocab.drum_slot and rules.pitch_range == ANY_PITCH:
                ranges.append((slot, low, high))
        return {"track_onsets": onset_windows(paces, bars, INFERRED_TOLERANCE), "track_ranges": tuple(ranges),
                "track_chords": tuple(chords)}

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
                 notes: int | None = None, chords: str | None = None) -> list[Result]:
        """A new piece for ``programs`` (GM programs, -1: drums) in ``style``, ``bars`` long (or
        ``notes`` notes long, ``bars`` then being a cap). Its parts lean to a chord plan
        (:mod:`~harmonixr.generation.harmony`): ``chords`` (``"Am F C G"``, a chord a bar,
        repeated), else a progression of the key asked or of one drawn from ``seed``.

        ``controls``: keyword arguments of :func:`header_controls` (density, loudness, pitch_range;
        default: the tempo's control only). An asked density (notes per bar, all tracks) is also met:
        each track gets its share, within
        :data:`~harmonixr.generation.asked.DENSITY_TOLERANCE`, paced through the piece."""
        piece = self.new_piece(programs, style, tempo, time_signature, bars)
        values = self.header_values(tempo, controls)
        density = (controls or {}).get("density")

        # the chords its parts lean to: those given, else a progression in the key asked or one drawn from the seed
        plan = harmony.Plan(rules.key, harmony.parse_chords(chords)) if chords is not None else \
            harmony.plan(piece.style, rules.key, np.random.default_rng(seed)) if PLAN_CHORDS else None

        def sampled(count: int, seed: int) -> list[Result]:
            return self._extend(piece, piece.notes, (0, 0), bars, notes, count, sampling, seed, rules, "generate", 0,
                                values, density=None if density is None or notes is not None else float(density),
                                chords=plan)

        # heard in the key asked (drawn again until it is), and its drums with a backbeat (the same)
        keyed = sampled if rules.key is None else partial(_in_key, sampled, key=rules.key)
        kit = self.new_kit(piece) if self.vocab.drum_slot in piece.slots else None
        began = time.perf_counter()
        made = with_backbeat(keyed, n, seed, BACKBEAT_BEATS * piece.original.ticks_per_quarter) \
            if kit is not None and has_backbeat(kit.sounds) else keyed(n, seed)
        if plan is not None:
            for take in made:
                take.details["chords"] = plan.describe()
        loudness = (controls or {}).get("loudness")
        made = made if loudness is None else [replace(r, score=score_to_mean_velocity(r.score, float(loudness))) for r in made]
        return timed(made, began)

    def header_values(self, tempo: float, controls: Mapping[str, Any] | None = None) -> tuple[int, ...]:
        """The control value ids of a new piece: its tempo's, and those of ``controls``."""
        return header_controls(self.vocab, tempo=tempo, **dict(controls or {}))

    def new_piece(self, programs: list[int], style: str = "unknown", tempo: float = 120.0,
                  time_signature: tuple[int, int] = (4, 4), bars: int = 8) -> Piece:
        """The empty piece :meth:`generate` writes into."""
        return Piece.empty(self.vocab, programs, style, tempo, time_signature, bars)

    # -- helpers ---------------------------------------------------------------------------
    def slots(self, piece: Piece, region: Region) -> list[int]:
        if not region.tracks:
            return piece.slots
        slots = []
        for track in region.tracks:
            if not 0 <= track < len(piece.original.tracks):
                raise GenerationError(f"track {track + 1} does not exist (the piece has {len(piece.original.tracks)})")
            slot = piece.slot_of(track)
            if slot is None:  # an empty track: it becomes a new part
                empty = piece.original.tracks[track]
                slot = piece.add_slot(-1 if empty.is_drum else empty.program, track=track)
            slots.append(slot)
        return slots

    def sample(self, sequence: np.ndarray, n: int, sampling: SamplingConfig, seed: int, limits: Rules,
                state: NoteState, place: Placement, room: int) -> list[Sampled]:
        if self.max_len - len(sequence) < 2:
            raise GenerationError("no room left in the model's context for generation")
        grammar = NoteGrammar(self.vocab, limits)
        cfg = replace(sampling, max_notes=max(1, min(sampling.max_notes, room, limits.max_notes)))
        outs = self.sampler.generate(sequence, n, cfg, seed, grammar, state, place, trace=self.trace)
        if self.trace:
            self.calls.append({"prompt": sequence, "outs": outs, "place": place, "rules": limits})
        return outs


# A continuation holds each track that plays in the CONTEXT_BARS bars before it to what it plays
# there (as a sampled fill is held: Surroundings.held), but for the lean to its pitch classes, and
# the tracks silent there stay silent. With the lean, the demo's folk continuation (a primer of 10
# notes, 8 of them D) sang D 21 times over 8 bars, and test continuations used fewer pitches than
# the original (folk 4.3 a track against 5.8; without it 5.5) for note F1 0.216 against 0.203.
# 4-bar continuations from the middle of 104 test pieces, 3 each: python benchmarks/continuation.py
# --split test (docs/generation.md has its table).
HOLD_TRACKS = True

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


def _in_key(draw: Callable[[int, int], list[Result]], n: int, seed: int, key: Key) -> list[Result]:
    """``n`` takes of ``draw(count, seed)``, those heard in another key than ``key`` (the
    Krumhansl-Schmuckler estimate a listener's ear is modelled by) drawn again up to
    :data:`KEY_TRIES` times; a take still heard elsewhere says so (``Result.notices``)."""
    made = draw(n, seed)
    redrawn = [0] * n
    for attempt in range(1, KEY_TRIES + 1):
        off = [k for k, r in enumerate(made) if estimate_key(r.score) != key]
        if not off:
            break
        for k, take in zip(off, draw(len(off), seed + RESAMPLE_SEED * attempt)):
            redrawn[k] += 1
            if estimate_key(take.score) == key:
                made[k] = take
    for take, again in zip(made, redrawn):
        heard = estimate_key(take.score)
        take.details.update({"key": str(key), "key_redrawn": again, **({"heard_in": str(heard)} if heard != key else {})})
    return made


