"""Reinforcement learning, DPO and the Bradley-Terry model, with the shipped model on real pieces.

The log-probabilities RL trains on must be those of the distribution the sampler drew from (grammar
mask, last-bar end merge, temperature); a run must checkpoint, resume and report before/after; DPO
must move the policy toward the chosen samples; the reward model must learn a stated rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_score
from symusic import Score

from harmonixr.cli import main
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Region
from harmonixr.rl.dpo import load_pairs, sequence_logp
from harmonixr.rl.preferences import PreferenceStore
from harmonixr.rl.reward_model import RewardModel, fit_reward_model
from harmonixr.rl.rewards import RewardContext, RewardWeights
from harmonixr.rl.rollout import Prompt, Recording, collect, score_rollouts
from harmonixr.rl.synthetic import RULES
from harmonixr.rl.trainer import advantages
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.training.checkpoint import load_checkpoint

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "harmonixr-small"
STYLES = "[chorale, folk-celtic, folk-german, folk-chinese, classical, renaissance, medieval, romantic, modern, pop]"


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator(SHIPPED)


class LogitRecording(Recording):
    """Also keeps, per sampling call, the raw logits the decoder gave at each step."""

    def watch(self, constraint):
        self.raw = []
        wrapped = super().watch(constraint)
        inner = wrapped.apply

        def apply(logits: np.ndarray) -> np.ndarray:
            self.raw.append(logits.copy())
            return inner(logits)

        wrapped.apply = apply
        return wrapped

    def sampled(self, prompt, bar0, outs) -> None:
        super().sampled(prompt, bar0, outs)
        self.calls[-1]["raw"] = np.stack(self.raw, 1)  # (rows, steps, V)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_rollout_logprobs_are_those_the_sampler_drew_from(gen, music21_midi, temperature) -> None:
    piece = gen.piece(music21_midi["bach/bwv66.6"], "chorale")
    prompts = [Prompt("chorale", piece=piece, region=Region.parse("3-4", gen.vocab.grid)),  # written in two parts
               Prompt("folk-celtic", (73,), 110.0, (6, 8), 2)]
    sampling = SamplingConfig(temperature=temperature)
    for prompt in prompts:
        recording = LogitRecording()
        gen.recorder = recording
        prompt.run(gen, 3, sampling, seed=5)
        gen.recorder = None
        rollouts, skipped = collect(gen, [prompt], 3, sampling, 5, RewardWeights(), RewardContext())
        by_row = recording.calls_by_row(3)
        assert skipped == 0 and len(rollouts) == 3 and [len(r.segments) for r in rollouts] == [len(c) for c in by_row]
        with torch.no_grad():
            scored = score_rollouts(gen.model, gen.model, rollouts, gen.structure, gen.tokenizer.pad_id, temperature)
        assert torch.allclose(scored.kl, torch.zeros_like(scored.kl), atol=1e-6)  # the policy against itself
        assert bool((scored.entropy >= 0).all())
        for row, r in enumerate(rollouts):
            expected = 0.0
            for (call, crow), seg in zip(by_row[row], r.segments):
                steps = len(seg.ids) - seg.prompt_len
                drawn = np.array(seg.ids[seg.prompt_len:])
                assert seg.mask[np.arange(steps), drawn].all()  # every drawn token was allowed
                # The sampler's distribution from the decoder's own logits: mask, end merge, temperature.
                raw = call["raw"][crow, :steps].astype(np.float64)
                z = np.where(call["masks"][crow, :steps], raw, -np.inf)
                merged = call["merged"][crow, :steps]
                z[merged, seg.end_id] = np.logaddexp(z[merged, seg.end_id], raw[merged, seg.bar_id])
                z = z / temperature
                expected += (z - np.logaddexp.reduce(z, axis=1, keepdims=True))[np.arange(steps), drawn].sum()
            assert float(scored.logp[row]) == pytest.approx(expected, abs=2e-3 * int(scored.tokens[row]))


def test_advantages_group_relative_and_moving() -> None:
    rewards = np.array([0.2, 0.4, 0.6, 0.5, 0.5, 0.5])
    groups = np.array([0, 0, 0, 1, 1, 1])
    adv = advantages(rewards, groups, "group", 0.0)
    assert adv[:3].mean() == pytest.approx(0) and adv[:3].std() == pytest.approx(1) and adv[0] < adv[2]
    assert (adv[3:] == 0).all()  # a group whose samples all scored alike teaches nothing
    assert advantages(rewards, groups, "moving", 0.5) == pytest.approx(rewards - 0.5)


def test_rl_run_reports_checkpoints_and_resumes(training_corpus, tmp_path) -> None:
    config = tmp_path / "rl.yaml"
    config.write_text(f"""policy: {SHIPPED}
