"""The web studio's operations without a browser: what the page does, on real pieces, with its limits."""

from __future__ import annotations

import json
import sqlite3
import sys
import wave
from dataclasses import replace
from pathlib import Path

import pytest
from symusic import Note, Score, Track

from conftest import assert_kept, out_of_range_midi
from harmonixr.generation.demo import example_score
from harmonixr.generation.modes import Generator
from harmonixr.web.config import StudioConfig, StudioLimits
from harmonixr.web.page import control_rows
from harmonixr.web.studio import Desk, Knobs, NewPiece, Request, Studio, StudioError

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "harmonixr-small"


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator(SHIPPED)


def make_studio(gen: Generator, tmp_path: Path, **limits: object) -> Studio:
    config = StudioConfig(prefs=str(tmp_path / "prefs.sqlite"), limits=StudioLimits(**limits))
    return Studio(config, gen, tmp_path / "studio")


def chorale_desk(studio: Studio) -> Desk:
    desk = Desk()
    desk.open(studio.open_example("chorale"))
    return desk


def test_infill_try_again_keep_and_undo(gen, tmp_path) -> None:
    studio = make_studio(gen, tmp_path)
    desk = chorale_desk(studio)
    original, first = desk.take.score(), desk.take
    made = studio.run(desk, Request("infill", "3-4", knobs=Knobs(seed=5, variations=2)))
    assert len(made) == 2 and desk.variations == made
    for v in made:
        assert v.region == (studio.region_ticks(first, "3-4"))
        assert assert_kept(original, v.score(), *v.region, set(range(4))) == v.notes > 0
        with wave.open(v.wav) as audio:  # the region with bars around it, rendered
            assert audio.getnframes() / audio.getframerate() > 4.0
        assert Path(v.midi).is_relative_to(studio.workdir) and Path(v.wav).is_relative_to(studio.workdir)
    again = studio.again(desk)
    assert desk.last.knobs.seed == 7  # the next seeds: 5 + 2 variations
    assert {Path(a.midi).read_bytes() for a in again}.isdisjoint(Path(m.midi).read_bytes() for m in made)
    kept = desk.keep(1)
    assert kept.midi == again[1].midi and desk.history == [first] and desk.variations == []
    assert desk.undo() == first and desk.history == []
    with pytest.raises(StudioError, match="nothing to undo"):
        desk.undo()


def test_same_seed_same_midi(gen, tmp_path) -> None:
    studio = make_studio(gen, tmp_path)
    desk = chorale_desk(studio)
    request = Request("infill", "5:3-7:1", tracks=(1,), knobs=Knobs(seed=3, variations=2))
    a = [Path(v.midi).read_bytes() for v in studio.run(desk, request)]
    b = [Path(v.midi).read_bytes() for v in studio.run(desk, request)]
    assert a == b and a[0] != a[1]


@pytest.mark.parametrize("request_", [
    Request("continue", bars=2),
    Request("add-track", "1-2", program=33),
    Request("add-track", "1-2", program=-1),  # drums (the instrument list's "drums")
    Request("generate", bars=2, new=NewPiece("folk-celtic", (73,), 110.0, (6, 8))),
], ids=lambda r: f"{r.op}{r.program}" if r.op == "add-track" else r.op)
def test_every_operation_writes_heard_and_downloadable_results(gen, tmp_path, request_) -> None:
    studio = make_studio(gen, tmp_path)
    desk = chorale_desk(studio)
    made = studio.run(desk, replace(request_, knobs=Knobs(variations=1)))
    score = made[0].score()
    assert score.note_num() > 0 and made[0].notes > 0
    if request_.op == "add-track":
        added = score.tracks[4]
        assert len(score.tracks) == 5 and (added.is_drum if request_.program < 0 else added.program == 33)
    if request_.op == "generate":
        assert [(t.numerator, t.denominator) for t in score.time_signatures] == [(6, 8)]
        assert desk.request["controls"], "the controls the model saw are stored with a choice"
    assert Path(made[0].wav).stat().st_size > 44


@pytest.mark.slow
def test_a_new_piece_on_an_empty_desk_can_be_shown_and_kept(gen, tmp_path) -> None:
    from harmonixr.web.page import Page

    studio, desk = make_studio(gen, tmp_path), Desk()
    made = studio.run(desk, Request("generate", bars=2, new=NewPiece("folk-celtic", (73,)), knobs=Knobs(variations=1)))
    view = Page(studio)._results_view(desk)
    assert view[3] == made[0].wav and view[4] == [made[0].midi, made[0].wav]
    assert made[0].source.startswith("chords ") and ": " in made[0].source  # the chord plan it leaned to
    kept = desk.keep(0)
    assert (kept.midi, kept.name, kept.style) == (made[0].midi, "new folk-celtic piece", "folk-celtic")
    assert desk.history == []


