"""Piano rolls: a colour of its own per track, drum hits as markers, bars numbered, the rewritten region shaded.

:func:`plot_pianoroll` draws one score; with ``before`` it draws the original above the result on
the same time axis, so what changed is where the shading is. Velocity sets each note's opacity,
so dynamics are visible too.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.ticker import MaxNLocator
from symusic import Score

from harmonixr.visualization.colors import track_color
from harmonixr.visualization.figures import save_figure

MAX_BAR_LABELS = 40


def bar_ticks(score: Score) -> list[int]:
    """Tick of every bar line, from the score's time signatures (4/4 when it has none)."""
    tpq, end = score.ticks_per_quarter, max(score.end(), 1)
    signatures = sorted(score.time_signatures, key=lambda t: t.time) or []
    out, tick, k = [], 0, 0
    numerator, denominator = (4, 4)
    while tick <= end:
        while k < len(signatures) and signatures[k].time <= tick:
            numerator, denominator = signatures[k].numerator, signatures[k].denominator
            k += 1
        out.append(tick)
        tick += max(1, int(round(numerator * 4 / max(denominator, 1) * tpq)))
    return out


def _draw(ax: plt.Axes, score: Score, region: tuple[int, int | None] | None, title: str,
          view: tuple[int, int] | None) -> None:
    tpq = score.ticks_per_quarter
    for k, track in enumerate(score.tracks):
        notes = track.notes.numpy()
        if len(notes["time"]) == 0:
            continue
        start, length = notes["time"] / tpq, notes["duration"] / tpq
        pitch = notes["pitch"].astype(float)
        color = to_rgb(track_color(k))
        alphas = 0.35 + 0.65 * notes["velocity"] / 127
        label = f"{k + 1}: {track.name or 'track'}{' (drums)' if track.is_drum else ''}"
        if track.is_drum:  # a hit's length means nothing: a marker at its onset
            ax.scatter(start, pitch, s=12, marker="D", c=[(*color, a) for a in alphas], linewidths=0, label=label)
            continue
        boxes = [[(s, p - 0.4), (s + d, p - 0.4), (s + d, p + 0.4), (s, p + 0.4)] for s, d, p in zip(start, length, pitch)]
        ax.add_collection(PolyCollection(boxes, facecolors=[(*color, a) for a in alphas], edgecolors="none", label=label))
    bars = [(number, tick) for number, tick in enumerate(bar_ticks(score))
            if view is None or view[0] <= tick <= view[1]]
    step = max(1, len(bars) // MAX_BAR_LABELS)
    for k, (number, tick) in enumerate(bars):
        ax.axvline(tick / tpq, color="0.85", lw=0.5, zorder=0)
        if k % step == 0:
            ax.text(tick / tpq, 1.0, str(number + 1), transform=ax.get_xaxis_transform(), fontsize=7, va="bottom")
    if region is not None:
        stop = region[1] if region[1] is not None else score.end()
        ax.axvspan(region[0] / tpq, stop / tpq, color="gold", alpha=0.25, zorder=0, label="rewritten")
    ax.autoscale()
    if view is not None:
        ax.set_xlim(view[0] / tpq, view[1] / tpq)
    ax.set_ylabel("pitch")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # pitches are whole numbers
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(loc="upper right", fontsize=7, ncols=2)


def plot_pianoroll(score: Score, out: str | Path, region: tuple[int, int | None] | None = None,
                   before: Score | None = None, title: str = "", view: tuple[int, int] | None = None) -> Path:
    """Write a PNG of ``score`` (and ``before`` above it), ``region`` (ticks) shaded, the time axis
    limited to ``view`` (ticks) when given."""
    rows = 2 if before is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(14, 3.6 * rows), sharex=True, squeeze=False)
    if before is not None:
        _draw(axes[0, 0], before, region, "original", view)
    _draw(axes[-1, 0], score, region, title or "result", view)
    axes[-1, 0].set_xlabel("quarter notes")
    return save_figure(fig, out, dpi=110)
