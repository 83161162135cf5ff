"""Style consistency: a style classifier trained on real music, then asked about generated music.

A multinomial logistic regression (scikit-learn) on :func:`~harmonixr.evaluation.features.feature_vector`
(pitch-class, duration, inter-onset and velocity histograms, pitch range, density, polyphony,
tempo, loudness), trained on real pieces of the training split, class-balanced. Its accuracy on
real held-out pieces says how far these features tell the styles apart; its accuracy on pieces
generated with a style token says how well the model writes in that style, as far as a
classifier of this strength can tell.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from harmonixr.evaluation.features import feature_vector


@dataclass
class StyleClassifier:
    model: Pipeline
    styles: list[str]

    @classmethod
    def fit(cls, features: list[dict], styles: list[str], seed: int = 0) -> StyleClassifier:
        x = np.stack([feature_vector(f) for f in features])
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced",
                                                                   random_state=seed))
        model.fit(x, styles)
        return cls(model, sorted(set(styles)))

    def predict(self, features: list[dict]) -> list[str]:
        return list(self.model.predict(np.stack([feature_vector(f) for f in features])))

    def probability(self, features: dict, style: str) -> float:
        """P(``style`` | the piece's features); 0 for a style the classifier never saw."""
        classes = list(self.model.classes_)
        if style not in classes:
            return 0.0
        return float(self.model.predict_proba(feature_vector(features)[None])[0, classes.index(style)])

    def accuracy(self, features: list[dict], styles: list[str]) -> dict[str, float]:
        """Accuracy overall (``"all"``), balanced over styles (``"balanced"``) and per style."""
        predicted = self.predict(features)
        per_style = {s: float(np.mean([p == s for p, t in zip(predicted, styles) if t == s]))
                     for s in sorted(set(styles))}
        correct = [p == t for p, t in zip(predicted, styles)]
        return {"all": float(np.mean(correct)), "balanced": float(np.mean(list(per_style.values()))), **per_style}

    def confusions(self, features: list[dict], styles: list[str]) -> dict[str, dict[str, int]]:
        """For each true style, how its pieces were classified."""
        out: dict[str, Counter] = {}
        for p, t in zip(self.predict(features), styles):
            out.setdefault(t, Counter())[p] += 1
        return {t: dict(c) for t, c in out.items()}
