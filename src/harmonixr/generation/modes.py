"""The generation modes, as library functions: infill, continue, generate, add a track.

Prompts are built exactly as the training examples were (:mod:`harmonixr.training.examples`):

- **infill** (a span of bars or beats, all tracks or some): header, then a window of bars around
  the hole with the hole's notes removed and ``Infill_Hole`` markers at its edges (with the
  ``Program_k`` list when only some tracks are rewritten), then ``Infill_Fill`` (or, for a model
  trained in the "spm" layout, the part from the hole's first bar on, then the bars before the hole,
  so the fill follows them as a continuation would). The model writes
  the hole's bars; :class:`~harmonixr.sampling.grammar.Rules` keep it to exactly those bars, their
  time signatures, the span's first and last positions and the chosen tracks, and end it with
  ``Infill_End``. The music before **and** after the hole is in the prompt.
- **continue / generate**: a plain window (header, the last bars so far) and the model writes on,
  a window at a time, until the requested bars are there.
- **add a track**: a new slot in the header, then an infill of that track alone over the span.

Every mode returns :class:`Result` s whose ``score`` is the original with the region rewritten
(:meth:`Piece.splice`), one per variation; all variations of a call are sampled in one batch.
"""

from __future__ import annotations

import copy
import time
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from symusic import Score

from harmonixr.data.events import (
    BAR,
    MARK,
    NOTE,
    TEMPO,
    Event,
    Vocab,
    parse_body,
    render,
    with_tempo,
)
from harmonixr.data.tokenize import HarmonixrTokenizer
from harmonixr.generation.piece import GenerationError, Piece, Region
from harmonixr.models.structure import Structure
from harmonixr.sampling.grammar import Grammar, GrammarConstraint, GrammarState, Rules
from harmonixr.sampling.sampler import Sampler, SamplingConfig
from harmonixr.training.checkpoint import load_checkpoint
from harmonixr.training.examples import Hole, arrange

_RANK = {"bar": 0, "tempo": 1, "note": 2, "mark": 3}  # event order at one time, as in training
FILL_SHARE = 0.5  # a fill expected to need more than this share of the context is split in parts
MAX_FILL_SHARE = 0.75  # what a fill of one bar may take at most
MIN_ROOM = 8  # tokens a prompt must leave free in the context


class RegionTooLong(GenerationError):
    """The region's own bars do not fit the model's context."""


@dataclass(frozen=True)
class MusicRules:
    """Optional musical constraints, enforced while sampling (see :class:`Rules`)."""

    pitch_range: tuple[int, int] = (0, 127)
    scale: frozenset[int] | None = None  # pitch classes (see postprocess.scale_pitch_classes)
    max_polyphony: int = 1 << 30
    max_notes_per_bar: int = 1 << 30


@dataclass
class Result:
    """One variation: the whole piece with the region rewritten, and what was made."""

    score: Score
    start_tick: int
    end_tick: int | None
    tracks: tuple[int, ...]  # original track indices written
    notes: int  # notes generated
    tokens: int  # tokens sampled
    finished: bool  # the model closed the region itself (False: cut at the token budget)
    seconds: float  # compute time of the call (shared by its variations)
    mode: str = ""
    details: dict = field(default_factory=dict)  # mode-specific figures (refine: bits per note per round)


