"""Writing matplotlib figures: one place for the file handling every plot shares."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig: plt.Figure, out: str | Path, dpi: int = 110) -> Path:
    """Lay out ``fig``, write it to ``out`` (folders made as needed), close it; return the path."""
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