def test_a_choice_lands_in_the_sqlite_store(gen, tmp_path) -> None:
    studio = make_studio(gen, tmp_path)
    desk = chorale_desk(studio)
    made = studio.run(desk, Request("infill", "2-3", knobs=Knobs(variations=3)))
    stored = studio.prefer(desk, 2, 0, "a", "ann")
    with sqlite3.connect(tmp_path / "prefs.sqlite") as db:
        row = db.execute("SELECT id, who, choice, prompt, midi_a, midi_b FROM comparisons").fetchone()
    assert row[:3] == (stored, "ann", "a")
    prompt = json.loads(row[3])
    assert (prompt["op"], prompt["region"], prompt["variations"], prompt["style"]) == ("infill", "2-3", [3, 1], "chorale")
    assert (row[4], row[5]) == (Path(made[2].midi).read_bytes(), Path(made[0].midi).read_bytes())
    with pytest.raises(StudioError, match="two different"):
        studio.prefer(desk, 1, 1, "b")


def write_tracks(path: Path, count: int) -> Path:
    score = Score(480)
    for k in range(count):
        track = Track(f"t{k}", k % 100)
        track.notes.append(Note(0, 480, 60 + k % 12, 80))
        score.tracks.append(track)
    score.dump_midi(str(path))
    return path


def test_uploads_are_checked_and_stay_in_the_studio_folder(gen, tmp_path) -> None:
    studio = make_studio(gen, tmp_path, max_upload_bytes=64 * 1024, max_tracks=8)
    good = tmp_path / "mine.mid"
    example_score("chorale").dump_midi(str(good))
    take = studio.open_upload(good, "../../outside/mine.mid", "chorale")  # a hostile name is only shown
    assert take.name == "mine.mid" and Path(take.midi).parent == studio.workdir / "uploads"
    assert Path(take.midi).name != "mine.mid" and not (tmp_path / "outside").exists()
    assert take.score().note_num() == example_score("chorale").note_num()

    big = tmp_path / "big.mid"
    big.write_bytes(good.read_bytes() + b"\0" * 70_000)
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd\0\0\0\x06\0\x01\0\x02\x01\xe0MTrk\0\0\x10\0\0\x90\x40")
    cases = {
        big: r"big.mid: 71,\d{3} bytes is more than the 65,536",
        corrupt: "corrupt.mid: truncated",
        write_tracks(tmp_path / "many.mid", 12): "many.mid: too many tracks",
        tmp_path / "notes.txt": "notes.txt: not a MIDI file name",
    }
    (tmp_path / "notes.txt").write_text("hello")
    for path, message in cases.items():
        with pytest.raises(StudioError, match=message):
            studio.open_upload(path, path.name)
    assert sorted(p.name for p in (studio.workdir / "uploads").iterdir()) == [Path(take.midi).name]


def test_requests_beyond_the_limits_are_refused(gen, tmp_path) -> None:
    studio = make_studio(gen, tmp_path)
    with pytest.raises(StudioError, match="open a piece"):
        studio.run(Desk(), Request("infill", "1-2"))
    desk = chorale_desk(studio)
    refused = {
        Request("infill", "1-2", knobs=Knobs(variations=9)): "variations: 1 to 4",
        Request("continue", bars=100): "new bars: 1 to 32",
        Request("infill", "1-40"): "more than 16 bars",
        Request("infill", "8-2"): "is empty",
        Request("infill", "3:5-4:1"): "bar 3 has 4 beats",
        Request("infill", ""): "choose the bars",
        Request("dance"): "unknown operation",
    }
    for request, message in refused.items():
        with pytest.raises(StudioError, match=message):
            studio.run(desk, request)
    quick = make_studio(gen, tmp_path / "quick", max_generation_s=0.0)
    with pytest.raises(StudioError, match="longer than the 0 s allowed"):
        quick.run(chorale_desk(quick), Request("infill", "3-4", source="sampled"))
    assert gen.sampler.deadline is None  # the limit ends with the request


