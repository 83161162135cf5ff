"""Post-processing, the key finder, piano rolls and the WAV render, on constructed and real scores."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from symusic import Note, Score, Track

from conftest import make_score
from harmonixr.generation import postprocess as pp
from harmonixr.generation.outputs import PostProcess, output_paths
from harmonixr.visualization.audio import render_audio, write_wav
from harmonixr.visualization.pianoroll import bar_ticks, plot_pianoroll

SCALE_C = [60, 62, 64, 65, 67, 69, 71, 72]


def scale_piece(tonic: int, steps: list[int], drums: bool = True) -> Score:
    melody = [(k * 480, 480, tonic + s, 80) for k, s in enumerate(steps * 2)]
    tracks = [(0, False, melody)]
    if drums:
        tracks.append((0, True, [(k * 480, 120, 36, 100) for k in range(8)]))
    return make_score(tracks)


@pytest.mark.parametrize(("tonic", "mode"), [(0, "major"), (7, "major"), (9, "minor"), (2, "minor")])
def test_key_finder_names_the_key_of_a_scale_with_its_cadence(tonic, mode) -> None:
    steps = [0, 2, 4, 5, 7, 9, 11, 12, 7, 0] if mode == "major" else [0, 2, 3, 5, 7, 8, 10, 12, 7, 0]
    assert pp.estimate_key(scale_piece(60 + tonic, steps)) == pp.Key(tonic, mode)


def test_key_parse() -> None:
    assert pp.Key.parse("Bb minor") == pp.Key(10, "minor") and pp.Key.parse("f#") == pp.Key(6, "major")
    assert str(pp.Key.parse("eb major")) == "D# major"
    with pytest.raises(ValueError):
        pp.Key.parse("H dorian")


def test_transpose_moves_melody_not_drums_and_keeps_the_input() -> None:
    score = scale_piece(60, [0, 2, 4])
    before = score.copy()
    out = pp.transpose(score, 5)
    assert [n.pitch for n in out.tracks[0].notes] == [p + 5 for p in (n.pitch for n in score.tracks[0].notes)]
    assert [n.pitch for n in out.tracks[1].notes] == [36] * 8
    assert score.dumps_midi() == before.dumps_midi()
    high = pp.transpose(make_score([(0, False, [(0, 480, 125, 80)])]), 7)
    assert high.tracks[0].notes[0].pitch == 120  # 132 folded down an octave


def test_snap_to_scale_and_quantize_and_velocity() -> None:
    chromatic = make_score([(0, False, [(k * 500 + 7, 470, 60 + k, 10 + 10 * k) for k in range(12)])])
    snapped = pp.snap_to_scale(chromatic, pp.Key(0, "major"))
    assert {n.pitch % 12 for n in snapped.tracks[0].notes} <= {0, 2, 4, 5, 7, 9, 11}
    assert all(abs(a.pitch - b.pitch) <= 1 for a, b in zip(chromatic.tracks[0].notes, snapped.tracks[0].notes))
    grid = pp.quantize(chromatic, 4)
    assert all(n.time % 120 == 0 and n.duration % 120 == 0 and n.duration > 0 for n in grid.tracks[0].notes)
    loud = pp.scale_velocity(chromatic, 2.0)
    assert max(n.velocity for n in loud.tracks[0].notes) == 127 and loud.tracks[0].notes[0].velocity == 20
    slow = pp.scale_tempo(chromatic, 0.5)
    assert slow.tempos[0].qpm == pytest.approx(chromatic.tempos[0].qpm / 2)
    chain = PostProcess(transpose=2, quantize=4, snap_to_scale="C major").apply(chromatic)
    assert {n.pitch % 12 for n in chain.tracks[0].notes} <= {0, 2, 4, 5, 7, 9, 11}


def test_output_paths() -> None:
    assert [p.name for p in output_paths("a/b.mid", 1)] == ["b.mid"]
    assert [p.name for p in output_paths("a/b", 3)] == ["b-1.mid", "b-2.mid", "b-3.mid"]


def test_piano_roll_and_wav_of_a_real_piece(music21_midi, tmp_path) -> None:
    score = Score(str(music21_midi["bach/bwv66.6"]))
    png = plot_pianoroll(score, tmp_path / "roll.png", region=(1920, 3840), before=score, view=(0, 9600))
    assert png.stat().st_size > 20_000
    bars = bar_ticks(score)
    assert bars[:3] == [0, 1920, 3840]  # 4/4 at 480 ticks per quarter
    audio = render_audio(score)
    seconds = score.to("second").end()
    assert audio.shape[1] == 2 and abs(len(audio) / 44100 - (seconds + 1.0)) < 0.05
    assert np.sqrt((audio**2).mean()) > 1e-3, "the render is not silent"
    path = write_wav(score, tmp_path / "x.wav")
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 44100)


def test_rolls_give_every_track_its_colour_drums_as_hits_and_open_on_the_region(music21_midi, tmp_path) -> None:
    from harmonixr.visualization.colors import track_color
    from harmonixr.visualization.interactive import pianoroll_figure, view_around

    assert len({track_color(k) for k in range(64)}) == 64  # no two tracks of a piece share a colour
    score = Score(str(music21_midi["bach/bwv66.6"]))
    drums = Track("drums", is_drum=True)
    drums.notes.extend([Note(t * 480, 1, 36, 100) for t in range(16)])  # hits one tick long
    score.tracks.append(drums)
    bars = bar_ticks(score)
    view = view_around(score, (bars[4], bars[6]))
    assert view == (bars[2], bars[8])  # bars 5-6 with 2 bars on each side
    assert view_around(score, (0, bars[1])) == (0, bars[3])  # no bars before the first
    fig = pianoroll_figure(score, score, (bars[4], bars[6]), view=view)
    assert tuple(fig.layout.xaxis.range) == (bars[2] / 480, bars[8] / 480)
    hits = [t for t in fig.data if t.mode == "markers"]
    assert len(hits) == 2 and all(len(t.x) == 16 for t in hits)  # the drum track, on both rows
    lines = [t for t in fig.data[:5] if t.mode == "lines"]
    assert len({t.line.color for t in lines} | {hits[0].marker.color}) == 5
    assert pianoroll_figure(score).layout.xaxis.range is None  # no view: the whole piece
    assert plot_pianoroll(score, tmp_path / "drums.png", before=score).stat().st_size > 20_000
