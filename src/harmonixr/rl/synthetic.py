"""Preference sets chosen by a stated rule (``harmonixr prefs-rule``): a stand-in for listeners
whose taste is known, so that DPO and the Bradley-Terry model can be checked against it.

For each prompt (a new piece in the style, instruments, meter and tempo of a real piece), the model
writes two samples; the rule picks the one with the better value, or ``tie`` when the values are
within the rule's tolerance. The comparison is stored like any other, with ``who`` = ``rule:NAME``
and the prompt's token ids in the prompt JSON (so DPO scores the samples under the prompt the model
saw).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from symusic import Score

from harmonixr.data.corpus import Corpus
from harmonixr.evaluation.features import piece_features
from harmonixr.generation.modes import Generator
from harmonixr.progress import progress_bar
from harmonixr.rl.config import PromptConfig
from harmonixr.rl.preferences import PreferenceStore
from harmonixr.rl.rewards import in_key, smoothness
from harmonixr.rl.rollout import Prompt, make_prompts
from harmonixr.sampling.sampler import SamplingConfig


@dataclass(frozen=True)
class Rule:
    """Prefer the sample with the higher ``value`` (lower, when ``lower_is_better``)."""

    name: str
    value: Callable[[Score], float]
    lower_is_better: bool
    tolerance: float  # values closer than this are a tie
    description: str

    def choose(self, a: Score, b: Score) -> str:
        va, vb = self.value(a), self.value(b)
        if abs(va - vb) < self.tolerance:
            return "tie"
        return "a" if (va < vb) == self.lower_is_better else "b"


def mean_velocity(score: Score) -> float:
    return float(piece_features(score)["mean_velocity"])


RULES = {
    "quieter": Rule("quieter", mean_velocity, True, 2.0, "the take with the lower mean velocity (softer dynamics)"),
    "in-key": Rule("in-key", in_key, False, 0.02, "the take with more of its note time in the key"),
    "smoother": Rule("smoother", smoothness, False, 0.02, "the take with the smaller melodic steps"),
}


def prompt_record(prompt: Prompt, gen: Generator, rule: Rule) -> dict:
    """What the comparison stores as its prompt: the request and the control values the model saw."""
    return {"mode": "generate", "style": prompt.style, "programs": list(prompt.programs), "tempo": prompt.tempo,
            "time_signature": list(prompt.time_signature), "bars": prompt.bars, "rule": rule.name,
            "controls": [int(v) for v in gen.header_values(prompt.tempo)]}


def generation_prompts(corpus: Corpus, gen: Generator, count: int, split: str, seed: int) -> list[Prompt]:
    """``count`` new-piece prompts (no infill) from real pieces of ``split``."""
    cfg = replace(PromptConfig(), infill_share=0.0)
    return make_prompts(corpus, gen, cfg, split, count, np.random.default_rng(seed))


def rule_preferences(checkpoint: str, prefs: str, rule: Rule, pairs: int, folders: Sequence[str] | None = None,
                     seed: int = 0, show_progress: bool = True) -> int:
    """Sample ``pairs`` A/B pairs with the model of ``checkpoint`` and store the rule's choices
    (pairs where a sample has no notes are drawn again); returns how many were stored."""
    gen = Generator(checkpoint)
    corpus = Corpus(list(folders or PromptConfig().folders))
    store = PreferenceStore(prefs)
    prompts = generation_prompts(corpus, gen, pairs + pairs // 2 + 2, "train", seed)  # spares for empty samples
    sampling = SamplingConfig.unfiltered()  # pairs from the policy DPO trains
    stored = 0
    with progress_bar("pairs", pairs, show_progress) as advance:
        for k, prompt in enumerate(prompts):
            a, b = prompt.run(gen, 2, sampling, seed * 7_919 + k)
            if not (a.notes and b.notes):  # a rule cannot judge silence (the quieter take would win)
                continue
            store.add(prompt_record(prompt, gen, rule), a.score.dumps_midi(), b.score.dumps_midi(),
                      rule.choose(a.score, b.score), f"rule:{rule.name}", rule.description)
            stored += 1
            advance(1)
            if stored == pairs:
                break
    return stored
