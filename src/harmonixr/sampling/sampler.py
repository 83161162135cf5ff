"""The sampler: N variations of one prompt in one batch, reproducible from a seed, constrained.

The prompt runs once; its keys and values are copied to the N rows of a preallocated cache
(:mod:`harmonixr.sampling.decoder`). Each step writes one note per row, field by field
(:data:`~harmonixr.tokens.vocab.FIELDS`): each field's logits come from the heads, conditioned on
the fields already drawn, the grammar (:class:`~harmonixr.sampling.grammar.NoteGrammar`) masks
them, then temperature, top-k, top-p and min-p filter them, so a filter never keeps only forbidden
values and every value the grammar forbids has probability zero. The row's new note then feeds the
backbone for the next step, with the features the prompt format gives it
(:func:`harmonixr.tokens.prompt.note_rows`, the code that built the training examples).

The random numbers come from an explicit ``torch.Generator`` seeded by the caller: one uniform per
row, step and field, drawn up front and turned into a value by the inverse CDF
(:func:`~harmonixr.sampling.kernels.draw`), so the same seed gives the same notes on every decoder
backend that computes the same logits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from harmonixr.errors import HarmonixrError
from harmonixr.models.transformer import NoteTransformer
from harmonixr.sampling.decoder import NumbaDecoder, TorchDecoder, make_decoder
from harmonixr.sampling.grammar import DBAR, PITCH, POS, TRACK, TYPE, VEL, NoteGrammar
from harmonixr.sampling.kernels import draw_masked, filter_rows, merge_end_rows
from harmonixr.sampling.rules import NoteState, cap_lean
from harmonixr.tokens.echo import EchoIndex
from harmonixr.tokens.notes import NOTE_WIDTH
from harmonixr.tokens.prompt import Bars, Header, Hole, bar_feature, row_of_fields
from harmonixr.tokens.vocab import COL, ECHO_COLUMNS, FIELDS, NOTE

K = len(FIELDS)


class SamplingTimeout(HarmonixrError, TimeoutError):
    """Sampling went past the caller's deadline (:attr:`Sampler.deadline`)."""


class SamplingError(HarmonixrError):
    """A sampling setting out of its range (the message names it)."""


@dataclass(frozen=True)
class SamplingConfig:
    """How values are drawn. The defaults are the product's, everywhere (the CLI's flags, the
    studio's sliders, the Python API, the evaluation); :meth:`unfiltered` is the model's own
    distribution, which RL and DPO learn from."""

    temperature: float = 1.0
    top_k: int = 0  # keep the k most likely values of each field (0: all)
    top_p: float = 0.95  # keep the smallest set of each field's values with this much probability (1: all)
    min_p: float = 0.0  # drop values less likely than min_p x the most likely one
    max_notes: int = 4096  # per call (the model's context caps it too)

    def __post_init__(self) -> None:
        checks = [("temperature", self.temperature > 0, "must be > 0"),
                  ("top_k", self.top_k >= 0, "must be >= 0 (0: off)"),
                  ("top_p", 0 < self.top_p <= 1, "must be in (0, 1]"),
                  ("min_p", 0 <= self.min_p < 1, "must be in [0, 1)"),
                  ("max_notes", self.max_notes >= 1, "must be >= 1")]
        for name, ok, rule in checks:
            if not ok:
                raise SamplingError(f"{name.replace('_', '-')} {getattr(self, name)!r}: {rule}")

    @classmethod
    def unfiltered(cls, temperature: float = 1.0, max_notes: int = 4096) -> SamplingConfig:
        """Every value at its probability under ``temperature``: no top-k, top-p or min-p."""
        return cls(temperature, 0, 1.0, 0.0, max_notes)

    @property
    def filtered(self) -> bool:
        return bool(self.top_k) or self.top_p < 1.0 or self.min_p > 0.0


