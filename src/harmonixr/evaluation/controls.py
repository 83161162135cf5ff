"""Control adherence: ask for a tempo, a density, a pitch range, a key and a loudness; measure what
came out.

Tempo is the timeline's (exact by construction) and its control is set; density, pitch range
(lowest/highest octave) and loudness are the model's header controls, learned, not enforced; the
key is enforced as a scale constraint. For each request the achieved value is
measured on the generated score and compared with the request: the error, and whether it falls in
the same bin as the request (the bins of the control tokens).
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

from harmonixr.evaluation.features import piece_features
from harmonixr.generation.modes import Generator
from harmonixr.generation.postprocess import Key, estimate_key
from harmonixr.generation.requests import MusicRules
from harmonixr.sampling.sampler import SamplingConfig

STYLES = ("pop", "folk-german", "folk-celtic", "chorale", "renaissance")
KEYS = ("C major", "G major", "D minor", "A minor", "F major", "E minor")


def control_trials(gen: Generator, trials: int, bars: int, sampling: SamplingConfig, seed: int = 0) -> list[dict]:
    """``trials`` random requests (one piano piece each); one row per request: asked and achieved."""
    rng = np.random.default_rng(seed)
    spec = gen.vocab.spec
    rows = []
    for k in range(trials):
        tempo = float(rng.integers(70, 170))
        density = float(rng.choice([3, 5, 7, 10, 14, 20]))
        low_octave = int(rng.integers(3, 5))
        pitch_range = (12 * low_octave, 12 * (low_octave + int(rng.integers(2, 4))) + 11)
        loudness = float(rng.integers(45, 110))
        key = Key.parse(KEYS[rng.integers(len(KEYS))])
        style = STYLES[rng.integers(len(STYLES))]
        if style not in gen.vocab.styles:
            style = "unknown"
        controls = {"density": density, "pitch_range": pitch_range, "loudness": loudness}
        result = gen.generate([0], style, bars, tempo, (4, 4), controls, 1, sampling, seed + k,
                              MusicRules.in_key(key))[0]
        f = piece_features(result.score)
        in_scale = [n.pitch % 12 in key.pitch_classes for t in result.score.tracks for n in t.notes]
        pitches = [n.pitch for t in result.score.tracks for n in t.notes]
        within = [pitch_range[0] <= p <= pitch_range[1] for p in pitches]
        density_got, loudness_got = result.notes / bars, f["mean_velocity"]
        same_bin = lambda edges, a, b: bisect_right(edges, a) == bisect_right(edges, b)  # noqa: E731
        rows.append({
            "style": style, "notes": result.notes,
            "tempo_asked": tempo, "tempo_got": f["tempo"],
            "density_asked": density, "density_got": density_got,
            "density_same_bin": same_bin(spec.density_edges, density, density_got),
            "range_asked": f"{pitch_range[0]}-{pitch_range[1]}", "range_got": f"{int(f['low'])}-{int(f['high'])}",
            "notes_in_range": float(np.mean(within)) if within else 0.0,
            "loudness_asked": loudness, "loudness_got": loudness_got,
            "loudness_same_bin": same_bin(spec.loudness_edges, loudness, loudness_got),
            "key_asked": str(key), "key_estimated": str(estimate_key(result.score)),
            "notes_in_key": float(np.mean(in_scale)) if in_scale else 0.0,
        })
    return rows


def summarize_controls(rows: list[dict]) -> list[dict]:
    """Per control: how the achieved values follow the asked ones."""
    def corr(a: str, b: str) -> float:
        x, y = np.array([r[a] for r in rows]), np.array([r[b] for r in rows])
        return float(np.corrcoef(x, y)[0, 1]) if x.std() and y.std() else float("nan")

    def error(name: str) -> float:
        return float(np.mean([abs(r[f"{name}_got"] - r[f"{name}_asked"]) for r in rows]))

    def in_bin(name: str) -> str:
        return f"{np.mean([r[f'{name}_same_bin'] for r in rows]):.0%} in the asked bin"

    return [
        {"control": "tempo (the timeline, exact)", "mean_abs_error": error("tempo"),
         "correlation": corr("tempo_asked", "tempo_got"), "adherence": "exact"},
        {"control": "density, notes per bar (header control)", "mean_abs_error": error("density"),
         "correlation": corr("density_asked", "density_got"), "adherence": in_bin("density")},
        {"control": "pitch range, octaves (header controls)", "mean_abs_error": None, "correlation": None,
         "adherence": f"{np.mean([r['notes_in_range'] for r in rows]):.0%} of notes in the asked range"},
        {"control": "loudness, mean velocity (header control)", "mean_abs_error": error("loudness"),
         "correlation": corr("loudness_asked", "loudness_got"), "adherence": in_bin("loudness")},
        {"control": "key (scale constraint)", "mean_abs_error": None, "correlation": None,
         "adherence": f"{np.mean([r['notes_in_key'] for r in rows]):.0%} of notes in the scale; "
                      f"{np.mean([r['key_estimated'] == r['key_asked'] for r in rows]):.0%} estimated as the asked key"},
    ]
