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
from symusic import Score

from conftest import make_score
from harmonixr.cli import main
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Region
from harmonixr.models.checkpoint import load_checkpoint
from harmonixr.rl.dpo import load_pairs, sequence_logp
from harmonixr.rl.preferences import PreferenceStore
from harmonixr.rl.reward_model import RewardModel, fit_reward_model
from harmonixr.rl.rewards import RewardContext, RewardWeights
from harmonixr.rl.rollout import Prompt, collect, score_rollouts
from harmonixr.rl.synthetic import RULES
from harmonixr.rl.trainer import advantages
from harmonixr.sampling.decoder import int8_matrices
from harmonixr.sampling.sampler import SamplingConfig

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "harmonixr-small"
STYLES = "[chorale, folk-celtic, folk-german, folk-chinese, classical, renaissance, medieval, romantic, modern, pop]"


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator(SHIPPED)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_rollout_logprobs_are_those_the_sampler_drew_from(gen, music21_midi, temperature, monkeypatch) -> None:
    """score_rollouts recomputes, from the rows alone, the log-probability the sampler gave each
    drawn field (its masks, the last-bar merge, the temperature): the same number, field by field,
    under the model the sampler ran (its matrices in int8, ``decoder.int8_matrices``). The prompt
    is prefilled in fp32 here, as the recomputation runs: the sampler's bf16 prefill (where the
    machine has it) moves a drawn field's log-probability by up to a few hundredths of a nat
    (``tests/test_sampler.py`` bounds its hidden state), which is not what this checks."""
    from harmonixr.sampling import decoder

    monkeypatch.setattr(decoder, "autocast_dtype", lambda *_: None)
    gen.sampler.weights_changed()  # a decoder made without that
    piece = gen.piece(music21_midi["bach/bwv66.6"], "chorale")
    # a drummer's groove under a bass: its fill's drum sounds and velocities lean to it (drums.groove, accents)
    groove = [(bar * 1920 + at * 240, 60, sound, loud) for bar in range(8)
              for at, sound, loud in ((0, 36, 110), (0, 42, 90), (1, 42, 40), (2, 38, 120), (2, 42, 90), (3, 42, 45),
                                      (4, 36, 105), (5, 36, 60), (5, 42, 40), (6, 38, 118), (7, 42, 50))]
    band = gen.piece(make_score([(33, False, [(beat * 480, 400, 40, 80) for beat in range(32)]), (0, True, groove)]), "rock")
    prompts = [Prompt("chorale", piece=piece, region=Region.parse("3-4", gen.vocab.grid)),
               Prompt("folk-celtic", (73,), 110.0, (6, 8), 2),
               Prompt("rock", piece=band, region=Region.parse("4-5", gen.vocab.grid))]
    sampling = SamplingConfig.unfiltered(temperature)  # as the RL trainer samples
    for prompt in prompts:
        rollouts, skipped = collect(gen, [prompt], 3, sampling, 5, RewardWeights(), RewardContext())
        assert skipped == 0 and len(rollouts) == 3
        with torch.no_grad():
            policy = int8_matrices(gen.model)
            scored = score_rollouts(policy, policy, rollouts, temperature)
        assert torch.allclose(scored.kl, torch.zeros_like(scored.kl), atol=1e-5)  # the policy against itself
        assert bool((scored.entropy >= 0).all())
        if prompt.piece is band:  # the leans were there to recompute
            assert all(any(lean is not None for lean in seg.accents) for r in rollouts for seg in r.segments)
        for row, r in enumerate(rollouts):
            expected = 0.0
            for seg in r.segments:
                for step, masks in enumerate(seg.masks):
                    for k, mask in enumerate(masks):
                        if mask is not None and seg.values[step, k]:
                            assert mask[seg.values[step, k]], "every drawn value was allowed"
                expected += sum(float(t.sum()) for t in seg.logps)
            assert float(scored.logp[row]) == pytest.approx(expected, abs=2e-3 * int(scored.tokens[row]) + 1e-3)
    gen.sampler.weights_changed()  # the next tests sample with the bf16 prefill again


def test_advantages_group_relative_and_moving() -> None:
    rewards = np.array([0.2, 0.4, 0.6, 0.5, 0.5, 0.5])
    groups = np.array([0, 0, 0, 1, 1, 1])
    adv = advantages(rewards, groups, "group", 0.0)
    assert adv[:3].mean() == pytest.approx(0) and adv[:3].std() == pytest.approx(1) and adv[0] < adv[2]
    assert (adv[3:] == 0).all()  # a group whose samples all scored alike teaches nothing
    assert advantages(rewards, groups, "moving", 0.5) == pytest.approx(rewards - 0.5)


@pytest.mark.slow
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
        assert 0 < numbers["bits_per_note/next-note"] < 60
        assert all(Path(p).is_file() for p in numbers["samples"])
    assert report["before"]["kl_per_token"] == pytest.approx(0, abs=1e-6)
    assert report["after"]["kl_per_token"] > 0
    tuned = load_checkpoint(run / "latest").model
    shipped = load_checkpoint(SHIPPED).model
    assert any(not torch.equal(a, b) for a, b in zip(tuned.parameters(), shipped.parameters()))


@pytest.mark.slow
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
        assert bool((sequence_logp(tuned, chosen) != sequence_logp(gen.model, chosen)).all())


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
