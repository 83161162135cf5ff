"""The command line's habits: bad values refused by flag before the model loads (exit code 2, one
line on stderr, no traceback), ``-`` for stdin and stdout, ``--version``, defaults in ``--help``,
and what the MIDI parser repaired said when a file is opened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from symusic import Score

from conftest import assert_kept, out_of_range_midi
from harmonixr import __version__
from harmonixr.cli import build_parser, main
from harmonixr.generation.demo import example_score
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.visualization.pianoroll import bar_ticks
from harmonixr.web.studio import Knobs

CLI = [sys.executable, "-m", "harmonixr.cli"]


@pytest.fixture(scope="module")
def chorale(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "chorale.mid"  # 10 bars, 4 voices
    example_score("chorale").dump_midi(str(path))
    return path


FLAG_ERRORS = [  # (arguments, what the one line says): all refused before any model is loaded
    (["generate", "--tempo", "0"], "--tempo 0.0: a tempo from 10 to 1000 bpm"),
    (["generate", "-n", "1000"], "-n/--variations 1000: ask for 1 to 64"),
    (["generate", "-n", "0"], "-n/--variations 0: ask for 1 to 64"),
    (["generate", "--bars", "500"], "--bars 500: ask for 1 to 128 bars"),
    (["generate", "--top-p", "2"], "top-p 2.0: must be in (0, 1]"),
    (["generate", "--top-k", "-5"], "top-k -5: must be >= 0"),
    (["generate", "--seed", str(10**20)], "--seed 100000000000000000000: a seed is a whole number"),
    (["generate", "--instruments", "0,300"], "--instruments 300: GM programs are 0 to 127"),
    (["generate", "--prompt", "slow and fast"], "two values of tempo"),
    (["generate", "-n", "2", "-o", "-"], "-o -: stdout takes one MIDI file"),
    (["generate", "--chords", "Am H C"], "chord 'H': expected a root A-G"),
    (["add-track", "{chorale}", "--program", "200"], "--program 200: a General MIDI program is 0 to 127"),
    (["infill", "{chorale}", "--bars", "3-4", "--tracks", "0"], "--tracks 0: tracks count from 1"),
    (["infill", "{chorale}", "--bars", "three"], "'three'"),
    (["infill", "{chorale}", "--bars", "3-4", "--control", "1:loudness=120,vel_high=100"],
     "--control 1: loudness 120 is outside its velocity range 1-100"),
    (["infill", "{chorale}", "--bars", "3-4", "--control", "2:rhythm=2"], "--control 2: rhythm 2 is neither 1 (keep the rhythm"),
]
PIECE_ERRORS = [  # refused once the piece is read: its bars decide
    (["infill", "{chorale}", "--bars", "30-40"], "the region starts at bar 30, after the piece's 10 bars"),
    (["infill", "{chorale}", "--bars", "8-14"], "the region ends in bar 14, after the piece's 10 bars"),
    (["continue", "{chorale}", "--after-bar", "500"], "--after-bar 500: the piece has 10 bars"),
    (["infill", "{chorale}", "--span", "3:5-4:1"], "region '3:5-4:1': bar 3 has 4 beats"),  # was 0 notes, exit 1
    # a control is never ignored (these were)
    (["infill", "{chorale}", "--bars", "3-4", "--control", "9:density=2"], "control for track 9: the piece has 4 tracks"),
    (["infill", "{chorale}", "--bars", "3-4", "--tracks", "2", "--control", "1:density=2"],
     "control for track 1: the region does not rewrite it"),
]


@pytest.mark.parametrize("args, said", FLAG_ERRORS + PIECE_ERRORS)
def test_bad_values_are_one_line_naming_the_flag_with_exit_code_2(args, said, chorale, tmp_path, capsys,
                                                                   monkeypatch) -> None:
    from harmonixr.generation import modes

    if (args, said) in FLAG_ERRORS:  # the flags are checked before the model loads
        monkeypatch.setattr(modes.Generator, "__init__", lambda *a, **k: pytest.fail("the model was loaded"))
    argv = [a.format(chorale=chorale) for a in args]
    out = tmp_path / "x.mid"
    assert main(argv if "-o" in argv else [*argv, "-o", str(out)]) == 2
    got = capsys.readouterr()
    assert got.out == "" and got.err.startswith("error:") and said in got.err
    assert "Traceback" not in got.err and len(got.err.strip().splitlines()) <= 2  # rich may wrap one line
    assert not out.exists()


def test_wav_without_a_renderer_is_refused_before_anything_is_loaded_or_written(chorale, tmp_path, capsys,
                                                                              monkeypatch) -> None:
    """``pip install .`` cannot bring TinySoundFont: --wav says so at once, and no MIDI is left half-done."""
    from harmonixr.generation import modes

    monkeypatch.setitem(sys.modules, "tinysoundfont", None)  # the import fails, as where it is not installed
    monkeypatch.setattr(modes.Generator, "__init__", lambda *a, **k: pytest.fail("the model was loaded"))
    out = tmp_path / "x.mid"
    assert main(["infill", str(chorale), "--bars", "3-4", "--wav", "-o", str(out)]) == 2
    got = capsys.readouterr()
    assert got.err.startswith("error:") and "TinySoundFont" in got.err and not out.exists()


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    """Only the project's own errors become "error: ..."; anything else is a bug and is raised."""
    import harmonixr.cli_generation as verbs

    monkeypatch.setattr(verbs, "run_generate", lambda args, console: {}["bug"])
    from harmonixr.cli import build_parser  # noqa: F401 - the parser binds run_generate when built

    with pytest.raises(KeyError):
        main(["generate", "-o", "x.mid"])


