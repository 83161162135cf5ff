"""Training: the schedule, a killed run resumes exactly, fine-tuning, DDP on two CPU processes, the CLI."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harmonixr.config import PrepareConfig, TokenizerSpec
from harmonixr.models.checkpoint import CheckpointError, load_checkpoint, read_config, start_from
from harmonixr.tokens.vocab import NoteVocab
from harmonixr.training.config import OptimConfig
from harmonixr.training.trainer import lr_at
from harmonixr.visualization.curves import plot_curves

HARMONIXR = [sys.executable, "-m", "harmonixr"]


def write_config(folder: Path, corpus: Path, steps: int, **run) -> Path:
    config = {
        "model": {"d_model": 32, "n_layers": 2, "n_heads": 4, "ffn_hidden": 64, "head_hidden": 32, "dropout": 0.1},
        "data": {"folders": [str(corpus)], "block_size": 128, "batch_size": 4, "val_batches": 2},
        "optim": {"warmup_steps": 5},
        "run": {"out": str(folder / "run"), "max_steps": steps, "eval_every": 10, "checkpoint_every": 5,
                "log_every": 1, "threads": 1, "tensorboard": False, "precision": "fp32", **run},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def losses(run: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert len(steps) == len(set(steps)), "a resumed run must not log a step twice"
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def test_lr_warms_up_then_decays_to_the_floor() -> None:
    cfg = OptimConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10)
    assert lr_at(0, cfg, 100) == pytest.approx(1e-4)
    assert lr_at(9, cfg, 100) == pytest.approx(1e-3)
    assert lr_at(100, cfg, 100) == pytest.approx(1e-4)
    values = [lr_at(s, cfg, 100) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert lr_at(20, cfg, 10_000, time_done=1.0) == pytest.approx(1e-4), "a spent time budget ends the schedule"


@pytest.mark.slow
def test_a_killed_run_resumes_where_it_stopped(training_corpus: Path, tmp_path: Path) -> None:
    steps = 120
    reference = write_config(tmp_path / "a", training_corpus, steps, tensorboard=True)
    subprocess.run([*HARMONIXR, "train", "--config", str(reference), "--quiet"], check=True, timeout=300)
    expected = losses(tmp_path / "a" / "run")
    assert sorted(expected) == list(range(1, steps + 1))
    assert any((tmp_path / "a" / "run" / "tensorboard").iterdir()), "TensorBoard events are written"
    png = plot_curves([tmp_path / "a" / "run"], tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    config = write_config(tmp_path / "b", training_corpus, steps)
    state = tmp_path / "b" / "run" / "latest" / "trainer_state.json"
    process = subprocess.Popen([*HARMONIXR, "train", "--config", str(config), "--quiet"])
    deadline = time.time() + 240
    while time.time() < deadline:
        try:
            if json.loads(state.read_text())["step"] >= 20:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = json.loads(state.read_text())["step"]
    assert killed_at < steps, "the run finished before it could be killed"

    subprocess.run([*HARMONIXR, "train", "--config", str(config), "--quiet"], check=True, timeout=300)
    resumed = losses(tmp_path / "b" / "run")
    assert sorted(resumed) == list(range(1, steps + 1))
    for step in range(1, steps + 1):  # the same curve, to the last bit, before and after the kill
        assert resumed[step] == pytest.approx(expected[step], rel=1e-6, abs=1e-7), f"step {step}"
    assert read_config(tmp_path / "b" / "run" / "latest")["step"] == steps
    assert (tmp_path / "b" / "run" / "best" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_fine_tune_starts_from_the_weights_it_names(training_corpus: Path, tmp_path: Path) -> None:
    first = write_config(tmp_path / "pre", training_corpus, 40, checkpoint_every=40, eval_every=40)
    subprocess.run([*HARMONIXR, "train", "--config", str(first), "--quiet"], check=True, timeout=300)
    pre = losses(tmp_path / "pre" / "run")
    tuned = write_config(tmp_path / "tune", training_corpus, 3, init_from=str(tmp_path / "pre" / "run" / "latest"),
                         seed=1, checkpoint_every=3, eval_every=3)
    subprocess.run([*HARMONIXR, "train", "--config", str(tuned), "--quiet"], check=True, timeout=300)
    tune = losses(tmp_path / "tune" / "run")
    # A fresh model starts near the sum of log(field sizes); the fine-tune starts where the first run ended.
    end = sum(pre[k] for k in range(31, 41)) / 10
    assert pre[1] - end > 2.0, "the first run must have learned something for this test to mean anything"
    assert abs(tune[1] - end) < 0.15 * end and tune[1] < min(pre[k] for k in range(1, 11)) - 1.0
    assert read_config(tmp_path / "tune" / "run" / "latest")["train"]["run"]["init_from"].endswith("latest")
    tuned = read_config(tmp_path / "tune" / "run" / "latest")
    assert "program_parts" in tuned and "drum_kits" in tuned, "what a part from nothing keeps to"

    other = NoteVocab(TokenizerSpec(styles=("bebop",)))
    model = load_checkpoint(tmp_path / "tune" / "run" / "latest").model
    with pytest.raises(CheckpointError, match="vocabulary differs"):
        start_from(tmp_path / "pre" / "run" / "latest", model, other)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(training_corpus: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, training_corpus, 12, checkpoint_every=6, eval_every=6)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "harmonixr", "train", "--config", str(config), "--quiet"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = load_checkpoint(tmp_path / "run" / "latest")
    assert loaded.meta["step"] == 12
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 13)), "only rank 0 logs"
    assert all(math.isfinite(r["loss"]) for r in records if "loss" in r)


@pytest.mark.slow
def test_cli_refuses_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {d_model: 30, n_heads: 4}\n")
    result = subprocess.run([*HARMONIXR, "train", "--config", str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "heads of an even size" in result.stderr and "Traceback" not in result.stderr
    bad.write_text("model: {layers: 3}\n")
    result = subprocess.run([*HARMONIXR, "train", "--config", str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "unknown key" in result.stderr


def test_what_each_programs_parts_play_comes_from_them(training_corpus: Path, monkeypatch) -> None:
    """Each GM program's range is the 5th to 95th percentile of its parts' notes in the split, its
    pace the median of their onsets per bar where they play, its chord the notes 95% of their onsets
    start at most (its family's where it has too few parts): inside what those parts play."""
    import numpy as np

    from harmonixr.data import stats
    from harmonixr.data.corpus import Corpus
    from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK

    corpus = Corpus([training_corpus])
    played: dict[int, list[int]] = {}
    paces: dict[int, list[float]] = {}
    for shards, row in corpus.rows("train"):
        piece = corpus.piece(shards, row)
        for slot, program in enumerate(piece.tracks.programs):
            mine = piece.notes[piece.notes[:, TRACK] == slot]
            played.setdefault(program, []).extend(mine[:, PITCH].tolist())
            if len(mine):
                paces.setdefault(program, []).append(len(np.unique(mine[:, [BAR, POS]], axis=0)) / len(np.unique(mine[:, BAR])))
    monkeypatch.setattr(stats, "LEAST_PARTS", 1)
    parts = {program: rest for program, *rest in stats.program_parts(corpus)}
    assert set(parts) >= {p for p, pitches in played.items() if pitches}
    for program, pitches in played.items():
        if pitches:
            low, high, pace, chord, share = parts[program]
            assert min(pitches) <= low <= np.quantile(pitches, 0.5) <= high <= max(pitches)
            assert 0 < share <= 1
            family = [x for p, xs in paces.items() if p // stats.FAMILY == program // stats.FAMILY for x in xs]
            assert min(family) - 0.005 <= pace <= max(family) + 0.005  # (stored to 2 decimals)
            assert 1 <= chord <= stats.MAX_CHORD
    monkeypatch.setattr(stats, "LEAST_PARTS", 10_000)
    assert stats.program_parts(corpus) == [], "too few parts of any program or family: none"


def test_velocity_repeats_count_the_note_before_and_the_same_pitchs() -> None:
    """repeat_counts: velocities 80 80 90 80 on pitches 60 62 60 60 repeat the note before once in
    three, the same pitch's never in two; 70 70 on one pitch once of one both ways (pooled: 2 of 4,
    1 of 3). velocity_repeats: the most of a song's parts of 16 notes or more (a part that swaps
    between 70 and 90: 0; one that plays each velocity twice: 8 of 15), a short part left out."""
    import numpy as np

    from harmonixr.data.stats import repeat_counts, repeat_shares, velocity_repeats
    from harmonixr.tokens.notes import BAR, NOTE_COLUMNS, PITCH, TRACK, VEL

    def part(track: int, velocities: list[int], pitches: list[int]) -> np.ndarray:
        notes = np.zeros((len(velocities), len(NOTE_COLUMNS)), dtype=np.int64)
        notes[:, BAR], notes[:, TRACK], notes[:, PITCH], notes[:, VEL] = np.arange(len(notes)), track, pitches, velocities
        return notes

    a, b = part(0, [80, 80, 90, 80], [60, 62, 60, 60]), part(1, [70, 70], [50, 50])
    assert repeat_counts(a).tolist() == [1, 3, 0, 2] and repeat_counts(b).tolist() == [1, 1, 1, 1]
    assert repeat_shares(repeat_counts(a) + repeat_counts(b)) == (0.5, round(1 / 3, 3))
    song = np.concatenate([part(0, [70, 90] * 8, [60] * 16), part(1, [80, 80, 90, 90] * 4, [60] * 16),
                           part(2, [100] * 3, [72] * 3)])
    assert velocity_repeats(song) == (round(8 / 15, 3), round(8 / 15, 3))


def test_a_styles_drum_kit_and_groove_are_what_its_drum_parts_play(tmp_path: Path) -> None:
    """Prepared drum parts of two styles: a style with KIT_PARTS parts gets its own kit, the sounds
    up to KIT_SHARE of its notes, most played first (a cowbell played once in over a thousand notes
    is left out); one with fewer parts has none and falls back to every style's. Its groove: at
    each eighth of the bar the sounds played there, with their velocities and how often each is the
    lowest sound of its onset (the cowbell's place left out)."""
    import csv

    from conftest import make_score
    from harmonixr.data import stats
    from harmonixr.data.corpus import Corpus
    from harmonixr.data.prepare import prepare

    folder = tmp_path / "src"
    folder.mkdir()
    beat = 240  # eighth notes at 480 ticks a quarter
    rows = []
    for k in range(stats.KIT_PARTS + 2):
        style = "rock" if k < stats.KIT_PARTS else "latin"
        bars = 8 + k  # (pieces of other lengths: none is a duplicate of another)
        notes = [(t * beat, 60, 42, 80) for t in range(8 * bars)]  # hats on every eighth,
        notes += [(t * 4 * beat, 60, 36, 100) for t in range(2 * bars)]  # kicks on 1 and 3,
        notes += [(t * 4 * beat + 2 * beat, 60, 38, 100) for t in range(2 * bars)]  # snares on 2 and 4
        notes += [(16 * beat + 30, 60, 56 if style == "rock" else 62, 90)] if k == 0 or style == "latin" else []
        (folder / f"{k}.mid").write_bytes(make_score([(0, True, sorted(notes))]).dumps_midi())
        rows.append([f"{k}.mid", style, "train"])
    with (folder / "meta.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["path", "style", "split"], *rows])
    out = tmp_path / "prepared"
    prepare([str(folder)], out, PrepareConfig(workers=1), metadata=str(folder / "meta.csv"), show_progress=False)
    kits = dict(stats.drum_kits(Corpus([out])))
    assert set(kits) == {"rock", stats.EVERY_STYLE}, "latin has too few drum parts for a kit of its own"
    assert [sound for sound, _ in kits["rock"]] == [42, 36, 38], "most played first; the one cowbell left out"
    assert sum(share for _, share in kits["rock"]) == pytest.approx(1.0, abs=2e-3)
    assert [sound for sound, _ in kits[stats.EVERY_STYLE]] == [42, 36, 38]
    grooves = dict(stats.drum_grooves(Corpus([out])))
    assert set(grooves) == {"rock", stats.EVERY_STYLE}
    rock = dict(grooves["rock"])
    eighth = Corpus([out]).vocab.grid // 2
    assert sorted(rock) == [k * eighth for k in range(8)], "the eighths of the bar; the one cowbell's place left out"
    for place, sounds in rock.items():
        beat = {0: 36, 2 * eighth: 38, 4 * eighth: 36, 6 * eighth: 38}.get(place)
        # a kick or a snare on the beat is the lowest sound of its onset, the hat between the beats
        assert sounds == ([(beat, 0.5, 100, 0, 1.0), (42, 0.5, 80, 0, 0.0)] if beat is not None else [(42, 1.0, 80, 0, 1.0)])
    # its velocity repeats: of each beat's kick or snare (100) and two hats (80), the second hat repeats
    # the note before; every sound repeats its own last velocity
    repeats = {style: (after, sound) for style, after, sound in stats.drum_repeats(Corpus([out]))}
    assert set(repeats) == {"rock", stats.EVERY_STYLE}
    assert repeats["rock"][0] == pytest.approx(1 / 3, abs=0.01) and repeats["rock"][1] == pytest.approx(1.0, abs=0.01)
