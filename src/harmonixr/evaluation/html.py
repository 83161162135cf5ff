"""The report page: tables of every number, embedded pictures, audio players, interactive piano rolls.

Everything is inside the one HTML file (PNG and WAV as data URIs, plotly.js inline once), so the
page opens without a server or a network.
"""

from __future__ import annotations

import base64
import html as escape
import math
from pathlib import Path

from harmonixr.evaluation.infill_quality import METRICS, Hole
from harmonixr.generation.modes import Generator
from harmonixr.generation.outputs import cut, view_ticks
from harmonixr.models.checkpoint import resolve
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.visualization.audio import render_audio, wav_bytes
from harmonixr.visualization.curves import plot_curves
from harmonixr.visualization.embeddings import embedding_facts, plot_embeddings
from harmonixr.visualization.interactive import pianoroll_html
from harmonixr.visualization.pianoroll import plot_pianoroll

AUDIO_RATE = 22050  # mono at half the CD rate: the page stays small
LISTEN_MARGIN_BARS = 2
STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
h2{margin-top:2em;border-bottom:2px solid #ddd}
.note{color:#555;font-size:14px;max-width:900px}"""


def _uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def pictures(gen: Generator, checkpoint: str | Path, holes: list[Hole], folder: Path, seed: int) -> dict:
    """Training curve, token embeddings (+ their facts), and per listening hole: a PNG and an
    interactive piano roll of original vs fill, and both as audio."""
    out: dict = {"listening": []}
    try:
        out["curve"] = _uri(plot_curves([resolve(checkpoint)], folder / "training_curve.png", ["training"]).read_bytes(),
                            "image/png")
    except FileNotFoundError:  # a checkpoint without its training log
        pass
    weights = gen.model.embed.table.weight.detach().float().numpy()
    out["embeddings"] = _uri(plot_embeddings(weights, gen.vocab, folder / "embeddings.png", seed).read_bytes(), "image/png")
    out["facts"] = embedding_facts(weights, gen.vocab)
    for k, hole in enumerate(holes):
        piece = hole.piece
        result = gen.infill(piece, hole.region, 1, SamplingConfig(), seed + k, source="sampled")[0]
        start, end = result.start_tick, result.end_tick
        assert end is not None, "an infill's region ends"
        view = view_ticks(piece.original, result, LISTEN_MARGIN_BARS)
        png = plot_pianoroll(result.score, folder / f"listen-{k}.png", (start, end), piece.original,
                             f"{hole.style}: bars {hole.first_bar + 1}-{hole.first_bar + hole.bars} filled", view)
        out["listening"].append({
            "title": f"{hole.style}, bars {hole.first_bar + 1}-{hole.first_bar + hole.bars}",
            "png": _uri(png.read_bytes(), "image/png"),
            "interactive": pianoroll_html(cut(result.score, view), cut(piece.original, view),
                                          (start - view[0], end - view[0]), include_js=k == 0),
            "original": _uri(wav_bytes(render_audio(cut(piece.original, view), AUDIO_RATE), AUDIO_RATE, mono=True), "audio/wav"),
            "fill": _uri(wav_bytes(render_audio(cut(result.score, view), AUDIO_RATE), AUDIO_RATE, mono=True), "audio/wav"),
        })
    return out


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    return escape.escape(str(value)) if value is not None else "-"


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>(none)</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{escape.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def page(numbers: dict, pics: dict) -> str:
    """The whole report as one HTML string."""
    lik = numbers["likelihood"]
    overall = [r for r in lik if r["source"] == "all"]
    sources = sorted({r["source"] for r in lik} - {"all"})
    per_source = []
    for model in dict.fromkeys(r["model"] for r in lik):
        for task in dict.fromkeys(r["task"] for r in lik):
            mine = {r["source"]: r["bits_per_note"] for r in lik if r["model"] == model and r["task"] == task}
            per_source.append({"model": model, "task": task, **{s: mine.get(s, float("nan")) for s in sources}})
    both = {r["model"]: r["bits_per_note"] for r in overall if r["task"] == "infill"}
    left = {r["model"]: r["bits_per_note"] for r in overall if r["task"] == "infill, left context only"}
    future = [{"model": m, "both sides": both[m], "left only": left[m], "bits saved by the music after": left[m] - both[m]}
              for m in both if m in left]
    style = numbers["style"]
    dist_rows = [{"style": s, **r} for s, rs in numbers["distributions"].items() for r in rs]
    parts = [
        f"<h1>Harmonixr evaluation: {escape.escape(Path(numbers['checkpoint']).name)}</h1>",
        f"<p class=note>Data {escape.escape(', '.join(numbers['data']))}, split <b>{numbers['config']['split']}</b>; "
        f"{numbers['seconds']:.0f} s to make. Every number here is also in metrics.json and the CSV files beside this page.</p>",
        "<h2>1. Likelihood (bits per note, lower is better)</h2>",
        "<p class=note>Next-note: bar-aligned windows covering every note of the split once. Infill: held-out holes "
        "(whole bars, beat spans, some tracks), only the fill scored; 'left context only' scores the same fills with "
        "the music after the hole removed. A note's bits are the sum of its fields'; 'comparable' leaves out "
        "micro-timing and counts velocity in 32 bins (what a REMI model writes).</p>",
        table(overall, ["model", "task", "bits_per_note", "comparable", "type", "dbar", "pos", "track", "pitch", "dur",
                        "vel", "micro", "notes"]),
        "<h3>What the music after the hole is worth</h3>", table(future),
        "<h3>Per source</h3>", table(per_source),
        "<h2>2. Infill quality against the original notes</h2>",
        "<p class=note>Held-out pieces of every source, one hole of whole bars in the middle of each (all tracks), "
        "several fills per hole. F1: notes with the original's onset (on the grid) and pitch; overlaps: pitch-class and "
        "within-bar onset histograms (1 = identical); velocity distance: |mean velocity difference|; note ratio: "
        "notes of the fill over the original's.</p>",
        table(numbers["infill_quality"], ["source", "method", "fills", *METRICS, "notes_per_fill", "truth_notes_per_hole",
                                          "median_note_ratio"]),
        "<h3>The model against the trivial baselines, hole by hole</h3>",
        "<p class=note>Mean per-hole difference (model minus baseline; a hole's fills averaged), its standard error, "
        "and the holes won/lost. The left-only baseline decodes as the model row it faces.</p>",
        table(numbers["infill_paired"]),
        "<h2>3. Generated vs real, per style (Yang &amp; Lerch 2018)</h2>",
        "<p class=note>Per feature: mean intra-set distance of the real pieces, mean inter-set distance (real vs "
        "generated), KL(intra-real || inter) and the overlapping area of the two distance densities (1 = generated "
        "pieces sit among the real ones as the real ones sit among themselves).</p>",
        table(dist_rows, ["style", "feature", "intra_real", "intra_generated", "inter", "kl", "overlap"]),
        "<h2>4. Style consistency</h2>",
        f"<p class=note>A logistic-regression style classifier on musical features, trained on {style['train_pieces']} real "
        f"training pieces; accuracy on {style['real_test_pieces']} real held-out pieces, then on the generated pieces "
        "(labelled with the style token they were generated with).</p>",
        table([{"pieces": "real, held out", **style["real"]}, {"pieces": "generated", **style["generated"]}])
        if "real" in style else "<p>(skipped: the training split holds one style only)</p>",
        "<h2>5. Control adherence</h2>", table(numbers["controls"]),
        "<h2>6. Pictures</h2>",
    ]
    if "curve" in pics:
        parts.append(f"<h3>Training curve</h3><img src='{pics['curve']}'>")
    facts = numbers["embeddings"]
    parts += [f"<h3>Token embeddings</h3><p class=note>Pitch-class centroids a fifth apart: cosine "
              f"{facts['fifth_similarity']:.3f}; a semitone apart: {facts['semitone_similarity']:.3f}. |Spearman| of "
              f"the first principal component with velocity: {facts['velocity_order']:.3f}, with duration: "
              f"{facts['duration_order']:.3f}.</p><img src='{pics['embeddings']}'>"]
    parts.append("<h2>7. Listen: original and fill</h2>")
    for item in pics["listening"]:
        parts += [f"<h3>{escape.escape(item['title'])}</h3>",
                  f"<p>original <audio controls src='{item['original']}'></audio> &nbsp; fill "
                  f"<audio controls src='{item['fill']}'></audio></p>",
                  f"<img src='{item['png']}'>", item["interactive"]]
    head = f"<head><meta charset=utf-8><title>Harmonixr evaluation</title><style>{STYLE}</style></head>"
    return f"<!doctype html><html>{head}<body>{''.join(parts)}</body></html>"
