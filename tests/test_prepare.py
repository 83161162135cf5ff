"""End to end: a folder with real pieces, a metadata CSV and broken files -> shards, resumable."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from harmonixr.cli import main
from harmonixr.config import PrepareConfig, to_dict
from harmonixr.data import shards
from harmonixr.data.corpus import Corpus
from harmonixr.data.normalize import normalize
from harmonixr.data.prepare import PrepareError, prepare
from harmonixr.data.shards import NoteShards
from harmonixr.data.sources import folder_source
from harmonixr.data.stats import dataset_stats
from harmonixr.data.validate import load_midi
from harmonixr.tokens.notes import decode_notes, encode_score
from harmonixr.tokens.vocab import METERS, NoteVocab
from tests.conftest import POP909, SHARED

METER_NAMES = {f"{n}/{d}" for n, d in METERS}


@pytest.fixture(scope="module")
def corpus_folder(tmp_path_factory: pytest.TempPathFactory, music21_midi: dict[str, Path]) -> Path:
    """Real pieces (one a byte-identical copy under another name), broken files and a CSV."""
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "sub").mkdir()
    for key, path in music21_midi.items():
        shutil.copy(path, folder / "sub" / f"{key.replace('/', '_').replace('#', '-')}.mid")
    shutil.copy(music21_midi["bach/bwv66.6"], folder / "zz_copy_of_bwv66.MID")
    good = (folder / "sub" / "bach_bwv1.6.mid").read_bytes()
    (folder / "empty.mid").write_bytes(b"")
    (folder / "truncated.mid").write_bytes(good[: len(good) // 2])
    (folder / "garbage.midi").write_bytes(b"MThd" + bytes(range(200)))
    (folder / "notes.txt").write_text("not a midi file: ignored by suffix")
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["midi_filename", "genre", "split"])
        writer.writerow(["sub/bach_bwv66.6.mid", "chorale", "test"])
        writer.writerow(["sub/palestrina_Agnus_01.mid", "renaissance", "validation"])
    return folder


@pytest.fixture(scope="module")
def prepared(corpus_folder: Path, tmp_path_factory: pytest.TempPathFactory, small_config: PrepareConfig):
    out = tmp_path_factory.mktemp("prepared")
    summary = prepare([str(corpus_folder)], out, small_config, metadata=str(corpus_folder / "labels.csv"),
                      style="folk-german", show_progress=False)
    return out, summary


def test_summary_counts_and_rejects(prepared, corpus_folder: Path) -> None:
    out, summary = prepared
    reasons = {Path(r["path"]).name: r["reason"] for r in summary.rejects}
    assert reasons == {"empty.mid": "empty", "truncated.mid": "truncated", "garbage.midi": "not_midi",
                       "zz_copy_of_bwv66.MID": "duplicate"}
    assert summary.files == 15 and summary.kept_pieces == 11
    on_disk = list(csv.DictReader((out / shards.REJECTS).open()))
    assert {Path(r["path"]).name for r in on_disk} == set(reasons)


def test_manifest_labels_splits(prepared) -> None:
    out, _ = prepared
    rows = NoteShards(out).rows()
    by_name = {Path(r["path"]).name: r for r in rows}
    assert len(by_name) == len(rows), "one row per piece: augmentation happens while training"
    assert by_name["bach_bwv66.6.mid"]["split"] == "test" and by_name["bach_bwv66.6.mid"]["style"] == "chorale"
    assert by_name["palestrina_Agnus_01.mid"]["split"] == "val"
    assert by_name["ryansMammoth_AcrobatsHornpipe.mid"]["style"] == "folk-german"  # the --style default
    for column in ("piece_id", "source", "style", "split", "notes", "bars", "seconds", "path", "group", "programs"):
        assert column in NoteShards(out).manifest.column_names


def test_shard_rows_are_the_pieces_notes(prepared) -> None:
    out, _ = prepared
    corpus = Corpus([out])
    vocab = NoteVocab.from_file(out)
    for shards_, row in corpus.rows("train") + corpus.rows("test"):
        piece = corpus.piece(shards_, row)
        assert len(piece.notes) == row["notes"] and piece.bar_count == row["bars"]
        normalized, _ = normalize(load_midi(row["path"], PrepareConfig().limits), vocab)
        expected, tracks, timeline = encode_score(normalized, vocab)
        assert (piece.notes == expected).all() and piece.tracks.programs == tracks.programs
        assert (piece.bars.meter == timeline.meter_values(vocab)).all()
        assert decode_notes(piece.notes, piece.tracks, timeline, vocab).note_num() == row["notes"]


def test_rerun_skips_everything_and_a_lost_shard_is_rebuilt_identically(prepared, corpus_folder, small_config) -> None:
    out, first = prepared
    manifest_before = pq.read_table(out / shards.MANIFEST)
    again = prepare([str(corpus_folder)], out, small_config, metadata=str(corpus_folder / "labels.csv"),
                    style="folk-german", show_progress=False)
    assert again.skipped_shards == len(list((out / "shards").glob("*.parquet")))
    victim = sorted((out / "shards").glob("*.parquet"))[1]
    victim.unlink()  # as if the run had been killed before this shard was written
    (out / shards.MANIFEST).unlink()
    rebuilt = prepare([str(corpus_folder)], out, small_config, metadata=str(corpus_folder / "labels.csv"),
                      style="folk-german", show_progress=False)
    assert rebuilt.skipped_shards == again.skipped_shards - 1
    assert pq.read_table(out / shards.MANIFEST).equals(manifest_before)
    assert not list((out / "shards").glob("*.tmp")), "no temporary files are left behind"


def test_a_prepare_run_killed_mid_way_resumes_to_the_same_corpus(prepared, corpus_folder, small_config, tmp_path) -> None:
    out, config = tmp_path / "killed", tmp_path / "prepare.yaml"
    config.write_text(yaml.safe_dump(to_dict(small_config)))
    args = ["--source", str(corpus_folder), "--out", str(out), "--config", str(config),
            "--metadata", str(corpus_folder / "labels.csv"), "--style", "folk-german", "--quiet"]
    # The run SIGKILLs itself and its workers the moment its first shard is written: a real kill,
    # at the same point on a fast or a busy machine.
    killed_after_first_shard = (
        "import os, signal, sys\n"
        "from harmonixr.data import prepare as p\n"
        "real = p.prepare\n"
        "def dies(*a, **k):\n"
        "    return real(*a, **k, on_shard=lambda name: os.killpg(0, signal.SIGKILL))\n"
        "p.prepare = dies\n"
        "from harmonixr.cli import main\n"
        "sys.exit(main(['prepare', *sys.argv[1:]]))\n")
    run = subprocess.run([sys.executable, "-c", killed_after_first_shard, *args], timeout=300,
                         capture_output=True, start_new_session=True)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    written = len(list((out / "shards").glob("*.parquet")))
    assert 1 <= written < len(list((prepared[0] / "shards").glob("*.parquet"))), "killed mid-way"
    assert not (out / shards.MANIFEST).exists()
    subprocess.run([sys.executable, "-m", "harmonixr", "prepare", *args], check=True, timeout=300,
                   capture_output=True)
    # Same rows and the same shard names: a config read from YAML (60.0) names shards as one in code (60).
    assert pq.read_table(out / shards.MANIFEST).equals(pq.read_table(prepared[0] / shards.MANIFEST))
    assert not list(out.rglob("*.tmp")), "no temporary files are left behind"


def test_another_config_into_the_same_folder_is_refused(prepared, corpus_folder) -> None:
    out, _ = prepared
    with pytest.raises(PrepareError, match="another configuration"):
        prepare([str(corpus_folder)], out, PrepareConfig(files_per_shard=7), show_progress=False)


def test_cli_prepare_and_stats(corpus_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    assert main(["prepare", "--source", str(corpus_folder), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    assert main(["stats", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "kept pieces" in printed and "truncated" in printed and "total" in printed
    stats = dataset_stats(out)
    assert sum(c.get("pieces", 0) for s in stats["styles"].values() for c in s.values()) == 11
    assert "notes per meter" in printed and stats["meters"]  # every note of a source in one meter or another
    assert all(abs(sum(shares.values()) - 1) < 1e-9 and set(shares) <= {*METER_NAMES, "other"}
               for shares in stats["meters"].values())
    assert main(["prepare", "--source", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_pop909_folder_is_labelled_pop_and_keeps_its_three_tracks(tmp_path: Path) -> None:
    refs = folder_source(POP909)
    assert len(refs) == 909 and {r.style for r in refs} == {"pop"}
    folder = tmp_path / "pop909"
    folder.mkdir()
    for name in ("001.mid", "002.mid", "003.mid"):
        shutil.copy(POP909 / name, folder / name)
    summary = prepare([str(folder)], tmp_path / "out", PrepareConfig(workers=1), show_progress=False)
    assert summary.kept_pieces == 3 and not summary.rejects
    corpus = Corpus([tmp_path / "out"])
    shards_, row = corpus.rows("train")[0] if corpus.rows("train") else corpus.rows("test")[0]
    piece = corpus.piece(shards_, row)
    assert piece.tracks.programs == [0, 0, 0], "MELODY, BRIDGE and PIANO (all program 0) stay three tracks"


def test_shared_sources_are_labelled_from_their_metadata(tmp_path: Path) -> None:
    """Groove's info.csv gives its styles (the part before a slash) and its split; the other
    folders are known by name."""
    refs = folder_source(SHARED / "groove")
    styles = {r.style for r in refs}
    assert {"rock", "funk", "jazz", "latin", "hiphop"} <= styles and not any("/" in s for s in styles)
    assert {r.split for r in refs} == {"train", "val", "test"}
    assert {r.style for r in folder_source(SHARED / "freedoom")} == {"game"}
    assert {r.style for r in folder_source(SHARED / "giantmidi")} == {"piano-performance"}
