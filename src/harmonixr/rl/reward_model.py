"""A Bradley-Terry reward model of the stored preferences (``harmonixr reward-model``).

P(A preferred to B) = sigmoid(r(A) - r(B)), with r(x) = w . z(x) and z the standardized musical
features of :func:`~harmonixr.evaluation.features.feature_vector` (pitch-class, duration,
inter-onset and velocity histograms, range, density, polyphony, tempo, loudness). Fitted by
L2-regularised logistic regression on feature differences (both orders, so no side is favoured);
ties are left out. Saved as JSON (no pickle); as a reward term (``preference`` in
:class:`~harmonixr.rl.rewards.RewardWeights`) it gives sigmoid(r(x)), in [0, 1].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from symusic import Score

from harmonixr.errors import HarmonixrError
from harmonixr.evaluation.features import feature_vector, piece_features
from harmonixr.rl.preferences import PreferenceStore


def features_of(midi_or_score: bytes | Score) -> np.ndarray:
    score = midi_or_score if isinstance(midi_or_score, Score) else Score.from_midi(midi_or_score)
    return feature_vector(piece_features(score))


@dataclass
class RewardModel:
    mean: np.ndarray  # (F,) feature means of the training samples
    scale: np.ndarray  # (F,) their standard deviations (1 where constant)
    weights: np.ndarray  # (F,)

    def score(self, x: bytes | Score) -> float:
        """r(x): higher is preferred."""
        return float(((features_of(x) - self.mean) / self.scale) @ self.weights)

    def __call__(self, score: Score, style: str = "unknown") -> float:
        """The reward term: sigmoid(r(x)) in [0, 1] (the style is not used)."""
        return float(1.0 / (1.0 + np.exp(-self.score(score))))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kind": "bradley-terry", "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                                    "weights": self.weights.tolist()}))
        return path

    @classmethod
    def from_file(cls, path: str | Path) -> RewardModel:
        data = json.loads(Path(path).read_text())
        if data.get("kind") != "bradley-terry":
            raise HarmonixrError(f"{path}: not a Bradley-Terry reward model (kind {data.get('kind')!r})")
        return cls(*(np.asarray(data[k], dtype=float) for k in ("mean", "scale", "weights")))


def fit_reward_model(store: PreferenceStore, heldout: float = 0.25, seed: int = 0,
                     strength: float = 1.0) -> tuple[RewardModel, dict[str, float]]:
    """Fit on the store's non-tie comparisons minus a seeded held-out share; returns the model and
    its accuracy on the training and held-out comparisons."""
    rows = [(c.id, features_of(c.midi_a), features_of(c.midi_b), c.choice == "a")
            for c in reversed(store.list(with_midi=True)) if c.choice != "tie"]
    if len(rows) < 4:
        raise HarmonixrError(f"{store.path}: {len(rows)} comparisons that are not ties; need at least 4")
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = int(round(heldout * len(rows)))
    test, train = [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]
    every = np.stack([f for _, a, b, _ in train for f in (a, b)])
    mean, scale = every.mean(0), every.std(0)
    scale[scale < 1e-9] = 1.0
    diff = np.stack([(a - b) / scale for _, a, b, _ in train])
    wins = np.array([a_won for *_, a_won in train])
    x, y = np.concatenate([diff, -diff]), np.concatenate([wins, ~wins])
    fit = LogisticRegression(C=strength, fit_intercept=False, max_iter=2000).fit(x, y)
    model = RewardModel(mean, scale, fit.coef_[0])

    def acc(items: list) -> float:
        if not items:
            return float("nan")
        return float(np.mean([(((a - b) / scale) @ model.weights > 0) == a_won for _, a, b, a_won in items]))

    return model, {"train_comparisons": len(train), "heldout_comparisons": len(test),
                   "train_accuracy": acc(train), "heldout_accuracy": acc(test)}