def test_tiny_uploads_cannot_fill_the_disk(gen, tmp_path) -> None:
    """A 36-byte MIDI of one note held 9.2 minutes, uploaded again and again: its audio is cut at
    ``max_audio_seconds`` and the studio's folder stays under ``max_workdir_mb``, oldest files going first."""
    held = tmp_path / "held.mid"
    score = Score(480)
    score.tracks.append(Track("held", 0))
    score.tracks[0].notes.append(Note(0, int(9.2 * 60 * 2 * 480), 60, 90))  # 120 bpm: 2 quarters a second
    score.dump_midi(str(held))
    assert held.stat().st_size < 64
    (tmp_path / "studio" / "results").mkdir(parents=True)
    (tmp_path / "studio" / "results" / "left-over.wav").write_bytes(b"\0" * 1000)
    studio = make_studio(gen, tmp_path, max_audio_seconds=20.0, max_workdir_mb=6)
    assert not (studio.workdir / "results" / "left-over.wav").exists()  # what an earlier run left is gone
    sizes = []
    for _ in range(8):
        wav = Path(studio.audio(studio.open_upload(held, "held.mid")))
        with wave.open(str(wav)) as f:
            assert f.getnframes() / f.getframerate() <= 20.0 + 1.0 + 0.01  # the cap, and the release tail
        sizes.append(sum(p.stat().st_size for p in studio.workdir.rglob("*") if p.is_file()))
    assert max(sizes) <= 6 * 1024 * 1024
    assert len(list((studio.workdir / "uploads").glob("*.wav"))) < 8  # the oldest went


def test_the_prompt_and_the_per_track_controls_steer_an_infill(gen, tmp_path, sampled_rules) -> None:
    """The table shows each track's controls as inferred around the region; a value set there (a
    track told to be silent) and the prompt's words reach the fill, and the prompt's reading is kept."""
    studio = make_studio(gen, tmp_path)
    desk = chorale_desk(studio)
    rows = studio.inferred_controls(desk.take, "3-4")
    assert [r[0] for r in rows] == [1, 2, 3, 4] and all(r[2] > 0 and 1 <= r[3] <= 127 for r in rows)
    assert all(r[5] == "kept" for r in rows)  # every voice sings on both sides: each keeps its rhythm
    request = Request("infill", "3-4", knobs=Knobs(variations=1), prompt="very loud",
                      controls=((1, 0.0, None),))  # track 2 silent
    v = studio.run(desk, request)[0]
    start, end = v.region
    made = v.score()
    assert not [n for n in made.tracks[1].notes if start <= n.time < end]
    others = [n.velocity for k in (0, 2, 3) for n in made.tracks[k].notes if start <= n.time < end]
    assert others and "'very loud' -> loudness 115" in desk.parsed
    with pytest.raises(StudioError, match="two values of tempo"):
        studio.run(desk, replace(request, prompt="slow and fast"))
    quiet = studio.run(desk, Request("infill", "3-4", knobs=Knobs(variations=1),
                                     controls=control_rows([[1, "Soprano", None, None, "30-50"]])))[0]
    soprano = [n.velocity for n in quiet.score().tracks[0].notes if start <= n.time < end]
    assert soprano and all(30 <= v <= 50 for v in soprano)  # the velocity range is a mask
    with pytest.raises(StudioError, match="loudness 115 is outside its velocity range 30-50"):
        studio.run(desk, Request("infill", "3-4", knobs=Knobs(variations=1), prompt="very loud",
                                 controls=control_rows([[1, "Soprano", None, None, "30-50"]])))
    with pytest.raises(StudioError, match="not LOW-HIGH"):
        control_rows([[1, "Soprano", None, None, "loud"]])
    assert control_rows([[2, "Alto", None, None, "", "Free"]])[0].rhythm is False
    with pytest.raises(StudioError, match="track 2: rhythm 'swing' is neither 'kept' nor 'free'"):
        control_rows([[2, "Alto", None, None, "", "swing"]])
    studio.run(desk, Request("infill", "3-4", knobs=Knobs(variations=1), source="sampled",
                             controls=control_rows([[2, "Alto", None, None, "", "free"]])))
    piece = studio.piece(desk.take)  # a rhythm set free in the table reaches the sampler; the others stay kept
    assert sorted(piece.track_of(slot) for slot, _ in sampled_rules[-1].track_rhythms) == [0, 2, 3]