out: {tmp_path / 'run'}
steps: 1
checkpoint_every: 1
eval_samples: 2
eval_pieces: 1
rewards: {{style: 0.5}}
prompts: {{folders: [{training_corpus}], styles: {STYLES}, heldout: 2, max_hole_bars: 1}}
optim: {{prompts_per_step: 2, group_size: 2}}
""")
    assert main(["rl", "--config", str(config), "--quiet"]) == 0
    assert main(["rl", "--config", str(config), "--steps", "2", "--quiet"]) == 0  # resumes at step 1
    run = tmp_path / "run"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    assert {"reward/total", "reward/in_key", "reward/consonance", "kl_per_token", "entropy"} <= set(lines[0])
    report = json.loads((run / "report.json").read_text())
    assert report["steps"] == 2
    for side in ("before", "after"):
        numbers = report[side]
        assert 0 <= numbers["reward/total"] <= 1 and 0 <= numbers["diversity/distinct"] <= 1
        assert 0 < numbers["bits_per_note/next-token"] < 40
        assert all(Path(p).is_file() for p in numbers["samples"])
    assert report["before"]["kl_per_token"] == pytest.approx(0, abs=1e-6)
    assert report["after"]["kl_per_token"] > 0
    tuned = load_checkpoint(run / "latest").model
    shipped = load_checkpoint(SHIPPED).model
    assert any(not torch.equal(a, b) for a, b in zip(tuned.parameters(), shipped.parameters()))


def test_dpo_on_rule_preferences(training_corpus, tmp_path) -> None:
    prefs = tmp_path / "prefs.sqlite"
    assert main(["prefs-rule", str(SHIPPED), "--rule", "quieter", "--pairs", "10", "--prefs", str(prefs),
                 "--data", str(training_corpus), "--quiet"]) == 0
    store = PreferenceStore(prefs)
    assert store.count() == 10 and {c.who for c in store.list()} == {"rule:quieter"}
    gen = Generator(SHIPPED)
    pairs, problems = load_pairs(store, gen)
    assert problems == []
    for c in store.list(with_midi=True):  # the rule's choice holds on the stored MIDI
        if c.choice != "tie":
            a, b = (RULES["quieter"].value(Score.from_midi(m)) for m in (c.midi_a, c.midi_b))
            assert (a < b) == (c.choice == "a")
    config = tmp_path / "dpo.yaml"
    config.write_text(f"policy: {SHIPPED}\nprefs: {prefs}\nout: {tmp_path / 'dpo'}\nepochs: 4\nlr: 1.0e-3\n"
                      f"batch_pairs: 4\nheldout: 0.3\nfolders: [{training_corpus}]\neval_prompts: 1\neval_samples: 2\n")
    assert main(["dpo", "--config", str(config), "--quiet"]) == 0
    report = json.loads((tmp_path / "dpo" / "report.json").read_text())
    ties = sum(c.choice == "tie" for c in store.list())
    assert report["rule"] == "quieter" and report["train_pairs"] + report["heldout_pairs"] == len(pairs) == 10 - ties
    assert report["log"][-1]["margin"] > report["log"][0]["margin"]  # the policy moved toward the chosen samples
    assert report["after"]["train_accuracy"] >= report["before"]["train_accuracy"]
    tuned = load_checkpoint(tmp_path / "dpo" / "latest").model
    with torch.no_grad():
        chosen = [p.chosen for p in pairs[:2]]
        starts = [p.prompt_len for p in pairs[:2]]
        assert bool((sequence_logp(tuned, chosen, starts, gen) != sequence_logp(gen.model, chosen, starts, gen)).all())


def test_bradley_terry_learns_a_stated_rule(tmp_path) -> None:
    rng = np.random.default_rng(0)
    store = PreferenceStore(tmp_path / "prefs.sqlite")

    def take() -> bytes:
        loud = int(rng.integers(30, 120))
        notes = [(k * 240, 240, int(rng.integers(55, 80)), int(np.clip(loud + rng.integers(-8, 9), 1, 127))) for k in range(16)]
        return make_score([(0, False, notes)]).dumps_midi()

    for _ in range(60):
        a, b = take(), take()
        store.add({"rule": "quieter"}, a, b, RULES["quieter"].choose(*(Score.from_midi(m) for m in (a, b))),
                  "rule:quieter")
    model, numbers = fit_reward_model(store, heldout=0.3)
    assert numbers["heldout_comparisons"] >= 12 and numbers["heldout_accuracy"] >= 0.9
    path = model.save(tmp_path / "bt.json")
    again = RewardModel.from_file(path)
    quiet = make_score([(0, False, [(k * 240, 240, 60, 35) for k in range(16)])])
    loud = make_score([(0, False, [(k * 240, 240, 60, 115) for k in range(16)])])
    assert again(quiet) > 0.5 > again(loud) and 0 <= again(loud) <= 1
