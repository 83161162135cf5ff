"""An interactive piano roll (plotly): zoom, pan, hover a note for its track, pitch, velocity and time.

Every track has a colour of its own (24 distinct ones, then evenly spaced hues), drum hits are
drawn as markers at their onsets (a drum note's length means nothing and is often a tick), and
bars are numbered on the time axis. The original and the result are drawn on two rows with a
shared time axis; the rewritten region is shaded on both. ``view`` opens the figure on a span of
ticks (:func:`view_around`: the region with bars around it), the whole piece one "autoscale"
away. :func:`pianoroll_figure` returns the figure (the web studio shows it); :func:`pianoroll_html`
returns an HTML fragment (``include_js``: with plotly.js inlined, so the page works offline) or
writes a whole page.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots
from symusic import Score

from harmonixr.visualization.colors import track_color
from harmonixr.visualization.pianoroll import bar_ticks

MAX_BAR_LABELS = 32
VIEW_BARS = 2  # bars shown on each side of a region
NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def view_around(score: Score, region: tuple[int, int | None], bars: int = VIEW_BARS) -> tuple[int, int]:
    """The ticks from ``bars`` bars before ``region`` (ticks) to ``bars`` bars after it."""
    lines = bar_ticks(score)
    start = max(k for k, t in enumerate(lines) if t <= region[0])
    stop = region[1] if region[1] is not None else score.end()
    end = next((k for k, t in enumerate(lines) if t >= stop), len(lines) - 1)
    return lines[max(0, start - bars)], lines[min(len(lines) - 1, end + bars)]


def _traces(score: Score, row: int, fig: go.Figure, legend: bool) -> None:
    tpq = score.ticks_per_quarter
    for k, track in enumerate(score.tracks):
        xs: list[float | None] = []
        ys: list[int | None] = []
        texts: list[str | None] = []
        name = track.name or f"track {k + 1}"
        for n in track.notes:
            start, end = n.time / tpq, (n.time + n.duration) / tpq
            text = f"{name}: {NAMES[n.pitch % 12]}{n.pitch // 12 - 1} v{n.velocity} at {start:.2f}"
            if track.is_drum:  # one marker per hit
                xs.append(start)
                ys.append(n.pitch)
                texts.append(text)
            else:  # a line per note, gaps between them
                xs += [start, end, None]
                ys += [n.pitch, n.pitch, None]
                texts += [text, text, None]
        color = track_color(k)
        style = ({"mode": "markers", "marker": {"symbol": "diamond", "size": 7, "color": color}} if track.is_drum
                 else {"mode": "lines", "line": {"width": 6, "color": color}})
        fig.add_trace(go.Scatter(x=xs, y=ys, name=f"{name} (drums)" if track.is_drum else name, text=texts,
                                 hoverinfo="text", legendgroup=str(k), showlegend=legend, **style), row=row, col=1)


def pianoroll_figure(score: Score, before: Score | None = None, region: tuple[int, int | None] | None = None,
                     title: str = "", height: int = 320, view: tuple[int, int] | None = None) -> go.Figure:
    """``score`` (below ``before`` when given) with bars numbered and ``region`` (ticks) shaded,
    opened on the ticks of ``view`` when given (the whole piece otherwise)."""
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
    if view is not None:
        fig.update_xaxes(range=[view[0] / tpq, view[1] / tpq])
    return fig


def pianoroll_html(score: Score, before: Score | None = None, region: tuple[int, int | None] | None = None,
                   title: str = "", include_js: bool = True, out: str | Path | None = None) -> str:
    """The figure as HTML (a fragment, or a whole page written to ``out``)."""
    fig = pianoroll_figure(score, before, region, title)
    html = fig.to_html(full_html=out is not None, include_plotlyjs=include_js)
    if out is not None:
        Path(out).write_text(html)
    return html
