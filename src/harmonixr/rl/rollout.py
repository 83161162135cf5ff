"""Rollouts for reinforcement learning: prompts, samples with their rewards, and their probability
under a model, exactly as they were drawn.

A rollout is drawn by the ordinary generation modes (:class:`~harmonixr.generation.modes.Generator`,
so RL trains on the prompts users send) with the generator's ``trace`` on: each sampling call keeps
its prompt and, per row and step, the values drawn, the grammar's mask of every field and the bars
past the request (whose probability the last-bar rule gave to the end). :func:`score_rollouts` then
recomputes, with gradients, the log-probability of every drawn field under that same masked,
merged, tempered distribution, and the KL to the reference model and the entropy, field by field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from symusic import Score

from harmonixr.data.corpus import Corpus
from harmonixr.errors import HarmonixrError
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Piece, Region, split_pieces
from harmonixr.generation.requests import Result
from harmonixr.models.checkpoint import load_checkpoint
from harmonixr.models.transformer import NoteTransformer
from harmonixr.rl.config import PromptConfig
from harmonixr.rl.rewards import RewardContext, RewardWeights, reward_terms
from harmonixr.runtime import set_threads
from harmonixr.sampling.grammar import PITCH as PITCH_FIELD
from harmonixr.sampling.grammar import VEL as VEL_FIELD
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.tokens.echo import add_echoes
from harmonixr.tokens.prompt import row_of_fields
from harmonixr.tokens.vocab import COL, FIELDS, MATCHED_COLUMN, NOTE, SOUNDING_COLUMNS

MASKED = -1e9  # logit of a forbidden token: exp() is exactly 0, and no inf * 0 in the gradients


@dataclass(frozen=True)
class Prompt:
    """One request: a piece from nothing (``piece`` None) or a hole of whole bars in ``piece``."""

    style: str
    programs: tuple[int, ...] = ()
    tempo: float = 120.0
    time_signature: tuple[int, int] = (4, 4)
    bars: int = 4
    piece: Piece | None = None
    region: Region | None = None

    @property
    def kind(self) -> str:
        return "generate" if self.piece is None else "infill"

    def run(self, gen: Generator, n: int, sampling: SamplingConfig, seed: int) -> list[Result]:
        if self.piece is None:
            return gen.generate(list(self.programs), self.style, self.bars, self.tempo, self.time_signature,
                                n=n, sampling=sampling, seed=seed)
        assert self.region is not None, "an infill prompt has its region"
        return gen.infill(self.piece, self.region, n=n, sampling=sampling, seed=seed, source="sampled")  # RL learns from draws


def make_prompts(corpus: Corpus, gen: Generator, cfg: PromptConfig, split: str, count: int,
                 rng: np.random.Generator) -> list[Prompt]:
    """``count`` prompts from real pieces of ``split`` in ``cfg.styles``, styles taken in turn: an
    infill hole of 1..``max_hole_bars`` bars inside a piece, or a new piece with its instruments,
    meter and tempo."""
    per_style = max(2, count // max(len(cfg.styles), 1) + 1)
    pieces = [(p, s) for p, s, _ in split_pieces(corpus, split, 4 * per_style, gen.vocab, rng)
              if s in cfg.styles and p.bars >= 2 * cfg.max_hole_bars + 2]
    by_style: dict[str, list[Piece]] = {}
    for piece, style in pieces:
        by_style.setdefault(style, []).append(piece)
    if not by_style:
        raise HarmonixrError(f"no {split!r} pieces of the styles {list(cfg.styles)} in {[str(s.folder) for s in corpus.shards]}")
    styles = sorted(by_style)
    prompts = []
    for k in range(count):
        style = styles[k % len(styles)]
        piece = by_style[style][int(rng.integers(len(by_style[style])))]
        if rng.random() < cfg.infill_share:
            size = int(rng.integers(1, cfg.max_hole_bars + 1))
            first = int(rng.integers(1, piece.bars - size))
            prompts.append(Prompt(style, piece=piece, region=Region.parse(f"{first + 1}-{first + size}", gen.vocab.grid)))
        else:
            programs = tuple(piece.tracks.program(slot, gen.vocab) for slot in piece.slots)
            prompts.append(Prompt(style, programs, float(piece.timeline.qpm[0]), (*piece.timeline.meters[0],),
                                  cfg.generate_bars))
    return prompts


@dataclass
class Segment:
    """One sampling call's share of a rollout: the rows the model read and what it drew, with the
    masks of every field at every step."""

    rows: np.ndarray  # (T, R): the prompt, then the sampled notes' rows, then the end row if drawn
    prompt_len: int
    values: np.ndarray  # (L, K) stored values drawn per step (0 for fields an end row does not have)
    masks: list[list[np.ndarray | None]]  # per step, per field: the allowed values (None: not drawn)
    past: np.ndarray  # (L, dbar values) the bars past the request at each step
    end_type: int
    logps: list[np.ndarray] = field(default_factory=list)  # per step: the sampler's log-probability of each drawn field
    leans: list[np.ndarray | None] = field(default_factory=list)  # per step: the nats added to the pitch logits (None: none)
    accents: list[np.ndarray | None] = field(default_factory=list)  # per step: the nats added to the velocity logits


@dataclass
class Rollout:
    """One sample of one prompt: its segments (one per sampling call: a region written in parts
    has several), the result and its reward terms."""

    prompt_index: int
    segments: list[Segment]
    result: Result
    terms: dict[str, float] = field(default_factory=dict)

    @property
    def reward(self) -> float:
        return self.terms["total"]

    @property
    def sampled(self) -> tuple[int, ...]:
        """Every drawn value, in order (two samples with the same are the same music)."""
        return tuple(int(v) for seg in self.segments for v in seg.values.reshape(-1))


def segments_of(gen: Generator, calls: list[dict], n: int) -> list[list[Segment]] | None:
    """Per variation, its segments: every call drew all ``n`` rows, or each drew one row and the
    variations came in turn (a region written in parts). None otherwise (a piece written on
    window by window, the rows that needed more alone)."""
    if calls and all(len(c["outs"]) == n for c in calls):
        pairs = [[(c, row) for c in calls] for row in range(n)]
    elif calls and all(len(c["outs"]) == 1 for c in calls) and len(calls) % n == 0:
        per = len(calls) // n
        pairs = [[(c, 0) for c in calls[row * per : (row + 1) * per]] for row in range(n)]
    else:
        return None
    return [[segment(gen, c, r) for c, r in row] for row in pairs]


def segment(gen: Generator, call: dict, row: int) -> Segment:
    """The :class:`Segment` of row ``row`` of a traced sampling call."""
    out, place = call["outs"][row], call["place"]
    steps = out.trace
    rows = [call["prompt"]]
    for step, note in zip(steps, out.notes):
        rows.append(row_of_fields(gen.vocab, step["values"], int(note[0]), int(note[1]), place.bar0, place.bars,
                                  place.header, place.segment, place.hole)[None])
    if out.ended:  # the end row: its type only
        end = np.zeros((1, call["prompt"].shape[1]), dtype=np.int64)
        end[0, COL["type"]] = call["rules"].end_type
        rows.append(end)
    values = np.stack([s["values"] for s in steps]) if steps else np.zeros((0, len(FIELDS)), dtype=np.int64)
    columns = gen.model.cfg.columns  # the echoes as the sampler's EchoIndex worked them out
    heard = add_echoes(np.concatenate(rows), gen.vocab, MATCHED_COLUMN in columns, SOUNDING_COLUMNS[0] in columns)
    return Segment(heard, len(call["prompt"]), values, [s["masks"] for s in steps],
                   np.stack([s["past"] for s in steps]) if steps else np.zeros((0, 1), bool), call["rules"].end_type,
                   [s["logp"] for s in steps], [s.get("lean") for s in steps], [s.get("accent") for s in steps])


def judged(result: Result) -> Score:
    """What the reward judges: the region of an infill, the whole of a new piece."""
    if result.mode == "generate":
        return result.score
    end = result.end_tick if result.end_tick is not None else result.score.end() + 1
    return result.score.clip(result.start_tick, end, clip_end=False).shift_time(-result.start_tick)


def collect(gen: Generator, prompts: Sequence[Prompt], n: int, sampling: SamplingConfig, seed: int,
            weights: RewardWeights, context: RewardContext) -> tuple[list[Rollout], int]:
    """``n`` rollouts per prompt, with rewards; a prompt whose sampling calls cannot be told apart
    by variation (see :func:`segments_of`) is skipped and counted."""
    rollouts, skipped = [], 0
    for p, prompt in enumerate(prompts):
        gen.trace, gen.calls = True, []
        try:
            results = prompt.run(gen, n, sampling, seed + 1009 * p)
            per_row = segments_of(gen, gen.calls, n)
        finally:
            gen.trace, gen.calls = False, []
        if per_row is None:
            skipped += 1
            continue
        for result, segments in zip(results, per_row):
            region = (result.start_tick, result.end_tick) if prompt.kind == "infill" else None
            terms = reward_terms(judged(result), weights, context, region, prompt.style, whole=result.score)
            rollouts.append(Rollout(p, segments, result, terms))
    return rollouts, skipped


@dataclass
class Scored:
    """Per rollout: summed log-probability of its drawn fields, mean KL to the reference and mean
    entropy per step (a note or an end)."""

    logp: torch.Tensor  # (N,) sum over drawn fields, with gradient
    kl: torch.Tensor  # (N,) mean per step, with gradient
    entropy: torch.Tensor  # (N,) mean per step, with gradient
    tokens: torch.Tensor  # (N,) steps per rollout


def padded(segments: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """(S, T, R) rows, right-padded with zeros."""
    T = max(len(s) for s in segments)
    out = torch.zeros((len(segments), T, segments[0].shape[1]), dtype=torch.long)
    for b, rows in enumerate(segments):
        out[b, : len(rows)] = torch.from_numpy(rows)
    return out.to(device)


def step_logprobs(model: NoteTransformer, rows: torch.Tensor, seg: Segment, b: int, h: torch.Tensor,
                  temperature: float) -> list[torch.Tensor]:
    """Per field, the (L, V_k) log-probabilities the sampler drew from at each of the segment's L
    steps: masked, the type merged with the bars past the request, the pitch and velocity leaned as
    they were (the grammar's key, context and groove leans), tempered."""
    span = slice(seg.prompt_len - 1, seg.prompt_len - 1 + len(seg.values))
    nxt = rows[b, seg.prompt_len : seg.prompt_len + len(seg.values)].clone()
    nxt[:, COL["type"]] = NOTE  # the dbar head is read as for a note (the last-bar rule asks it at an end too)
    before = rows[b, 1 : span.start + 1]  # what the positions before the segment's predict
    ctx = model.context(h[b : b + 1, : span.stop], torch.cat([before, nxt])[None])  # (1, stop, C) or None
    logits = [lg.float() for lg in model.heads(h[b, span], model.embed, nxt, None if ctx is None else ctx[0, span])]
    masks = [torch.from_numpy(np.stack([mk if (mk := m[k]) is not None else np.zeros(lg.shape[1], dtype=bool)
                                        for m in seg.masks])).to(lg.device) for k, lg in enumerate(logits)]
    out = []
    for k, (lg, mask) in enumerate(zip(logits, masks)):
        if k == 0:
            lt, ld = F.log_softmax(lg, -1), F.log_softmax(logits[1], -1)
            allowed = masks[1]
            past = torch.from_numpy(seg.past).to(lg.device)
            note = lt[:, NOTE] + torch.logsumexp(ld.masked_fill(~allowed, -torch.inf), -1)
            end = torch.logaddexp(lt[:, seg.end_type], lt[:, NOTE] + torch.logsumexp(ld.masked_fill(~past, -torch.inf), -1))
            lg = lt.clone()
            lg[:, NOTE], lg[:, seg.end_type] = note, end
        added = {PITCH_FIELD: seg.leans, VEL_FIELD: seg.accents}.get(k, [])
        if any(lean is not None for lean in added):
            lg = lg + torch.from_numpy(np.stack([lean if lean is not None else np.zeros(lg.shape[1])
                                                 for lean in added])).to(lg)
        out.append(F.log_softmax(lg.masked_fill(~mask, MASKED) / temperature, -1).masked_fill(~mask, 0.0))
    return out


def score_rollouts(policy: NoteTransformer, reference: NoteTransformer | None, rollouts: Sequence[Rollout],
                   temperature: float = 1.0) -> Scored:
    """Log-probabilities of the rollouts' drawn fields under ``policy`` (with gradients) and the
    per-step KL(policy || reference) and policy entropy, all under the masks they were drawn with."""
    segments = [(k, seg) for k, r in enumerate(rollouts) for seg in r.segments if len(seg.values)]
    device = next(policy.parameters()).device
    sums: list[list[torch.Tensor]] = [[] for _ in rollouts]
    steps = torch.zeros(len(rollouts), dtype=torch.long)
    if segments:
        rows = padded([seg.rows for _, seg in segments], device)
        h = policy(rows[:, :-1])
        ref_h = None
        if reference is not None:
            with torch.no_grad():
                ref_h = reference(rows[:, :-1])
        for b, (k, seg) in enumerate(segments):
            lps = step_logprobs(policy, rows, seg, b, h, temperature)
            refs = (step_logprobs(reference, rows, seg, b, ref_h, temperature)
                    if reference is not None and ref_h is not None else None)
            drawn = torch.from_numpy(seg.values).to(device)
            logp = torch.stack([lp.gather(1, drawn[:, k : k + 1]).masked_fill(drawn[:, k : k + 1] == 0, 0.0).sum()
                                for k, lp in enumerate(lps)]).sum()
            entropy = -torch.stack([(lp.exp() * lp).sum() for lp in lps]).sum()
            kl = torch.zeros((), device=device)
            if refs is not None:
                kl = torch.stack([(lp.exp() * (lp - rp)).sum() for lp, rp in zip(lps, refs)]).sum()
            sums[k].append(torch.stack([logp, kl, entropy]))
            steps[k] += len(seg.values)
    zero = torch.zeros(3, device=device)
    totals = torch.stack([torch.stack(rows).sum(0) if rows else zero for rows in sums])  # (N, 3)
    per_step = steps.clamp(min=1).to(device)
    return Scored(totals[:, 0], totals[:, 1] / per_step, totals[:, 2] / per_step, steps)


def load_policy(checkpoint: str, out: str, threads: int, seed: int) -> tuple[Generator, NoteTransformer, Path]:
    """The policy to fine-tune (a Generator over the checkpoint's weights), a frozen copy of it as
    the reference, and the run folder (created); torch's threads and seed are set first."""
    set_threads(threads)
    torch.manual_seed(seed)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    return Generator(checkpoint), load_checkpoint(checkpoint).model.requires_grad_(False), folder