class Generator:
    """A trained model ready to write music: load once, call the modes many times."""

    def __init__(self, checkpoint: str | Path, backend: str = "auto", device: str = "cpu") -> None:
        loaded = load_checkpoint(checkpoint, device)
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.layout = loaded.infill_layout  # how infill prompts are laid out (training/examples.py)
        self.vocab = Vocab(self.tokenizer)
        self.structure = Structure(self.vocab)
        self.sampler = Sampler(self.model, self.structure, backend)
        self.max_len = self.model.cfg.max_len
        self.recorder: Recorder | None = None  # RL: sees every sampling call (prompt, masks, tokens)

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
               seed: int = 0, rules: MusicRules = MusicRules(), mode: str = "infill") -> list[Result]:
        """Rewrite ``region`` of ``piece`` ``n`` times, with the music on both sides as context."""
        began = time.perf_counter()
        piece = piece.copy()  # empty tracks in the region get a slot in this copy only
        slots = self._slots(piece, region)
        start, end = region.start, region.end
        if end is not None and end[0] >= piece.bars:
            end = None if end[1] == 0 or end[0] > piece.bars else end
        if start[0] >= max(piece.bars, 1):
            raise GenerationError(f"the region starts at bar {start[0] + 1}, after the piece's {piece.bars} bars; use continue")
        hole = Hole(start, end, tuple(sorted(slots)) if region.tracks else ())
        last_bar = (end[0] - (end[1] == 0)) if end is not None else piece.bars - 1
        hole_bars = list(range(start[0], last_bar + 1))
        fill_budget = self._fill_budget(piece, hole, len(slots), len(hole_bars))
        try:
            if fill_budget > FILL_SHARE * self.max_len and len(hole_bars) > 1:
                raise RegionTooLong(f"the region would need about {fill_budget} tokens, more than "
                                    f"{FILL_SHARE:.0%} of the model's context of {self.max_len}")
            fill_budget = min(fill_budget, int(MAX_FILL_SHARE * self.max_len))  # one dense bar: less context
            task = len(arrange(self.vocab, [], 0, self.layout)) + 1  # the Infill tokens and the end token
            context, w0 = self._context(piece, hole, hole_bars, self.max_len - len(piece.header) - fill_budget - task)
        except RegionTooLong:
            if len(hole_bars) < 2:
                raise
            return _timed(self._infill_in_parts(piece, region, hole_bars, n, sampling, seed, rules, mode), began)
        prompt = [*piece.header, *arrange(self.vocab, context, start[0], self.layout)]
        limits = Rules(tuple(slots), max_bars=len(hole_bars), min_bars=len(hole_bars),
                       time_signatures=tuple(piece.timesig(b) for b in hole_bars), first_pos=start[1],
                       last_pos=end[1] if end is not None else 0, end_id=self.vocab.end_id, tempo=False,
                       **vars(rules))
        outs = self._sample(prompt, n, sampling, seed, w0, limits, [], self.max_len - len(prompt))
        start_tick = piece.tick(*start)
        end_tick = piece.tick(*end) if end is not None else None
        tracks = sorted({piece.track_of(s) for s in slots}) if region.tracks else list(range(len(piece.original.tracks)))
        results = []
        for tokens in outs:
            finished = bool(tokens) and tokens[-1] == self.vocab.end_id
            events = [e for e in parse_body(self.vocab, tokens, first_bar=start[0]) if e.kind == NOTE]
            notes = piece.to_notes(events)
            results.append(Result(piece.splice(notes, start_tick, end_tick, tracks), start_tick, end_tick,
                                  tuple(tracks), len(events), len(tokens), finished, 0.0, mode))
        return _timed(results, began)

    def _infill_in_parts(self, piece: Piece, region: Region, hole_bars: list[int], n: int, sampling: SamplingConfig,
                         seed: int, rules: MusicRules, mode: str) -> list[Result]:
        """A region too long for one context: its first half, then its second half with the first
        half's new notes as context (each variation in turn)."""
        mid = (hole_bars[len(hole_bars) // 2], 0)
        results = []
        for k in range(n):
            first = self.infill(piece, replace(region, end=mid), 1, sampling, seed + k, rules, mode)[0]
            rest = Piece.from_score(first.score, self.vocab, piece.style)
            second = self.infill(rest, replace(region, start=mid), 1, sampling, seed + k + 7919, rules, mode)[0]
            results.append(Result(second.score, first.start_tick, second.end_tick,
                                  tuple(sorted({*first.tracks, *second.tracks})), first.notes + second.notes,
                                  first.tokens + second.tokens, first.finished and second.finished, 0.0, mode))
        return results

    def add_track(self, piece: Piece, program: int, region: Region | None = None, name: str | None = None,
                  **kwargs: object) -> list[Result]:
        """A new part (GM ``program``) over ``region`` (default: the whole piece), under the others."""
        piece = piece.copy()
        piece.add_slot(program, name)
        track = len(piece.original.tracks) - 1
        region = region or Region((0, 0), None)
        return self.infill(piece, replace(region, tracks=(track,)), mode="add-track", **kwargs)

    # -- continue / generate ---------------------------------------------------------------
    def continue_(self, piece: Piece, bars: int = 8, after_bar: int | None = None, n: int = 1,
                  sampling: SamplingConfig = SamplingConfig(), seed: int = 0, rules: MusicRules = MusicRules(),
                  mode: str = "continue", after_notes: int | None = None, notes: int | None = None) -> list[Result]:
        """Continue ``piece`` from the end of bar ``after_bar`` (default: the end), or right after
        its first ``after_notes`` notes; write ``bars`` bars, or ``notes`` notes (then ``bars`` is a
        cap). What followed the primer in the original is dropped."""
        if after_notes is not None:
            onsets = sorted(e.time for e in piece.events if e.kind == NOTE)
            if not 0 < after_notes <= len(onsets):
                raise GenerationError(f"the piece has {len(onsets)} notes; the primer must hold 1 to {len(onsets)}")
            cut = onsets[after_notes - 1]  # every note starting up to the N-th note's onset is the primer
            primer = [e for e in piece.events if e.time <= cut]
            start_tick = piece.tick(*cut) + 1
            return self._extend(piece, primer, cut[0], cut[0] + bars, notes, n, sampling, seed, rules, mode, start_tick)
        after = piece.bars if after_bar is None else min(after_bar, piece.bars)
        primer = [e for e in piece.events if e.bar < after]
        return self._extend(piece, primer, after, after + bars, notes, n, sampling, seed, rules, mode, piece.tick(after))

    def _extend(self, piece: Piece, primer: list[Event], first_bar: int, total: int, notes: int | None, n: int,
                sampling: SamplingConfig, seed: int, rules: MusicRules, mode: str, start_tick: int) -> list[Result]:
        """Write on after the events ``primer`` up to bar ``total`` (or ``notes`` new notes); the
        result is the original up to ``start_tick`` and the new notes from there."""
        began = time.perf_counter()
        if total <= first_bar or (notes is not None and notes < 1):
            raise GenerationError("ask for at least one bar (or one note)")
        timesig = piece.timesig(max((e.bar for e in primer), default=0))  # new bars keep the primer's meter
        rows = [_Row(sorted(primer, key=_order), len(primer)) for _ in range(n)]
        window = 0
        while active := [row for row in rows if not row.finished]:
            batch = [active] if window == 0 else [[row] for row in active]  # the first window: one batch
            for k, group in enumerate(batch):
                w0, context = self._left_window(group[0].events, int(self.max_len * FILL_SHARE) - len(piece.header))
                prompt = [*piece.header, *render(self.vocab, context)]
                if window > 0 and self.max_len - len(prompt) < MIN_ROOM:
                    for row in group:  # a bar it wrote fills the context alone: no window can follow it
                        row.finished = True
                    continue
                state = GrammarState()
                for tok in prompt[len(piece.header):]:
                    state.step(self.vocab, tok)
                left = None if notes is None else notes - group[0].made
                limits = Rules(tuple(self._all_slots(piece)), max_bars=total - w0,
                               min_bars=total - w0 if notes is None else 0,
                               time_signatures=(timesig,) * (total - w0),
                               max_notes=state.notes + left if left is not None else Rules.max_notes, **vars(rules))
                outs = self._sample(prompt, len(group), sampling, seed + 7919 * window + k, w0, limits, [state],
                                    self.max_len - len(prompt))
                for row, gen in zip(group, outs):
                    row.extend(self.vocab, context, w0, gen, total, notes)
            window += 1
        results = []
        for row in rows:
            new = [e for e in row.events[row.given:] if e.kind == NOTE]
            made = {track: [x for x in found if x.time >= start_tick] for track, found in piece.to_notes(new).items()}
            score = piece.splice(made, start_tick, None, list(range(len(piece.original.tracks))))
            _drop_meta_after(score, start_tick)
            results.append(Result(score, start_tick, None, tuple(range(len(piece.original.tracks))),
                                  sum(map(len, made.values())), row.tokens, row.done, 0.0, mode))
        return _timed(results, began)

    def generate(self, programs: list[int], style: str = "unknown", bars: int = 8, tempo: float = 120.0,
                 time_signature: tuple[int, int] = (4, 4), controls: Sequence[str] | None = None, n: int = 1,
                 sampling: SamplingConfig = SamplingConfig(), seed: int = 0, rules: MusicRules = MusicRules(),
                 notes: int | None = None) -> list[Result]:
        """A new piece for ``programs`` (GM programs, -1: drums) in ``style``, ``bars`` long (or
        ``notes`` notes long, ``bars`` then being a cap).

        ``controls``: header control tokens (:func:`control_tokens`; default: the tempo's)."""
        piece = self.new_piece(programs, style, tempo, time_signature, controls)
        tempo_id = min((i for t, i in self.tokenizer.vocab.items() if t.startswith("Tempo_")),
                       key=lambda i: abs(float(self.tokenizer.id_to_token[i].split("_")[1]) - tempo))
        start = [Event(BAR, 0, 0, (self.vocab.bar_id, piece.bar_timesig[0])), Event(TEMPO, 0, 0, (tempo_id,))]
        return self._extend(piece, start, 0, bars, notes, n, sampling, seed, rules, "generate", 0)

    def new_piece(self, programs: list[int], style: str = "unknown", tempo: float = 120.0,
                  time_signature: tuple[int, int] = (4, 4), controls: Sequence[str] | None = None) -> Piece:
        """The empty piece :meth:`generate` writes into (its header is the model's prompt)."""
        controls = control_tokens(self.tokenizer, tempo) if controls is None else controls
        return Piece.empty(self.vocab, programs, style, tempo, time_signature, controls)

    # -- helpers ---------------------------------------------------------------------------
    def _all_slots(self, piece: Piece) -> list[int]:
        return [k if p >= 0 else -1 for k, p in enumerate(piece.programs)]

    def _slots(self, piece: Piece, region: Region) -> list[int]:
        if not region.tracks:
            return self._all_slots(piece)
        slots = []
        for track in region.tracks:
            if not 0 <= track < len(piece.original.tracks):
                raise GenerationError(f"track {track + 1} does not exist (the piece has {len(piece.original.tracks)})")
            slot = piece.slot_of(track)
            if slot is None:  # an empty track: it becomes a new part
                slot = piece.add_slot(piece.original.tracks[track].program, track=track)
            slots.append(slot)
        return slots

    def _fill_budget(self, piece: Piece, hole: Hole, tracks: int, bars: int) -> int:
        """Tokens to leave for the fill: 1.5x what the hole held, or what its tracks would hold at
        the density of the other tracks over the same span (a new or empty part)."""
        span = Hole(hole.start, hole.end)
        held = sum(len(e.tokens) + 1 for e in piece.events if hole.contains(e))
        around = [e for e in piece.events if span.contains(e)]
        playing = len({e.track for e in around}) or 1
        expected = max(held, sum(len(e.tokens) + 1 for e in around) / playing * tracks if hole.tracks else held)
        return int(max(1.5 * expected + 3 * bars + 32, 64))

    def _context(self, piece: Piece, hole: Hole, hole_bars: list[int], budget: int) -> tuple[list[Event], int]:
        """The widest window of whole bars around the hole whose context fits ``budget`` tokens."""
        v = self.vocab
        marks = [Event(MARK, *hole.start, (v.hole_id, *(v.program_id[t] for t in hole.tracks)))]
        if hole.end is not None:
            marks.append(Event(MARK, *hole.end, (v.hole_id,)))

        def build(w0: int, w1: int, after: bool = True) -> list[Event]:
            """Bars w0..w1-1 without the hole's notes; ``after=False``: nothing after the hole's
            end but the bar line its end marker sits on (training trims contexts the same way)."""
            inside = [e for e in piece.events if w0 <= e.bar < w1 and not hole.contains(e)]
            if not after and hole.end is not None:
                inside = [e for e in inside if e.time < hole.end or (e.kind == BAR and e.bar == hole.end[0])]
            inside = with_tempo(inside, piece.tempo_at(w0)) if inside and inside[0].kind == BAR else inside
            return sorted(inside + marks, key=lambda e: (e.bar, e.pos, _RANK[e.kind]))

        w0, w1 = hole_bars[0], max(hole_bars[-1] + 1 + (hole.end is not None and hole.end[1] == 0), hole_bars[-1] + 1)
        w1 = min(w1, piece.bars) if piece.bars else w1
        best = build(w0, w1)
        if len(render(v, best)) > budget:
            best = build(w0, w1, after=False)
            if len(render(v, best)) <= budget:
                return best, w0
        if len(render(v, best)) > budget:
            raise RegionTooLong(f"the region's bars hold more than the model's context of {self.max_len} tokens; "
                                "choose a shorter span")
        grow_left = True
        while w0 > 0 or w1 < piece.bars:
            trial = (w0 - 1, w1) if (grow_left and w0 > 0) or w1 >= piece.bars else (w0, w1 + 1)
            candidate = build(*trial)
            if len(render(v, candidate)) > budget:
                break
            (w0, w1), best, grow_left = trial, candidate, not grow_left
        return best, w0

    def _left_window(self, events: list[Event], budget: int) -> tuple[int, list[Event]]:
        """The last whole bars of ``events`` that fit ``budget`` tokens (with the tempo in force)."""
        if not events:
            return 0, []
        by_bar: dict[int, list[Event]] = {}
        for e in events:
            by_bar.setdefault(e.bar, []).append(e)
        tempos = [e for e in events if e.kind == TEMPO]
        chosen: list[Event] = []
        rest: list[Event] = []  # the bars after the one tried, and their length (bars render on their own)
        rest_length = 0
        w0 = max(by_bar) + 1
        for bar in sorted(by_bar, reverse=True):
            before = [e for e in tempos if e.time <= (bar, 0)]
            head = with_tempo(by_bar[bar], before[-1].tokens[0] if before else None)
            if len(render(self.vocab, head)) + rest_length > budget and chosen:
                break
            chosen, w0 = head + rest, bar
            rest = by_bar[bar] + rest
            rest_length += len(render(self.vocab, by_bar[bar]))
        return w0, chosen

    def _sample(self, prompt: list[int], n: int, sampling: SamplingConfig, seed: int, bar0: int, limits: Rules,
                states: list[GrammarState], room: int) -> list[list[int]]:
        if room < MIN_ROOM:
            raise GenerationError("no room left in the model's context for generation")
        grammar = Grammar(self.vocab, limits)
        start = states[0] if states else GrammarState()
        constraint = GrammarConstraint(grammar, n, [copy.deepcopy(start) for _ in range(n)])
        stop = [grammar.end_id]
        if self.recorder is not None:
            constraint = self.recorder.watch(constraint)
        outs = self.sampler.generate(prompt, n, replace(sampling, max_tokens=min(sampling.max_tokens, room)),
                                     seed, bar0, stop, constraint)
        if self.recorder is not None:
            self.recorder.sampled(prompt, bar0, outs)
        return outs


class Recorder(Protocol):
    """Watches the sampling calls of a :class:`Generator` (reinforcement learning needs the prompt,
    the tokens and the grammar's masks to score the samples under the policy)."""

    def watch(self, constraint: GrammarConstraint) -> GrammarConstraint: ...

    def sampled(self, prompt: list[int], bar0: int, outs: list[list[int]]) -> None: ...


class PromptLog:
    """A :class:`Recorder` that keeps every prompt a :class:`Generator` sampled after, with the piece
    bar of its first bar: what the model was asked, as it read it."""

    def __init__(self) -> None:
        self.prompts: list[tuple[list[int], int]] = []

    def watch(self, constraint: GrammarConstraint) -> GrammarConstraint:
        return constraint

    def sampled(self, prompt: list[int], bar0: int, outs: list[list[int]]) -> None:
        self.prompts.append((list(prompt), bar0))


def control_tokens(tokenizer: HarmonixrTokenizer, tempo: float | None = None, density: float | None = None,
                   pitch_range: tuple[int, int] | None = None, loudness: float | None = None) -> list[str]:
    """Header control tokens for a tempo (bpm), a density (notes per bar), a pitch range and a
    loudness (mean velocity); the ones left out are left to the model (it learned without them too)."""
    spec = tokenizer.spec
    tokens = []
    if tempo is not None:
        tokens.append(f"CtlTempo_{bisect_right(spec.tempo_edges, tempo)}")
    if density is not None:
        tokens.append(f"CtlDensity_{bisect_right(spec.density_edges, density)}")
    if pitch_range is not None:
        tokens += [f"CtlLow_{pitch_range[0] // 12}", f"CtlHigh_{pitch_range[1] // 12}"]
    if loudness is not None:
        tokens.append(f"CtlLoud_{bisect_right(spec.loudness_edges, loudness)}")
    return tokens


def _order(event: Event) -> tuple[int, int, int]:
    return event.bar, event.pos, _RANK[event.kind]


@dataclass
class _Row:
    """One variation of a continuation, grown a window at a time."""

    events: list[Event]
    given: int  # events[:given] are the primer
    tokens: int = 0
    made: int = 0  # new notes so far
    done: bool = False  # the model ended the piece (EOS) or wrote every bar or note asked for
    finished: bool = False

    def extend(self, vocab: Vocab, context: list[Event], w0: int, gen: list[int], total: int, notes: int | None) -> None:
        """Add the events of ``gen`` (sampled after ``context``); an unfinished last bar is dropped."""
        self.tokens += len(gen)
        known = len(parse_body(vocab, render(vocab, context), first_bar=w0))
        body = parse_body(vocab, [*render(vocab, context), *gen], first_bar=w0)
        new = body[known:]
        ended = bool(gen) and gen[-1] == vocab.tokenizer.eos_id
        bars = max((e.bar for e in body if e.kind == BAR), default=-1) + 1
        if not ended:  # cut by the window: the last bar may be incomplete, it is written again
            new = [e for e in new if e.bar < bars - 1]
            bars -= 1
        self.events = [*self.events, *new]
        self.made += sum(1 for e in new if e.kind == NOTE)
        self.done = ended or bars >= total or (notes is not None and self.made >= notes)
        self.finished = self.done or not new


def _drop_meta_after(score: Score, tick: int) -> None:
    """Remove tempo and time-signature changes after ``tick`` (they belonged to the dropped music)."""
    for events in (score.tempos, score.time_signatures):
        kept = [e for e in events if e.time <= tick]
        events.clear()
        events.extend(kept)


def _timed(results: list[Result], began: float) -> list[Result]:
    seconds = time.perf_counter() - began
    for result in results:
        result.seconds = seconds
    return results