def test_version_help_defaults_and_short_out(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"harmonixr {__version__}"
    with pytest.raises(SystemExit):
        main(["infill", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "-o OUT, --out OUT" in shown and "(default: 0.95)" in shown and "(default: piece)" in shown


@pytest.mark.parametrize("verb", ["generate", "continue", "infill", "add-track", "refine"])
def test_the_sampling_defaults_are_the_libraries_own(verb, chorale) -> None:
    """A user gets the same notes from ``harmonixr VERB --seed S`` and from the Python API or the
    studio with their defaults: the flags' defaults are :class:`SamplingConfig`'s."""
    given = {"generate": [], "add-track": [str(chorale), "--program", "33"]}.get(verb, [str(chorale)])
    args = build_parser().parse_args([verb, *given, "-o", "x.mid"])
    default = SamplingConfig()
    assert (args.temperature, args.top_k, args.top_p, args.min_p, args.max_notes) == \
        (default.temperature, default.top_k, default.top_p, default.min_p, default.max_notes)
    assert (Knobs().temperature, Knobs().top_p) == (default.temperature, default.top_p)


def test_midi_through_stdin_and_stdout(chorale, tmp_path) -> None:
    """``infill - ... -o -`` in a real pipe: MIDI bytes in and out, the messages on stderr."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    run = subprocess.run([*CLI, "infill", "-", "--bars", "3-4", "--style", "chorale", "-o", "-"],
                         input=chorale.read_bytes(), capture_output=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr.decode()
    made = Score.from_midi(run.stdout)
    bars = bar_ticks(Score(str(chorale)))
    assert assert_kept(Score(str(chorale)), made, bars[2], bars[4], set(range(4))) > 0
    assert b"-> <stdout>" in run.stderr
    broken = subprocess.run([*CLI, "infill", "-", "--bars", "3-4", "-o", str(tmp_path / "x.mid")],
                            input=chorale.read_bytes()[:200], capture_output=True, env=env, timeout=300)
    assert broken.returncode == 2 and broken.stderr.decode().startswith("error: <stdin>: truncated")


def test_what_the_parser_repaired_is_said(tmp_path, capsys) -> None:
    bad = out_of_range_midi(tmp_path / "loud.mid")
    with pytest.raises(RuntimeError):
        Score(str(bad))  # symusic refuses it as it is
    assert main(["continue", str(bad), "--bars", "1", "-o", str(tmp_path / "more.mid")]) in (0, 1)
    said = capsys.readouterr().out
    assert f"note: {bad}: values outside MIDI's 0-127 were clamped into range (the first: velocity=150)" in \
        " ".join(said.split())
    kept = Score(str(tmp_path / "more.mid"))
    assert [n.velocity for n in kept.tracks[0].notes[:2]] == [100, 127]
