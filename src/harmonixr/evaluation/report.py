"""``harmonixr evaluate``: every measurement of a model on one split, in one HTML page plus CSV/JSON.

Sections (each its own module): likelihood (:mod:`compare`, with the infill holes scored with and
without the music after them), infill quality against the original notes and two trivial
baselines (:mod:`infill_quality`), generated-vs-real statistics per style (:mod:`distributions`),
style consistency (:mod:`classifier`), control adherence (:mod:`controls`), and pictures: training
curves, piano rolls (PNG and interactive), token embeddings, audio players. The page embeds its
images, audio and plotly.js, so it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from harmonixr.data.corpus import Corpus
from harmonixr.errors import HarmonixrError
from harmonixr.evaluation import html
from harmonixr.evaluation.classifier import StyleClassifier
from harmonixr.evaluation.compare import compare, write_csv
from harmonixr.evaluation.controls import control_trials, summarize_controls
from harmonixr.evaluation.distributions import compare_sets
from harmonixr.evaluation.features import piece_features
from harmonixr.evaluation.infill_quality import Hole, Method, evaluate_infill, middle_holes, paired, shortest_piece, summarize
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Piece, split_pieces
from harmonixr.sampling.sampler import SamplingConfig

SAMPLING = SamplingConfig()  # the product's defaults
GREEDY = SamplingConfig(top_k=1)
# The baselines the model's infill must beat: the left-only one decodes as the model row it faces.
_TRIVIAL = ("harmonixr, left context only, {how}", "repeat the bar before", "copy the bars before")
_MODEL_ROWS = (("harmonixr, piece-aware", "sampled"), ("harmonixr, best of both", "sampled"),
               ("harmonixr, both sides, sampled", "sampled"),
               ("harmonixr, both sides, greedy", "greedy"))
_ABLATIONS = (("harmonixr, both sides, sampled", "harmonixr, both sides, sampled, rhythm free"),)


@dataclass(frozen=True)
class ReportConfig:
    """How much of each measurement; the defaults take about ten minutes on 2 cores."""

    split: str = "test"
    max_pieces: int = 0  # likelihood: score the first N pieces of the split (0: all)
    holes_per_piece: int = 2  # likelihood: held-out infill holes per piece
    infill_pieces: int = 20  # infill quality: pieces of the split per source (one hole in the middle of each)
    infill_bars: int = 2  # the hole's length
    infill_samples: int = 3  # fills per hole and method
    stats_pieces: int = 12  # per style: real pieces and as many generated
    stats_bars: int = 16
    classifier_train: int = 150  # training-split pieces per style for the style classifier
    control_trials: int = 30
    listening: int = 3  # holes with piano rolls and audio in the page
    seed: int = 0


def measure_infill(gen: Generator, corpus: Corpus, split: str, count: int, bars: int, samples: int, seed: int,
                   rng: np.random.Generator, per_piece: int = 1) -> tuple[list[Hole], list[dict], dict]:
    """Section 2: a hole of ``bars`` whole bars, every track, in the middle of ``count`` pieces of
    ``split`` per source (long enough for it; ``per_piece`` holes spread over each, one: the
    middle), filled by the model's rows and the trivial baselines. Returns the holes, one row per
    fill, and ``infill_quality`` (means per method and source), ``infill_paired`` (the model's rows
    against the baselines, hole by hole, per source)."""
    pieces = split_pieces(corpus, split, count, gen.vocab, rng, by="family", min_bars=shortest_piece(bars, per_piece))
    holes = middle_holes(pieces, bars, per_piece)
    methods = {"harmonixr, piece-aware": Method("infill", gen, SAMPLING, "piece"),
               "harmonixr, best of both": Method("infill", gen, SAMPLING, "best"),
               "harmonixr, both sides, sampled": Method("infill", gen, SAMPLING),
               "harmonixr, both sides, sampled, rhythm free": Method("infill", gen, SAMPLING, free_rhythm=True),
               "harmonixr, both sides, greedy": Method("infill", gen, GREEDY),
               "harmonixr, left context only, sampled": Method("left", gen, SAMPLING),
               "harmonixr, left context only, greedy": Method("left", gen, GREEDY),
               "repeat the bar before": Method("repeat"),
               "copy the bars before": Method("copy")}
    fills = evaluate_infill(methods, holes, samples, seed)
    found: dict = {"infill_quality": [], "infill_paired": []}
    for source in ["all", *sorted({h.source for h in holes})]:
        mine = [r for r in fills if source == "all" or r["source"] == source]
        found["infill_quality"] += [{"source": source, **r} for r in summarize(mine)]
        found["infill_paired"] += [{"source": source, **paired(mine, method, against.format(how=how))}
                                   for method, how in _MODEL_ROWS for against in _TRIVIAL]
        found["infill_paired"] += [{"source": source, **paired(mine, method, against)} for method, against in _ABLATIONS]
    return holes, fills, found


def evaluate(checkpoint: str | Path, folders: list[str], out: str | Path, config: ReportConfig = ReportConfig(),
             baselines: tuple[str, ...] = (), console: Console | None = None) -> dict:
    """Run every section, write ``out/report.html`` and the numbers; return them."""
    console = console or Console()
    out = Path(out)
    (out / "files").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    began = time.perf_counter()
    gen = Generator(checkpoint)
    corpus = Corpus(folders)
    numbers: dict = {"checkpoint": str(checkpoint), "data": folders, "config": asdict(config)}

    console.rule("likelihood")
    rows = compare([checkpoint, *baselines], folders, config.split, gen.max_len, config.holes_per_piece,
                   config.max_pieces)
    numbers["likelihood"] = rows

    console.rule("infill quality")
    holes, fills, found = measure_infill(gen, corpus, config.split, config.infill_pieces, config.infill_bars,
                                         config.infill_samples, config.seed, rng)
    numbers.update(found)
    write_csv(out / "infill_fills.csv", fills)

    console.rule("generated vs real, style, controls")
    real = [(p, s) for p, s, _ in split_pieces(corpus, config.split, config.stats_pieces, gen.vocab, rng)]
    generated = _generate_like(gen, real, config)
    numbers["distributions"] = {}
    for style in sorted({s for _, s in real}):
        mine_real = [piece_features(p.original) for p, s in real if s == style]
        mine_gen = [piece_features(r.score) for r, s in generated if s == style]
        if len(mine_real) >= 3 and len(mine_gen) >= 3:
            numbers["distributions"][style] = compare_sets(mine_real, mine_gen)
    train = [(p, s) for p, s, _ in split_pieces(corpus, "train", config.classifier_train, gen.vocab, rng)]
    held_out = [(p, s) for p, s, _ in split_pieces(corpus, config.split, 10_000, gen.vocab, rng)]
    numbers["style"] = {"train_pieces": len(train), "real_test_pieces": len(held_out)}
    if len({s for _, s in train}) > 1 and generated:
        classifier = StyleClassifier.fit([piece_features(p.original) for p, _ in train], [s for _, s in train], config.seed)
        made = ([piece_features(r.score) for r, _ in generated], [s for _, s in generated])
        numbers["style"].update({
            "real": classifier.accuracy([piece_features(p.original) for p, _ in held_out], [s for _, s in held_out]),
            "generated": classifier.accuracy(*made), "generated_confusions": classifier.confusions(*made)})
    trials = control_trials(gen, config.control_trials, 8, SAMPLING, config.seed)
    numbers["controls"] = summarize_controls(trials)
    write_csv(out / "control_trials.csv", trials)

    console.rule("pictures and sound")
    pictures = html.pictures(gen, checkpoint, holes[: config.listening], out / "files", config.seed)
    numbers["embeddings"] = pictures.pop("facts")
    numbers["seconds"] = time.perf_counter() - began
    (out / "metrics.json").write_text(json.dumps(numbers, indent=1, default=_plain))
    write_csv(out / "likelihood.csv", rows)
    write_csv(out / "infill_quality.csv", numbers["infill_quality"])
    write_csv(out / "infill_paired.csv", numbers["infill_paired"])
    write_csv(out / "distributions.csv", [{"style": s, **r} for s, rs in numbers["distributions"].items() for r in rs])
    write_csv(out / "controls.csv", numbers["controls"])
    (out / "report.html").write_text(html.page(numbers, pictures))
    console.print(f"wrote {out}/report.html, metrics.json and CSVs in {numbers['seconds']:.0f} s")
    return numbers


def _generate_like(gen: Generator, real: list[tuple[Piece, str]], config: ReportConfig) -> list[tuple]:
    """One generated piece per real one: its style token, instruments, meter and tempo, up to
    ``stats_bars`` bars (or the real piece's length)."""
    made = []
    for k, (piece, style) in enumerate(real):
        numerator, denominator = piece.timeline.meters[0]
        tempo = float(piece.timeline.qpm[0])
        bars = max(2, min(config.stats_bars, piece.bars))
        programs = [piece.tracks.program(s, piece.vocab) for s in piece.slots]
        try:
            result = gen.generate(programs, style, bars, tempo, (numerator, denominator), n=1,
                                  sampling=SAMPLING, seed=config.seed + k)[0]
        except HarmonixrError:
            continue
        made.append((result, style))
    return made


def _plain(value: object) -> object:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)
