"""Policy-gradient fine-tuning with musical rewards (``harmonixr rl --config configs/rl.yaml``).

Each step samples ``group_size`` rollouts for each of ``prompts_per_step`` training prompts (new
pieces and infill holes, through the ordinary generation modes and their grammar), scores them with
the weighted reward terms, and takes one step on

    loss = -mean_i(A_i * logp_i / L_i) + kl_coef * mean_i KL_i - entropy_coef * mean_i H_i

where ``logp_i`` is the log-probability of rollout i's ``L_i`` tokens under the masked, tempered
distribution it was drawn from, ``A_i`` its advantage (reward minus the group's mean over the
group's std, or minus a moving average), ``KL_i`` the mean per-token KL to the frozen supervised
model and ``H_i`` the mean per-token entropy (REINFORCE with a baseline, a KL leash and an entropy
bonus).

The run folder holds ``latest`` (a resumable checkpoint: weights, optimizer, step, baseline),
``metrics.jsonl`` (every reward term, KL, entropy per step) and ``rl_curves.png``, and
``before.json`` / ``after.json`` / ``report.json`` with samples from the held-out prompts before and
after (``samples/``: MIDI, piano roll, WAV).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch
from rich.console import Console

from harmonixr.config import to_dict
from harmonixr.data.corpus import Corpus
from harmonixr.evaluation.classifier import StyleClassifier
from harmonixr.evaluation.features import piece_features
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import split_pieces
from harmonixr.models.checkpoint import load_model_weights, load_training_state, save_checkpoint
from harmonixr.models.transformer import NoteTransformer
from harmonixr.progress import progress_bar
from harmonixr.rl.assess import assess, bits_per_note, mean_terms, write_samples
from harmonixr.rl.config import RLConfig
from harmonixr.rl.reward_model import RewardModel
from harmonixr.rl.rewards import PhraseIndex, RewardContext
from harmonixr.rl.rollout import (
    Rollout,
    collect,
    load_policy,
    make_prompts,
    score_rollouts,
)
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.training.trainer import Logger
from harmonixr.visualization.curves import plot_rl_run

PROMPT_POOL = 64  # training prompts drawn once; each step takes prompts_per_step of them
SAMPLES_WRITTEN = 3  # held-out prompts whose before/after samples are written as MIDI, PNG and WAV


def advantages(rewards: np.ndarray, groups: np.ndarray, baseline: str, moving: float) -> np.ndarray:
    """Group-relative (reward minus its group's mean, over the group's std; 0 for a group whose
    samples all scored alike) or minus the moving average ``moving``."""
    if baseline == "moving":
        return rewards - moving
    out = np.zeros_like(rewards)
    for g in np.unique(groups):
        mine = groups == g
        std = rewards[mine].std()
        out[mine] = (rewards[mine] - rewards[mine].mean()) / std if std > 1e-6 else 0.0
    return out


def reward_context(corpus: Corpus, gen: Generator, config: RLConfig, rng: np.random.Generator) -> RewardContext:
    """The phrase index of training pieces (novelty), a style classifier on them (style term) and
    the Bradley-Terry model of the stored preferences (preference term)."""
    pieces = [(p, s) for p, s, _ in split_pieces(corpus, "train", 40, gen.vocab, rng)]
    index = PhraseIndex([p.original for p, _ in pieces]) if config.rewards.novelty else None
    style_model = None
    if config.rewards.style and len({s for _, s in pieces}) > 1:
        classifier = StyleClassifier.fit([piece_features(p.original) for p, _ in pieces], [s for _, s in pieces], config.seed)

        def style_model(score, style: str) -> float:
            return classifier.probability(piece_features(score), style)
    preference = RewardModel.from_file(config.preference_model) if config.rewards.preference else None
    return RewardContext(index, style_model, preference)


def policy_step(gen: Generator, reference: NoteTransformer, rollouts: list[Rollout], config: RLConfig,
                moving: float) -> dict[str, float]:
    """The loss of one batch of rollouts, backpropagated (the optimizer steps outside)."""
    rewards = np.array([r.reward for r in rollouts])
    adv = advantages(rewards, np.array([r.prompt_index for r in rollouts]), config.baseline, moving)
    scored = score_rollouts(gen.model, reference, rollouts, config.optim.temperature)
    adv_t = torch.tensor(adv, dtype=torch.float32)
    pg = -(adv_t * scored.logp / scored.tokens.clamp(min=1)).mean()
    kl, entropy = scored.kl.mean(), scored.entropy.mean()
    loss = pg + config.kl_coef * kl - config.entropy_coef * entropy
    loss.backward()
    return {"loss": loss.item(), "pg_loss": pg.item(), "kl_per_token": kl.item(), "entropy": entropy.item(),
            "tokens": int(scored.tokens.sum())}


def train_rl(config: RLConfig, resume: bool = True, show_progress: bool = True, console: Console | None = None) -> dict:
    """Run (or resume) RL fine-tuning; returns the before/after report."""
    console = console or Console()
    gen, reference, out = load_policy(config.policy, config.out, config.threads, config.seed)
    corpus = Corpus(config.prompts.folders)
    rng = np.random.default_rng(config.seed)
    context = reward_context(corpus, gen, config, rng)
    pool = make_prompts(corpus, gen, config.prompts, "train", PROMPT_POOL, rng)
    heldout = make_prompts(corpus, gen, config.prompts, "test", config.prompts.heldout, np.random.default_rng(config.seed + 1))
    sampling = SamplingConfig.unfiltered(config.optim.temperature, config.optim.max_notes)  # the policy itself
    optimizer = torch.optim.AdamW(gen.model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    state: dict[str, Any] = {"step": 0, "moving": 0.0, "elapsed": 0.0}
    latest = out / "latest"
    if resume and (latest.exists() or latest.with_name("latest.old").exists()):
        load_model_weights(latest, gen.model)
        state = load_training_state(latest, optimizer)
        gen.sampler.weights_changed()
        console.print(f"resumed {out} at step {state['step']}")
    meta = {"rl": to_dict(config)}

    def evaluation(tag: str) -> dict:
        path = out / f"{tag}.json"
        if tag == "before" and state["step"] > 0 and path.exists():  # resumed: the start was measured
            return json.loads(path.read_text())
        numbers, rollouts = assess(gen, reference, heldout, config.eval_samples, sampling, config.seed + 2,
                                   config.rewards, context)
        if config.eval_pieces:
            numbers.update({f"bits_per_note/{k}": v for k, v in
                            bits_per_note(gen.model, corpus, config.eval_pieces, gen.max_len).items()})
        measured = {**numbers, "samples": [str(p) for p in write_samples(rollouts, out / "samples", tag, SAMPLES_WRITTEN)]}
        path.write_text(json.dumps(measured, indent=1))
        return measured

    console.rule("held-out prompts, before")
    before = evaluation("before")
    logger = Logger(out, state["step"], tensorboard=False)
    began = time.time() - state["elapsed"]
    with progress_bar("rl steps", config.steps - state["step"], show_progress) as advance:
        for step in range(state["step"] + 1, config.steps + 1):
            t0 = time.time()
            picks = np.random.default_rng([config.seed, step]).choice(len(pool), config.optim.prompts_per_step, replace=False)
            gen.model.eval()
            rollouts, skipped = collect(gen, [pool[i] for i in picks], config.optim.group_size, sampling,
                                        config.seed * 100_003 + step, config.rewards, context)
            record: dict[str, float] = {"skipped_prompts": skipped}
            if rollouts:  # else every prompt was skipped: the step counts, nothing is learned
                gen.model.train()
                optimizer.zero_grad(set_to_none=True)
                record.update(policy_step(gen, reference, rollouts, config, state["moving"]))
                record["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(gen.model.parameters(), config.optim.grad_clip))
                optimizer.step()
                gen.sampler.weights_changed()
                mean_reward = float(np.mean([r.reward for r in rollouts]))
                state["moving"] = (mean_reward if step == 1 else
                                   config.moving_decay * state["moving"] + (1 - config.moving_decay) * mean_reward)
            state["step"], state["elapsed"] = step, time.time() - began
            logger.log({"step": step, **mean_terms(rollouts), **record, "seconds": time.time() - t0})
            if step % config.checkpoint_every == 0 or step == config.steps:
                save_checkpoint(latest, gen.model, gen.vocab, {**meta, "step": step}, optimizer, state)
            advance(1)
    logger.close()
    console.rule("held-out prompts, after")
    gen.model.eval()
    after = evaluation("after")
    report = {"before": before, "after": after, "steps": state["step"], "minutes": state["elapsed"] / 60}
    if (out / "metrics.jsonl").stat().st_size:
        report["curves"] = str(plot_rl_run(out, out / "rl_curves.png"))
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report
