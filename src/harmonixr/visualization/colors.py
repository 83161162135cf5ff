"""Track colours shared by every piano roll (PNG and interactive): a track keeps its colour on
the original and on the result, and no two tracks of a piece share one."""

from __future__ import annotations

import colorsys

import plotly.colors

DISTINCT = tuple(plotly.colors.qualitative.Dark24)  # hex colours, distinct, for the first 24 tracks
GOLDEN = 0.618033988749895  # hue step of the colours after those


def track_color(k: int) -> str:
    """The colour of track ``k`` (0-based) as ``#rrggbb``."""
    if k < len(DISTINCT):
        return DISTINCT[k]
    r, g, b = colorsys.hsv_to_rgb((k * GOLDEN) % 1.0, 0.75, 0.8)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
