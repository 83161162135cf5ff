"""The web studio's handlers: what each widget of the page (:mod:`harmonixr.web.app`) does.

Open a MIDI file or a bundled example and see it as a piano roll (tracks coloured, bars numbered,
zoom and hover); choose bars or a beat span and tracks; infill, refine, continue, add a track, or
write a new piece in a style; hear each variation beside the original with the region marked,
download its MIDI and WAV, keep it, undo, try again, and store which of two variations is better.

Every button calls one :class:`~harmonixr.web.studio.Studio` method; a refused request shows its
message in a box and changes nothing (:func:`refusing`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from gradio.utils import get_upload_folder

from harmonixr.tokens.vocab import instrument_name
from harmonixr.visualization.interactive import pianoroll_figure, view_around
from harmonixr.web.studio import RHYTHMS, ControlRow, Desk, Knobs, NewPiece, Request, Studio, StudioError, Take

NO_RESULTS = "No variations yet: choose an operation above."


def control_rows(table: Any) -> tuple[ControlRow, ...]:
    """The controls table (rows of track, name, notes per bar, mean velocity and, optionally,
    velocities LOW-HIGH and the rhythm, kept or free; a DataFrame or lists); an empty cell leaves
    that control inferred."""
    rows = table.values.tolist() if hasattr(table, "values") else (table or [])
    out = []
    for row in rows:
        if len(row) < 4 or row[0] in (None, "") or row[0] != row[0]:  # a row without a track (NaN in a DataFrame)
            continue
        try:
            track = int(float(row[0])) - 1
            density, loudness = (None if v in (None, "") or v != v else float(v) for v in row[2:4])
        except (TypeError, ValueError):
            raise StudioError(f"the controls table: row {row!r} is not track, name, notes per bar, mean velocity") from None
        if density is not None and density < 0 or loudness is not None and not 0 <= loudness <= 127:
            raise StudioError(f"track {track + 1}: notes per bar must be 0 or more, mean velocity 0 to 127")
        out.append(ControlRow(track, density, loudness, *_velocities(track, row[4] if len(row) > 4 else None),
                              _rhythm(track, row[5] if len(row) > 5 else None)))
    return tuple(out)


CONTROL_COLUMNS = ["notes per bar", "mean velocity", "velocities", "rhythm"]  # after track and instrument
TABLE_KEY = "track (bars "  # how the controls table's first header starts (table_key)


def table_key(region: str, tracks: list[int] | tuple[int, ...] | None) -> str:
    """The controls table's first header: what its values were inferred for (the region and the
    ticked tracks). It travels with the table's cells, in one component: a request made while the
    page still shows another region's values (the click came before the new table was drawn) keeps
    none of them, for they are not what the visitor set for this region."""
    ticked = f", tracks {' '.join(str(t + 1) for t in sorted(tracks))}" if tracks else ""
    return f"{TABLE_KEY}{region.strip()}{ticked})"


def controls_table(rows: list[list], region: str, tracks: list[int] | tuple[int, ...] | None) -> pd.DataFrame:
    """The controls table as the page shows it: its rows under headers that say what they were
    inferred for (:func:`table_key`)."""
    return pd.DataFrame(rows or [[None, "", None, None, "", ""]],
                        columns=[table_key(region, tracks), "instrument", *CONTROL_COLUMNS])


def _rhythm(track: int, cell: Any) -> bool | None:
    """A rhythm cell: ``kept`` (onsets at the positions the track plays around the region),
    ``free`` (anywhere); empty: as inferred."""
    text = "" if cell is None or cell != cell else str(cell).strip().lower()
    if not text:
        return None
    if text not in RHYTHMS:
        raise StudioError(f"track {track + 1}: rhythm {text!r} is neither 'kept' nor 'free'")
    return RHYTHMS[text]


def _velocities(track: int, cell: Any) -> tuple[int | None, int | None]:
    """A velocities cell, ``LOW-HIGH`` (empty: any velocity)."""
    text = "" if cell is None or cell != cell else str(cell).strip()
    if not text:
        return None, None
    low, _, high = text.partition("-")
    try:
        values = int(low), int(high)
    except ValueError:
        raise StudioError(f"track {track + 1}: velocities {text!r} is not LOW-HIGH, e.g. 60-90") from None
    if not 1 <= values[0] <= values[1] <= 127:
        raise StudioError(f"track {track + 1}: velocities {text!r} must be LOW-HIGH within 1-127")
    return values


def uploaded_here(path: str | Path) -> Path:
    """``path`` if it is a file Gradio received as an upload (in its upload folder), else a refusal:
    a request through the API may name any file of the server, and only uploads may be opened."""
    folder = Path(get_upload_folder()).resolve()
    real = Path(path).resolve()
    if not real.is_relative_to(folder) or not real.is_file():
        raise StudioError(f"{Path(path).name}: not a file uploaded to the studio; only uploads can be opened")
    return real


def refusing(handler: Callable[..., Any], outputs: int) -> Callable[..., Any]:
    """``handler``, except that a :class:`StudioError` leaves the page as it was (every one of its
    ``outputs`` is skipped) and shows the message in a box that stays until it is closed."""

    @functools.wraps(handler)
    def run(*args: Any) -> Any:
        try:
            return handler(*args)
        except StudioError as exc:
            gr.Warning(str(exc), duration=None, title="Refused")
            return gr.skip() if outputs == 1 else tuple(gr.skip() for _ in range(outputs))

    return run


class Page:
    """The widgets' handlers around one :class:`Studio`."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    # -- what the page shows -----------------------------------------------------------------
    def _piece_view(self, desk: Desk, region: str = "") -> tuple:
        take = desk.current()
        score = take.score()
        span = self.studio.region_ticks(take, region)
        figure = pianoroll_figure(score, region=span, title=take.name, height=360)
        choices = [(f"{k + 1}: {t.name or instrument_name(-1 if t.is_drum else t.program)}", k)
                   for k, t in enumerate(score.tracks)]
        bars = self.studio.bars(take)
        summary = f"**{take.name}**: {len(score.tracks)} tracks, {bars} bars, {score.note_num()} notes, style {take.style}"
        if take.repairs:
            summary += "\n\n**Repaired as it was read:** " + "; ".join(take.repairs)
        return desk, figure, self._audio(take), gr.update(choices=choices, value=[]), summary, take.style

    def _audio(self, take: Take) -> str | None:
        return self.studio.audio(take)

    def _results_view(self, desk: Desk, k: int = 0, whole: bool = False) -> tuple:
        """What the variations part of the page shows: variation ``k``'s roll, zoomed on its region
        with bars around it unless ``whole``, its audio and downloads, the pickers and the text."""
        if not desk.variations:
            empty = gr.update(choices=[], value=None)
            return desk, gr.update(choices=[], value=None), None, None, None, empty, empty, NO_RESULTS, whole
        v = desk.variations[k]
        before = None if desk.request.get("op") == "generate" or desk.take is None else desk.take.score()
        score = v.score()
        view = None if whole or desk.request.get("op") == "generate" else view_around(score, v.region)
        figure = pianoroll_figure(score, before, v.region, f"variation {k + 1}", height=300, view=view)
        names = [str(i + 1) for i in range(len(desk.variations))]
        pick_b = names[1] if len(names) > 1 else names[0]
        closed = "closed by the model" if v.finished else "cut at the note budget"
        text = (f"{len(names)} variation(s) of **{desk.request.get('op')}**, seed {desk.request['knobs']['seed']}; "
                f"variation {k + 1}: {v.notes} notes, {closed}, {v.source}")
        if v.notice:
            text += f"\n\n**Note:** {v.notice}"
        if desk.parsed:
            text += f"\n\nPrompt read as: {desk.parsed}"
        return (desk, gr.update(choices=names, value=names[k]), figure, v.wav or None, [f for f in (v.midi, v.wav) if f],
                gr.update(choices=names, value=names[0]), gr.update(choices=names, value=pick_b), text, whole)

    # -- handlers ----------------------------------------------------------------------------
    def upload(self, desk: Desk, path: str | None, style: str, region: str) -> tuple:
        if path is None:
            raise StudioError("no file arrived")
        uploaded_here(path)
        desk.open(self.studio.open_upload(path, Path(path).name, style))
        return (*self._piece_view(desk, region), *self._results_view(desk)[1:])

    def example(self, desk: Desk, name: str, region: str) -> tuple:
        desk.open(self.studio.open_example(name))
        return (*self._piece_view(desk, region), *self._results_view(desk)[1:])

    def restyle(self, desk: Desk, style: str, region: str) -> tuple:
        """The piece's style, as the visitor chose it (what every later request tells the model)."""
        if desk.take is None:
            return tuple(gr.skip() for _ in range(6))
        desk.take = replace(desk.take, style=style)
        return self._piece_view(desk, region)

    def mark(self, desk: Desk, region: str, tracks: list[int] | None = None) -> tuple:
        """The piece's roll with the region shaded, and the region's per-track controls as inferred."""
        if desk.take is None:
            return gr.skip(), gr.skip()
        figure = pianoroll_figure(desk.take.score(), region=self.studio.region_ticks(desk.take, region),
                                  title=desk.take.name, height=360)
        rows = self.studio.inferred_controls(desk.take, region, tuple(tracks or ()))
        return figure, controls_table(rows, region, tracks)

    def request(self, op: str, region: str, tracks: list[int], bars: int, program: int, style: str,
                instruments: list[int], tempo: float, meter: str, density: float, loudness: float,
                temperature: float, top_p: float, seed: float, variations: float, prompt: str = "",
                controls: Any = None, length: float = 8) -> Request:
        """The widgets' values as a :class:`Request` (``bars``: Continue's new bars; ``length``: the
        new piece's bars; ``controls``: the controls table, whose rows count only for the region and
        tracks its first header names (:func:`table_key`); rows without headers are taken as set)."""
        numerator, denominator = (int(x) for x in meter.split("/"))
        new = NewPiece(style, tuple(instruments) or (0,), float(tempo), (numerator, denominator),
                       float(density) if density else None, float(loudness) if loudness else None)
        knobs = Knobs(float(temperature), float(top_p), int(seed), int(variations))
        bar_count = int(length if op == "generate" else bars)
        made_for = str(controls.columns[0]) if isinstance(controls, pd.DataFrame) else ""
        stale = made_for.startswith(TABLE_KEY) and made_for != table_key(region, tracks)  # (a header the visitor
        # edited names no region: the rows count as set)
        return Request(op, region.strip(), tuple(sorted(tracks or ())), bar_count, int(program), new, knobs,
                       prompt=(prompt or "").strip(), controls=() if stale else control_rows(controls))

    def run(self, desk: Desk, *values: Any) -> tuple:
        request = self.request(*values)
        self.studio.run(desk, request)
        return (*self._results_view(desk), request.knobs.seed, "")  # a choice stored for the last ones is not shown

    def again(self, desk: Desk) -> tuple:
        self.studio.again(desk)
        assert desk.last is not None, "again() ran a request"
        return (*self._results_view(desk), desk.last.knobs.seed, "")

    def show(self, desk: Desk, choice: str | None, whole: bool = False) -> tuple:
        return self._results_view(desk, int(choice) - 1 if choice else 0, bool(whole))

    def keep(self, desk: Desk, choice: str | None, region: str) -> tuple:
        desk.keep(int(choice) - 1 if choice else 0)
        return (*self._piece_view(desk, region), *self._results_view(desk)[1:])

    def undo(self, desk: Desk, region: str) -> tuple:
        desk.undo()
        return (*self._piece_view(desk, region), *self._results_view(desk)[1:])

    def compare(self, desk: Desk, a: str | None, b: str | None) -> tuple:
        wav = {str(k + 1): v.wav or None for k, v in enumerate(desk.variations)}
        return wav.get(a or ""), wav.get(b or "")

    def prefer(self, desk: Desk, a: str | None, b: str | None, choice: str, who: str) -> str:
        if not (a and b):
            raise StudioError("make at least two variations to compare")
        stored = self.studio.prefer(desk, int(a) - 1, int(b) - 1, choice, who)
        said = {"a": f"variation {a} is better", "b": f"variation {b} is better", "tie": "a tie"}[choice]
        return f"Stored choice #{stored} ({said}) in {self.studio.store.path}; {self.studio.store.count()} in all."
