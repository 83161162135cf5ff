"""Writing results: post-processing, MIDI, piano-roll PNG and WAV, one call for CLI, demo and UI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from symusic import Score

from harmonixr.generation import postprocess as pp
from harmonixr.generation.requests import Result

VIEW_MARGIN_BARS = 4  # bars shown on each side of the region in piano rolls and excerpts


@dataclass(frozen=True)
class PostProcess:
    """Applied to a finished score, in this order; the defaults change nothing."""

    transpose: int = 0
    tempo_scale: float = 1.0
    velocity_scale: float = 1.0
    quantize: int = 0  # steps per quarter note (0: no quantization)
    snap_to_scale: str | None = None  # a key ("C major") or "auto" (estimated)

    def apply(self, score: Score) -> Score:
        if self.transpose:
            score = pp.transpose(score, self.transpose)
        if self.tempo_scale != 1.0:
            score = pp.scale_tempo(score, self.tempo_scale)
        if self.velocity_scale != 1.0:
            score = pp.scale_velocity(score, self.velocity_scale)
        if self.quantize:
            score = pp.quantize(score, self.quantize)
        if self.snap_to_scale:
            key = None if self.snap_to_scale == "auto" else pp.Key.parse(self.snap_to_scale)
            score = pp.snap_to_scale(score, key)
        return score


def output_paths(out: str | Path, count: int) -> list[Path]:
    """``out`` for one result; ``out-1.mid``, ``out-2.mid`` ... for several."""
    out = Path(out)
    if out.suffix.lower() not in (".mid", ".midi"):
        out = out.with_suffix(".mid")
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{k + 1}{out.suffix}") for k in range(count)]


def view_ticks(score: Score, result: Result, margin_bars: int = VIEW_MARGIN_BARS) -> tuple[int, int]:
    """The region with ``margin_bars`` bars of 4/4 on each side (the whole piece when the region is)."""
    bar = score.ticks_per_quarter * 4
    end = result.end_tick if result.end_tick is not None else score.end()
    return max(0, result.start_tick - margin_bars * bar), min(score.end(), end + margin_bars * bar)


def cut(score: Score, view: tuple[int, int]) -> Score:
    """The part of ``score`` inside ``view`` (ticks), moved to start at 0 (tempo in force kept)."""
    return score.clip(*view, clip_end=False).shift_time(-view[0])


def write_result(result: Result, path: str | Path, before: Score | None = None, png: bool = False,
                 wav: bool = False, post: PostProcess = PostProcess(), excerpt: bool = False,
                 max_audio_seconds: float | None = None) -> list[Path]:
    """Write ``result`` as MIDI (and a PNG beside the original, and a WAV); returns the files.

    ``excerpt``: the WAV holds only the region and its margins (the MIDI is always whole);
    ``max_audio_seconds``: and at most that long.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    score = post.apply(result.score)
    score.dump_midi(str(path))
    written = [path]
    view = view_ticks(score, result)
    region = (result.start_tick, result.end_tick)
    if png:
        from harmonixr.visualization.pianoroll import plot_pianoroll

        title = f"{result.mode}: {result.notes} notes generated" + ("" if result.finished else " (cut at the note budget)")
        written.append(plot_pianoroll(score, path.with_suffix(".png"), region, before, title, view))
    if wav:
        from harmonixr.visualization.audio import write_wav

        written.append(write_wav(cut(score, view) if excerpt else score, path.with_suffix(".wav"),
                                 max_seconds=max_audio_seconds))
    return written