@dataclass(frozen=True)
class Placement:
    """What the sampler needs to give a new note its features: the window's first bar, the bars'
    meters and tempos, the header's programs, the prompt segment and the hole (if any)."""

    bar0: int
    bars: Bars
    header: Header
    segment: int
    hole: Hole | None = None

    def bar_feature(self, bar: int) -> int:
        """The ``bar`` feature of piece bar ``bar`` in this window."""
        return int(bar_feature(int(bar), self.bar0))  # an int: no numpy call


@dataclass
class Sampled:
    """One row's output: its notes (absolute, 0-based note columns) and whether it ended itself."""

    notes: np.ndarray  # (M, 7)
    ended: bool
    steps: int
    trace: list[dict] = field(default_factory=list)  # per step, when traced: the masks and values drawn


def filter_logits(logits: np.ndarray, cfg: SamplingConfig) -> np.ndarray:
    """Temperature, then top-k, top-p and min-p on (B, V) logits; removed entries become -inf
    (:func:`~harmonixr.sampling.kernels.filter_rows`)."""
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    out = np.empty_like(logits)
    filter_rows(logits, float(cfg.temperature), int(cfg.top_k), float(cfg.top_p), float(cfg.min_p), out)
    return out


def merge_end(type_logits: np.ndarray, dbar_logits: np.ndarray, allowed: np.ndarray, past: np.ndarray,
              end_type: int) -> np.ndarray:
    """The type logits with the last-bar rule applied (rows, types): a note's probability keeps the
    share of its bars that are allowed, and the share past the request's last bar goes to the end
    (:func:`~harmonixr.sampling.kernels.merge_end_rows`)."""
    out = np.empty(type_logits.shape, dtype=np.float64)
    merge_end_rows(np.ascontiguousarray(type_logits, dtype=np.float64), np.ascontiguousarray(dbar_logits, dtype=np.float64),
                   np.ascontiguousarray(allowed, dtype=bool), np.ascontiguousarray(past, dtype=bool), NOTE, end_type, out)
    return out


