"""Generated against real music, feature by feature: the Yang & Lerch (2018) protocol.

For each feature (:mod:`harmonixr.evaluation.features`) and two sets of pieces, real R and
generated G: the intra-set distances (every pair of pieces within R), the inter-set distances
(every pair across R and G), each smoothed into a density with a Gaussian kernel (Scott's
bandwidth); then the Kullback-Leibler divergence KL(intra-R || inter) and the overlapping area of
the two densities. Generated music that is distributed like the real music has an inter-set
distribution like the intra-set one: low KL, overlapping area near 1.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

FEATURES = ("pitch_class", "pitch_range", "notes_per_bar", "polyphony", "duration", "ioi", "velocity")
GRID = 256


def _values(pieces: list[dict], name: str) -> np.ndarray:
    return np.array([np.atleast_1d(p[name]) for p in pieces], dtype=float)  # (n, d)


def _distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    if b is None:
        return np.array([np.linalg.norm(a[i] - a[j]) for i, j in combinations(range(len(a)), 2)])
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1).ravel()


def _density(samples: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of ``samples`` on ``grid`` (normalized to integrate to 1)."""
    spread = samples.std() or 1e-3
    bandwidth = 1.06 * spread * len(samples) ** (-1 / 5)
    z = (grid[:, None] - samples[None, :]) / bandwidth
    density = np.exp(-0.5 * z**2).sum(1)
    return density / max(np.trapezoid(density, grid), 1e-12)


def compare_sets(real: list[dict], generated: list[dict]) -> list[dict]:
    """One row per feature: intra-real and inter-set distance means, KL and overlapping area."""
    rows = []
    for name in FEATURES:
        r, g = _values(real, name), _values(generated, name)
        intra_real, intra_gen, inter = _distances(r), _distances(g), _distances(r, g)
        if len(intra_real) < 2 or len(inter) < 2:
            continue
        top = max(intra_real.max(), inter.max(), intra_gen.max(initial=0)) * 1.1 + 1e-9
        grid = np.linspace(0, top, GRID)
        p, q = _density(intra_real, grid), _density(inter, grid)
        kl = float(np.trapezoid(p * np.log((p + 1e-12) / (q + 1e-12)), grid))
        overlap = float(np.trapezoid(np.minimum(p, q), grid))
        rows.append({
            "feature": name, "real_mean": float(r.mean(0).mean()) if r.shape[1] == 1 else None,
            "generated_mean": float(g.mean(0).mean()) if g.shape[1] == 1 else None,
            "intra_real": float(intra_real.mean()), "intra_generated": float(intra_gen.mean()) if len(intra_gen) else None,
            "inter": float(inter.mean()), "kl": kl, "overlap": overlap,
        })
    return rows
