"""The SQLite preference store: round trip, refusals, concurrent writers, a writer killed mid-way."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest
from symusic import Score

from conftest import make_score
from harmonixr.cli import main
from harmonixr.rl.preferences import PreferenceError, PreferenceStore


def midi(pitch: int) -> bytes:
    return make_score([(0, False, [(k * 480, 480, pitch + k, 80) for k in range(8)])]).dumps_midi()


def test_round_trip_and_export(tmp_path) -> None:
    store = PreferenceStore(tmp_path / "prefs.sqlite")
    first = store.add({"mode": "infill", "bars": "5-8"}, midi(60), midi(62), "a", "ana")
    second = store.add({"mode": "generate", "style": "pop"}, midi(64), midi(65), "tie", "ben", "both fine")
    assert (first, second) == (1, 2) and store.count() == 2
    newest = store.list()[0]
    assert (newest.id, newest.who, newest.choice, newest.prompt, newest.note) == \
        (2, "ben", "tie", {"mode": "generate", "style": "pop"}, "both fine")
    exported = store.export(tmp_path / "out")
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [line["choice"] for line in lines] == ["a", "tie"]
    assert Score(str(tmp_path / "out" / lines[0]["b"])).tracks[0].notes[0].pitch == 62
    assert store.check() == "ok"


def test_bad_comparisons_are_refused(tmp_path) -> None:
    store = PreferenceStore(tmp_path / "prefs.sqlite")
    with pytest.raises(PreferenceError, match="choice"):
        store.add({}, midi(60), midi(62), "c", "ana")
    with pytest.raises(PreferenceError, match="sample B"):
        store.add({}, midi(60), b"MThd not really", "a", "ana")
    with pytest.raises(PreferenceError, match="who"):
        store.add({}, midi(60), midi(62), "a", " ")
    assert store.count() == 0


def _writer(path: str, who: str, count: int) -> None:
    store = PreferenceStore(path)
    for k in range(count):
        store.add({"k": k}, midi(60), midi(61), "ab"[k % 2], who)


def test_concurrent_writers_lose_nothing(tmp_path) -> None:
    path = str(tmp_path / "prefs.sqlite")
    PreferenceStore(path)
    workers = [mp.get_context("spawn").Process(target=_writer, args=(path, f"w{k}", 25)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    store = PreferenceStore(path)
    assert store.count() == 100 and store.check() == "ok"
    assert {c.who for c in store.list()} == {"w0", "w1", "w2", "w3"}


def test_a_writer_killed_mid_way_leaves_a_sound_file(tmp_path) -> None:
    path = str(tmp_path / "prefs.sqlite")
    PreferenceStore(path)
    writer = mp.get_context("spawn").Process(target=_writer, args=(path, "doomed", 100_000))
    writer.start()
    store = PreferenceStore(path)
    deadline = time.monotonic() + 60
    while store.count() < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(10)
    before = store.count()
    assert before >= 20 and store.check() == "ok"
    store.add({}, midi(60), midi(61), "b", "after")
    assert store.count() == before + 1


def test_cli(tmp_path) -> None:
    a, b = tmp_path / "a.mid", tmp_path / "b.mid"
    a.write_bytes(midi(60))
    b.write_bytes(midi(67))
    db = str(tmp_path / "p.sqlite")
    assert main(["prefs", "add", "--db", db, "--a", str(a), "--b", str(b), "--choice", "b", "--who", "cli",
                 "--prompt", '{"mode": "continue"}']) == 0
    assert main(["prefs", "list", "--db", db]) == 0
    assert main(["prefs", "export", "--db", db, "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "000001-b.mid").read_bytes() == b.read_bytes()
    assert main(["prefs", "add", "--db", db, "--a", str(a), "--b", str(Path(__file__)), "--choice", "a", "--who", "x"]) == 2
