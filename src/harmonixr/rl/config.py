"""Configuration of reinforcement learning and DPO: ``configs/rl.yaml`` and ``configs/dpo.yaml``.

Both fine-tune a supervised checkpoint (``policy``) and keep a frozen copy of it as the reference
the KL penalty (RL) or the implicit reward (DPO) is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harmonixr.errors import HarmonixrError
from harmonixr.rl.rewards import RewardWeights


@dataclass(frozen=True)
class PromptConfig:
    """Where RL prompts come from: pieces to generate from nothing and holes in real pieces."""

    folders: tuple[str, ...] = ("data/corpus-all",)  # prepared folders (their train/test splits)
    styles: tuple[str, ...] = ("chorale", "folk-german", "folk-celtic", "classical", "pop")
    generate_bars: int = 4  # bars of a piece generated from nothing
    infill_share: float = 0.5  # share of prompts that are infill holes in real pieces
    max_hole_bars: int = 2  # an infill hole is 1..max_hole_bars whole bars, all tracks
    heldout: int = 24  # held-out prompts (from the test split) for the before/after evaluation


@dataclass(frozen=True)
class RLOptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    prompts_per_step: int = 4
    group_size: int = 8  # samples per prompt (the group of a group-relative baseline)
    temperature: float = 1.0  # the policy's log-probabilities are those of this tempered, masked softmax
    max_notes: int = 256  # notes sampled per rollout at most


@dataclass(frozen=True)
class RLConfig:
    policy: str = "models/harmonixr-small"  # the supervised checkpoint to start from (and the reference)
    out: str = "runs/rl"
    steps: int = 60
    baseline: str = "group"  # group: reward minus the group's mean, over its std | moving: minus a moving average
    moving_decay: float = 0.9  # of the moving-average baseline
    kl_coef: float = 0.1  # weight of the per-token KL(policy || reference)
    entropy_coef: float = 0.01  # weight of the per-token entropy bonus
    checkpoint_every: int = 10
    seed: int = 0
    threads: int = 0  # torch CPU threads (0: torch's default)
    eval_samples: int = 4  # samples per held-out prompt in the before/after evaluation
    eval_pieces: int = 40  # test-split pieces scored for bits per note before/after (0: skip)
    preference_model: str = ""  # a Bradley-Terry model (harmonixr reward-model), for rewards.preference
    rewards: RewardWeights = field(default_factory=RewardWeights)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    optim: RLOptimConfig = field(default_factory=RLOptimConfig)

    def __post_init__(self) -> None:
        if self.baseline not in ("group", "moving"):
            raise HarmonixrError(f"baseline must be 'group' or 'moving', not {self.baseline!r}")
        if self.optim.group_size < 2 and self.baseline == "group":
            raise HarmonixrError("a group-relative baseline needs optim.group_size >= 2")
        if self.rewards.preference and not self.preference_model:
            raise HarmonixrError("rewards.preference needs preference_model: the JSON file of `harmonixr reward-model`")
        if self.optim.temperature <= 0:
            raise HarmonixrError("optim.temperature must be > 0")


@dataclass(frozen=True)
class DPOConfig:
    policy: str = "models/harmonixr-small"
    prefs: str = "prefs.sqlite"  # the preference store to learn from
    out: str = "runs/dpo"
    beta: float = 0.1  # DPO temperature: how far the policy may move from the reference
    lr: float = 5e-5
    epochs: int = 3
    batch_pairs: int = 8
    heldout: float = 0.25  # share of comparisons held out (chosen by id, so the same every run)
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 0
    folders: tuple[str, ...] = ("data/corpus-all",)  # prepared folders for the rule's held-out prompts
    eval_prompts: int = 16  # test-split prompts sampled before/after to measure the rule's value (0: skip)
    eval_samples: int = 4