def test_the_page_zooms_on_the_region_restyles_the_piece_and_sizes_a_new_piece(gen, tmp_path) -> None:
    from harmonixr.visualization.interactive import view_around
    from harmonixr.web.page import Page, controls_table, table_key
    from harmonixr.web.studio import ControlRow

    studio = make_studio(gen, tmp_path)
    page, desk = Page(studio), chorale_desk(studio)
    studio.run(desk, Request("infill", "5-6", knobs=Knobs(variations=1)))
    zoomed, whole = page.show(desk, "1")[2], page.show(desk, "1", True)[2]
    v = desk.variations[0]
    lo, hi = view_around(v.score(), v.region)
    assert tuple(zoomed.layout.xaxis.range) == (lo / 480, hi / 480) and whole.layout.xaxis.range is None
    assert page.show(desk, "1", True)[-1] is True  # the box stays ticked

    assert desk.take.style == "chorale"
    shown = page.restyle(desk, "folk-german", "5-6")
    assert desk.take.style == "folk-german" and "style folk-german" in shown[4] and shown[5] == "folk-german"
    assert studio.piece(desk.take).style == "folk-german"  # what the model is told from now on
    studio.run(desk, Request("infill", "5-6", knobs=Knobs(variations=1)))
    assert desk.request["style"] == "folk-german"

    values = dict(op="generate", region="", tracks=[], bars=4, program=0, style="pop", instruments=[0], tempo=100,
                  meter="4/4", density=0, loudness=0, temperature=1.0, top_p=0.95, seed=0, variations=1)
    assert page.request(**values, length=3).bars == 3  # a new piece has a length of its own
    assert page.request(**{**values, "op": "continue"}, length=3).bars == 4  # continue: its new bars

    # the controls table counts only for the region it shows, named in its first header, which
    # travels with its cells: a click before the new region's table was drawn asks for none of the
    # old values
    shown = page.mark(desk, "3-4", [])[1]
    assert shown.columns[0] == table_key("3-4", []) == "track (bars 3-4)"
    assert shown.values.tolist() == [[r[0], *r[1:]] for r in studio.inferred_controls(desk.take, "3-4")]
    assert page.mark(desk, "3-4", [2, 0])[1].columns[0] == "track (bars 3-4, tracks 1 3)"
    table = [[1, "Soprano", 0, 80, "", "kept"]]
    infill = {**values, "op": "infill", "region": "3-4"}
    assert page.request(**infill, controls=controls_table(table, "3-4", [])).controls == (
        ControlRow(0, 0.0, 80.0, None, None, True),)
    assert page.request(**infill, controls=controls_table(table, "5-8", [])).controls == ()
    assert page.request(**{**infill, "tracks": [1]}, controls=controls_table(table, "3-4", [])).controls == ()
    assert page.request(**infill, controls=controls_table([], "3-4", [])).controls == ()  # the empty table's row
    assert page.request(**infill, controls=table).controls != ()  # a caller without headers (the API) is taken at its word
    edited = controls_table(table, "5-8", []).rename(columns={table_key("5-8", []): "my track"})
    assert page.request(**infill, controls=edited).controls != ()  # so is a header the visitor edited


def test_an_upload_the_parser_repaired_says_so(gen, tmp_path) -> None:
    from harmonixr.web.page import Page

    studio = make_studio(gen, tmp_path)
    desk = Desk()
    desk.open(studio.open_upload(out_of_range_midi(tmp_path / "loud.mid"), "loud.mid"))
    assert desk.take.repairs == ("values outside MIDI's 0-127 were clamped into range (the first: velocity=150)",)
    summary = Page(studio)._piece_view(desk)[4]
    assert "**Repaired as it was read:** values outside MIDI's 0-127 were clamped" in summary


def test_the_studio_works_without_an_audio_renderer(gen, tmp_path, monkeypatch) -> None:
    """Without TinySoundFont (a plain ``pip install .``) pieces open, variations are made and
    downloaded as MIDI, and each says that there is no audio."""
    from harmonixr.web.page import Page

    monkeypatch.setitem(sys.modules, "tinysoundfont", None)  # the import fails, as where it is not installed
    studio = make_studio(gen, tmp_path)
    desk = chorale_desk(studio)
    assert not studio.can_play and studio.audio(desk.take) is None
    v = studio.run(desk, Request("infill", "3-4", knobs=Knobs(variations=1)))[0]
    assert v.wav == "" and Path(v.midi).is_file() and v.score().note_num() > 0 and "no audio" in v.notice
    shown = Page(studio).show(desk, "1")
    assert shown[3] is None and shown[4] == [v.midi]  # no player, the MIDI download only
