"""An interactive piano roll (plotly): zoom, pan, hover a note for its track, pitch, velocity and time.

Tracks are coloured, bars are numbered on the time axis. The original and the result are drawn on
two rows with a shared time axis; the rewritten region is shaded on both. :func:`pianoroll_figure`
returns the figure (the web studio shows it); :func:`pianoroll_html` returns an HTML fragment
(``include_js``: with plotly.js inlined, so the page works offline) or writes a whole page.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots
from symusic import Score

from harmonixr.visualization.pianoroll import bar_ticks

MAX_BAR_LABELS = 32
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _traces(score: Score, row: int, fig: go.Figure, legend: bool) -> None:
    tpq = score.ticks_per_quarter
    for k, track in enumerate(score.tracks):
        xs, ys, texts = [], [], []
        for n in track.notes:
            start, end = n.time / tpq, (n.time + n.duration) / tpq
            xs += [start, end, None]
            ys += [n.pitch, n.pitch, None]
            text = f"{track.name or 'track ' + str(k + 1)}: {NAMES[n.pitch % 12]}{n.pitch // 12 - 1} v{n.velocity} at {start:.2f}"
            texts += [text, text, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"width": 6, "color": COLORS[k % len(COLORS)]},
                                 name=track.name or f"track {k + 1}", text=texts, hoverinfo="text",
                                 legendgroup=str(k), showlegend=legend), row=row, col=1)


def pianoroll_figure(score: Score, before: Score | None = None, region: tuple[int, int | None] | None = None,
                     title: str = "", height: int = 320) -> go.Figure:
    """``score`` (below ``before`` when given) with bars numbered and ``region`` (ticks) shaded."""
    rows = 2 if before is not None else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("original", "result")[-rows:] if before is not None else (title,))
    if before is not None:
        _traces(before, 1, fig, True)
    _traces(score, rows, fig, before is None)
    tpq = score.ticks_per_quarter
    if region is not None:
        stop = (region[1] if region[1] is not None else score.end()) / tpq
        for row in range(1, rows + 1):
            fig.add_vrect(x0=region[0] / tpq, x1=stop, fillcolor="gold", opacity=0.25, line_width=0, row=row, col=1)
    bars = bar_ticks(score if before is None or score.end() >= before.end() else before)
    step = max(1, -(-len(bars) // MAX_BAR_LABELS))
    lines = [{"type": "line", "xref": f"x{row if row > 1 else ''}", "yref": f"y{row if row > 1 else ''} domain",
              "x0": t / tpq, "x1": t / tpq, "y0": 0, "y1": 1, "line": {"width": 0.5, "color": "#d0d0d0"}, "layer": "below"}
             for t in bars for row in range(1, rows + 1)]
    fig.update_layout(shapes=[*fig.layout.shapes, *lines])
    fig.update_xaxes(tickvals=[t / tpq for t in bars[::step]], ticktext=[str(1 + k * step) for k in range(len(bars[::step]))])
    fig.update_xaxes(title_text="bar", row=rows, col=1)
    fig.update_layout(height=height * rows, title=title if rows > 1 else None, margin={"l": 40, "r": 10, "t": 60, "b": 30},
                      legend={"orientation": "h", "y": -0.15 if rows == 1 else -0.08})
    fig.update_yaxes(title_text="pitch")
    return fig


def pianoroll_html(score: Score, before: Score | None = None, region: tuple[int, int | None] | None = None,
                   title: str = "", include_js: bool = True, out: str | Path | None = None) -> str:
    """The figure as HTML (a fragment, or a whole page written to ``out``)."""
    fig = pianoroll_figure(score, before, region, title)
    html = fig.to_html(full_html=out is not None, include_plotlyjs=include_js)
    if out is not None:
        Path(out).write_text(html)
    return html