class Sampler:
    """Batched, constrained note-by-note sampling from a :class:`NoteTransformer`."""

    def __init__(self, model: NoteTransformer, backend: str = "auto") -> None:
        self.model = model.eval()
        self.backend = backend
        self.decoder: TorchDecoder | NumbaDecoder | None = None  # made on first use, kept
        self.deadline: float | None = None  # time.monotonic() past which generate raises SamplingTimeout

    def weights_changed(self) -> None:
        """Drop the decoder (it holds a packed copy of the weights); the next call packs the new ones."""
        self.decoder = None

    def generate(self, prompt: np.ndarray, n: int, cfg: SamplingConfig, seed: int, grammar: NoteGrammar,
                 state: NoteState, place: Placement, trace: bool = False) -> list[Sampled]:
        """``n`` continuations of ``prompt`` (T, R rows), each up to ``cfg.max_notes`` notes or
        until it draws the grammar's end type; the same seed gives the same notes. Raises
        :class:`SamplingTimeout` once :attr:`deadline` has passed."""
        max_len = self.model.cfg.max_len
        steps = min(cfg.max_notes + 1, max_len - len(prompt))
        if steps < 1:
            raise HarmonixrError(f"a prompt of {len(prompt)} positions leaves no room in a context of {max_len}")
        if self.decoder is None:
            self.decoder = make_decoder(self.model, self.backend)
        heads, memory = self.decoder.heads, self.decoder.memory
        uniforms = torch.rand((steps, n, K), generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
        h = self.decoder.start(prompt, n, max_len)  # (n, C)
        states = [state.copy() for _ in range(n)]
        heard = EchoIndex(prompt, grammar.vocab, matched=heads.reads_matched, sounding=heads.reads_sounding)
        echo_index = [heard.copy() for _ in range(n)]  # each row's notes so far, for their echoes
        echoes = np.zeros((n, len(ECHO_COLUMNS)), dtype=np.int64)
        notes = [np.zeros((0, NOTE_WIDTH), dtype=np.int64) for _ in range(n)]
        made: list[list[np.ndarray]] = [[] for _ in range(n)]
        traces: list[list[dict]] = [[] for _ in range(n)]
        done = np.zeros(n, dtype=bool)
        ended = np.zeros(n, dtype=bool)
        note_embedding = heads.lookup(COL["type"], np.full(n, NOTE))  # (n, C)
        choice = np.zeros(n, dtype=np.int64)
        last_rows = np.repeat(prompt[-1:], n, axis=0)
        programs = place.header.program_of(grammar.vocab)  # (track slots + 1,)
        taken = 0
        for step in range(steps):
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise SamplingTimeout(f"sampling stopped at the time limit after {step} notes")
            taken = step + 1
            values = np.zeros((n, K), dtype=np.int64)
            leans: list[np.ndarray | None] = [None] * n  # the nats added to each row's pitch logits
            accents: list[np.ndarray | None] = [None] * n  # and to its velocity logits
            cond = np.zeros_like(h)
            masks: list[list[np.ndarray | None]] = [[None] * K for _ in range(n)]
            # type, with the last-bar rule folded in from the bars the note could go to
            opened = [grammar.opening(s) for s in states]
            type_masks, dbar_masks = _stack([t for t, _ in opened]), _stack([b for _, b in opened])
            past = _stack([grammar.end_mass(s) for s in states])
            type_logits = heads.logits(TYPE, h, cond)
            dbar_logits = heads.logits(DBAR, h, note_embedding)
            merged = merge_end(type_logits, dbar_logits, dbar_masks, past, grammar.end_type)
            drawn_logp = np.zeros((n, K))  # traced: the log-probability of each drawn value (unfiltered)
            self._draw(merged, type_masks, cfg, uniforms[step, :, TYPE], choice)
            values[:, TYPE] = choice
            if trace:
                drawn_logp[:, TYPE] = _drawn_logp(np.where(type_masks, merged, -np.inf), choice, cfg.temperature)
            writing = (choice == NOTE) & ~done
            writers = np.flatnonzero(writing).tolist()  # the rows writing a note this step
            for row in range(n):
                masks[row][TYPE], masks[row][DBAR] = type_masks[row], dbar_masks[row]
            cond = cond + heads.lookup(COL["type"], values[:, TYPE])
            for k in range(1, K):
                if not writers:
                    break
                if k != DBAR:
                    for row in writers:
                        masks[row][k] = grammar.mask(k, states[row], list(values[row, :k]))
                field_masks = _stack([mask if writing[row] and (mask := masks[row][k]) is not None
                                      else _first_valid(heads.sizes[k]) for row in range(n)])
                if k != DBAR and (field_masks.sum(1) == 1).all():  # one value each: drawn without the heads
                    values[:, k] = np.where(writing, field_masks.argmax(1), 0)  # (traced log-probability: 0)
                else:
                    logits = dbar_logits if k == DBAR else heads.logits(k, h, cond)
                    if k == PITCH and grammar.leans:
                        leans = [grammar.lean(values[row, TRACK], states[row].bar + int(values[row, DBAR]) - 1,
                                              int(values[row, POS]) - 1, states[row]) if writing[row] else None
                                 for row in range(n)]
                        logits = logits + np.stack([lean if lean is not None else np.zeros(logits.shape[1])
                                                    for lean in leans])
                    if k == VEL and (grammar.accents or grammar.velocity_caps):
                        accents = [grammar.velocity_lean(values[row, TRACK], states[row].bar + int(values[row, DBAR]) - 1,
                                                         int(values[row, POS]) - 1, values[row, PITCH])
                                   if writing[row] else None for row in range(n)]
                        for row in writers:  # a part held off repeating its last velocity (its pitch's) and off loud ones
                            for cap in grammar.caps(values[row, TRACK], values[row, PITCH], states[row]):
                                accents[row] = cap_lean(logits[row], field_masks[row], accents[row], *cap, cfg.temperature)
                        logits = logits + np.stack([lean if lean is not None else np.zeros(logits.shape[1])
                                                    for lean in accents])
                    self._draw(logits, field_masks, cfg, uniforms[step, :, k], choice)
                    values[:, k] = np.where(writing, choice, 0)
                    if trace:
                        masked = np.where(field_masks, logits, -np.inf)
                        drawn_logp[:, k] = np.where(writing, _drawn_logp(masked, choice, cfg.temperature), 0.0)
                cond = cond + heads.lookup(heads.columns[k], values[:, k])
                if k == TRACK:
                    cond = self._track_known(cond, values, writing, writers, states, echo_index, echoes, place, programs)
                    if memory is not None:  # the heads' attention, told the bar, position and track
                        cond = cond + memory.context(h, cond)
            for row in range(n):
                if done[row]:
                    continue
                if trace:
                    traces[row].append({"values": values[row].copy(), "masks": masks[row], "past": past[row].copy(),
                                        "logp": drawn_logp[row].copy(), "lean": leans[row],
                                        "accent": accents[row]})
                if not writing[row]:
                    done[row], ended[row] = True, values[row, TYPE] == grammar.end_type
                    continue
                bar, pos, track, pitch = grammar.advance(states[row], list(values[row]))
                made[row].append(np.array([bar, pos, values[row, 7] - grammar.vocab.micro_zero, track, pitch,
                                           values[row, 5] - 1, values[row, 6]], dtype=np.int64))
            if done.all() or step == steps - 1:
                break
            for row in np.flatnonzero(~done).tolist():
                note = made[row][-1]
                last_rows[row] = row_of_fields(grammar.vocab, values[row], int(note[0]), int(note[1]), place.bar0,
                                               place.bars, place.header, place.segment, place.hole, echoes[row])
                echo_index[row].add(last_rows[row])
            h = self.decoder.step(last_rows)
        for row in range(n):
            if made[row]:
                notes[row] = np.stack(made[row])
        return [Sampled(notes[row], bool(ended[row]), taken, traces[row]) for row in range(n)]

    def _track_known(self, cond: np.ndarray, values: np.ndarray, writing: np.ndarray, writers: list[int], states: list[NoteState],
                     echo_index: list[EchoIndex], echoes: np.ndarray, place: Placement, programs: np.ndarray) -> np.ndarray:
        """``cond`` once the rows' tracks are drawn: from here on the heads know each track's
        instrument, and what it played around here (its echoes, written into ``echoes``)."""
        assert self.decoder is not None
        heads = self.decoder.heads
        cond = cond + heads.lookup(COL["program"], programs[np.maximum(values[:, TRACK] - 1, 0)])
        for row in writers:
            bar = states[row].bar + int(values[row, DBAR]) - 1
            echoes[row] = echo_index[row].echoes(int(values[row, TRACK]), place.bar_feature(bar), int(values[row, POS]))
        if heads.echo_columns:
            columns, lags = zip(*heads.echo_columns)
            cond = cond + heads.lookup_sum(list(columns), np.where(writing[:, None], echoes[:, list(lags)], 0))
        return cond

    @staticmethod
    def _draw(logits: np.ndarray, mask: np.ndarray, cfg: SamplingConfig, uniforms: np.ndarray, out: np.ndarray) -> None:
        """out (rows,) = values drawn from the logits (rows, V) where ``mask`` is set, filtered as ``cfg`` says
        (the filters work on tempered logits)."""
        draw_masked(np.ascontiguousarray(logits), np.ascontiguousarray(mask), float(cfg.temperature), int(cfg.top_k),
                    float(cfg.top_p), float(cfg.min_p), bool(cfg.filtered), uniforms, out)


def _drawn_logp(logits: np.ndarray, choice: np.ndarray, temperature: float) -> np.ndarray:
    """(rows,) log-probability of ``choice`` under softmax(logits / temperature), -inf entries excluded."""
    z = logits.astype(np.float64) / temperature
    top = z.max(-1, keepdims=True)
    norm = np.log(np.exp(z - top).sum(-1)) + top[:, 0]
    return z[np.arange(len(choice)), choice] - norm


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    """np.stack, without its checks for the one row of batch 1."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


def _first_valid(size: int) -> np.ndarray:
    """A mask for rows that do not write this field (finished rows): any one value, never used."""
    mask = np.zeros(size, dtype=bool)
    mask[1] = True
    return mask
