"""What the model learned about its vocabulary: field embeddings in 2-D, and measured answers.

:func:`plot_embeddings` projects the input embeddings of the pitch, velocity and duration values
with PCA and t-SNE (scikit-learn) and colours them by pitch class, octave, velocity and length.
:func:`embedding_facts` answers with numbers what the pictures suggest:

- ``fifths_vs_semitones``: mean cosine similarity of pitch-class centroids a fifth apart minus that
  of centroids a semitone apart (positive: the model places fifths closer, the circle of fifths);
- ``velocity_order``: |Spearman correlation| between velocity and the first principal component of
  the velocity embeddings (1: the loudness bins lie in order along one direction);
- ``duration_order``: the same for durations.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

from harmonixr.visualization.figures import save_figure  # noqa: E402


def token_values(vocab, family: str) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001 - NoteVocab
    """(rows of the embedding table, values) of one field: ``Pitch`` (the melodic range),
    ``Velocity`` (1-127) or ``Duration`` (quarter notes)."""
    from harmonixr.tokens.vocab import COL

    if family == "Pitch":
        low, high = vocab.spec.pitch_range
        values = np.arange(low, high + 1)
        stored = values + 1
    elif family == "Velocity":
        values = stored = np.arange(1, 128)
    else:
        values = vocab.durations / vocab.grid
        stored = np.arange(1, len(values) + 1)
    column = COL[{"Pitch": "pitch", "Velocity": "vel", "Duration": "dur"}[family]]
    return vocab.offsets[column] + stored, values.astype(float)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def embedding_facts(weights: np.ndarray, tokenizer) -> dict[str, float]:  # noqa: ANN001
    ids, pitches = token_values(tokenizer, "Pitch")
    vectors = weights[ids] / np.linalg.norm(weights[ids], axis=1, keepdims=True)
    centroids = np.stack([vectors[pitches.astype(int) % 12 == pc].mean(0) for pc in range(12)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    similarity = centroids @ centroids.T
    fifths = np.mean([similarity[pc, (pc + 7) % 12] for pc in range(12)])
    semitones = np.mean([similarity[pc, (pc + 1) % 12] for pc in range(12)])
    facts = {"fifths_vs_semitones": float(fifths - semitones), "fifth_similarity": float(fifths),
             "semitone_similarity": float(semitones)}
    for family, key in (("Velocity", "velocity_order"), ("Duration", "duration_order")):
        fam_ids, values = token_values(tokenizer, family)
        first = PCA(1).fit_transform(weights[fam_ids])[:, 0]
        facts[key] = abs(_spearman(first, values))
    return facts


def plot_embeddings(weights: np.ndarray, tokenizer, out: str | Path, seed: int = 0) -> Path:  # noqa: ANN001
    """A 2 x 4 grid: PCA (top) and t-SNE (bottom) of pitch (by pitch class, by octave), velocity
    and duration token embeddings."""
    panels = []
    ids, pitches = token_values(tokenizer, "Pitch")
    panels += [(ids, pitches.astype(int) % 12, "pitch tokens by pitch class", "hsv"),
               (ids, pitches.astype(int) // 12, "pitch tokens by octave", "viridis")]
    for family, cmap in (("Velocity", "magma"), ("Duration", "cividis")):
        fam_ids, values = token_values(tokenizer, family)
        panels.append((fam_ids, np.log2(values) if family == "Duration" else values,
                       f"{family.lower()} tokens by {'log2 length' if family == 'Duration' else 'velocity'}", cmap))
    fig, axes = plt.subplots(2, 4, figsize=(18, 8.5))
    for col, (fam_ids, colour, title, cmap) in enumerate(panels):
        vectors = weights[fam_ids]
        for row, (name, points) in enumerate((
            ("PCA", PCA(2, random_state=seed).fit_transform(vectors)),
            ("t-SNE", TSNE(2, perplexity=min(15, len(fam_ids) - 1), random_state=seed, init="pca").fit_transform(vectors)),
        )):
            ax = axes[row, col]
            dots = ax.scatter(points[:, 0], points[:, 1], c=colour, cmap=cmap, s=22)
            fig.colorbar(dots, ax=ax, fraction=0.046)
            ax.set_title(f"{name}: {title}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    return save_figure(fig, out, dpi=100)
