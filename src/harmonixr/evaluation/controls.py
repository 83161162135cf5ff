"""Control adherence: ask for a tempo, a density, a pitch range, a key and a loudness; measure what
came out.

Tempo is written as a token at the start (exact by construction) and its control token is set;
density, pitch range (lowest/highest octave) and loudness are the model's control tokens, learned,
not enforced; the key is enforced as a scale constraint. For each request the achieved value is
measured on the generated score and compared with the request: the error, and whether it falls in
the same bin as the request (the bins of the control tokens).
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

from harmonixr.evaluation.features import piece_features
from harmonixr.generation.modes import Generator, MusicRules, control_tokens
from harmonixr.generation.postprocess import Key, estimate_key
from harmonixr.sampling.sampler import SamplingConfig

STYLES = ("pop", "folk-german", "folk-celtic", "chorale", "renaissance")
KEYS = ("C major", "G major", "D minor", "A minor", "F major", "E minor")


def control_trials(gen: Generator, trials: int, bars: int, sampling: SamplingConfig, seed: int = 0) -> list[dict]:
    """``trials`` random requests (one piano piece each); one row per request: asked and achieved."""
    rng = np.random.default_rng(seed)
    spec = gen.tokenizer.spec
    rows = []
    for k in range(trials):
        tempo = float(rng.integers(70, 170))
        density = float(rng.choice([3, 5, 7, 10, 14, 20]))
        low_octave = int(rng.integers(3, 5))
        pitch_range = (12 * low_octave, 12 * (low_octave + int(rng.integers(2, 4))) + 11)
        loudness = float(rng.integers(45, 110))
        key = Key.parse(KEYS[rng.integers(len(KEYS))])
        style = STYLES[rng.integers(len(STYLES))]
        controls = control_tokens(gen.tokenizer, tempo, density, pitch_range, loudness)
        result = gen.generate([0], style, bars, tempo, (4, 4), controls, 1, sampling, seed + k,
                              MusicRules(scale=key.pitch_classes))[0]
        f = piece_features(result.score)
        in_scale = [n.pitch % 12 in key.pitch_classes for t in result.score.tracks for n in t.notes]
        pitches = [n.pitch for t in result.score.tracks for n in t.notes]
        within = [pitch_range[0] <= p <= pitch_range[1] for p in pitches]
        rows.append({
            "style": style, "notes": result.notes,
            "tempo_asked": tempo, "tempo_got": f["tempo"],
            "density_asked": density, "density_got": result.notes / bars,
            "density_same_bin": bisect_right(spec.density_edges, density) == bisect_right(spec.density_edges, result.notes / bars),
            "range_asked": f"{pitch_range[0]}-{pitch_range[1]}", "range_got": f"{int(f['low'])}-{int(f['high'])}",
            "notes_in_range": float(np.mean(within)) if within else 0.0,
            "loudness_asked": loudness, "loudness_got": f["mean_velocity"],
            "loudness_same_bin": bisect_right(spec.loudness_edges, loudness) == bisect_right(spec.loudness_edges, f["mean_velocity"]),
            "key_asked": str(key), "key_estimated": str(estimate_key(result.score)),
            "notes_in_key": float(np.mean(in_scale)) if in_scale else 0.0,
        })
    return rows


def summarize_controls(rows: list[dict]) -> list[dict]:
    """Per control: how the achieved values follow the asked ones."""
    def corr(a: str, b: str) -> float:
        x, y = np.array([r[a] for r in rows]), np.array([r[b] for r in rows])
        return float(np.corrcoef(x, y)[0, 1]) if x.std() and y.std() else float("nan")

    return [
        {"control": "tempo (token written, exact)", "mean_abs_error": float(np.mean([abs(r["tempo_got"] - r["tempo_asked"]) for r in rows])),
         "correlation": corr("tempo_asked", "tempo_got"), "adherence": "exact"},
        {"control": "density, notes per bar (control token)", "mean_abs_error": float(np.mean([abs(r["density_got"] - r["density_asked"]) for r in rows])),
         "correlation": corr("density_asked", "density_got"), "adherence": f"{np.mean([r['density_same_bin'] for r in rows]):.0%} in the asked bin"},
        {"control": "pitch range, octaves (control tokens)", "mean_abs_error": None, "correlation": None,
         "adherence": f"{np.mean([r['notes_in_range'] for r in rows]):.0%} of notes in the asked range"},
        {"control": "loudness, mean velocity (control token)", "mean_abs_error": float(np.mean([abs(r["loudness_got"] - r["loudness_asked"]) for r in rows])),
         "correlation": corr("loudness_asked", "loudness_got"), "adherence": f"{np.mean([r['loudness_same_bin'] for r in rows]):.0%} in the asked bin"},
        {"control": "key (scale constraint)", "mean_abs_error": None, "correlation": None,
         "adherence": f"{np.mean([r['notes_in_key'] for r in rows]):.0%} of notes in the scale; "
                      f"{np.mean([r['key_estimated'] == r['key_asked'] for r in rows]):.0%} estimated as the asked key"},
    ]
