"""Shared fixtures: real pieces from every bundled style, POP909 when present, helpers."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from harmonixr.config import LimitsConfig, PrepareConfig, TokenizerSpec
from harmonixr.data import music21_corpus
from harmonixr.tokens.vocab import NoteVocab

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "harmonixr-small"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POP909 = SHARED / "pop909"
POP909_FILES = ("001.mid", "042.mid", "500.mid", "909.mid")
# One or two files of each other shared source (drums, GM arrangements, performed piano).
SHARED_FILES = ("groove/drummer1/session1/102_funk_95_beat_4-4.mid", "groove/drummer7/session2/100_pop_142_beat_4-4.mid",
                "freedoom/d_dm01.mid", "freedoom/d_bunny.mid",
                "giantmidi/Bach_Prelude_and_Fugue_in_A-flat_major_BWV862_gCL5Zvnt0TU_a.mid")

# One or more real pieces per style of the bundled corpus (keys of music21_corpus.list_items).
# "file#N" is tune X:N of a multi-tune ABC file (parsed alone, to keep the tests fast).
MUSIC21_KEYS = (
    "bach/bwv1.6",  # chorale with an instrumental part, pickup
    "bach/bwv66.6",
    "essenFolksong/altdeu10#2",  # German folk, no meter
    "essenFolksong/han1#5",  # Chinese folk
    "oneills1850/0201-0300#201",  # Celtic, pickup
    "ryansMammoth/AcrobatsHornpipe",
    "palestrina/Agnus_01",  # renaissance, 4/2
    "monteverdi/madrigal.3.12",
    "trecento/PMFC_01-Rex quem metrorum",  # medieval, 6/8
    "mozart/k155/movement2",  # classical string quartet, two violins
    "schumann_robert/opus41no1/movement5",  # 4/4 and 2/2: mixed denominators
)


def pytest_collection_modifyitems(items: list) -> None:
    for item in items:
        if "pop909" in item.name and not POP909.is_dir():
            item.add_marker(pytest.mark.skip(reason=f"POP909 not found at {POP909}"))
        if "shared" in item.name and not SHARED.is_dir():
            item.add_marker(pytest.mark.skip(reason=f"the shared data is not at {SHARED}"))


@pytest.fixture(scope="session")
def vocab() -> NoteVocab:
    return NoteVocab(TokenizerSpec())


@pytest.fixture(scope="session")
def limits() -> LimitsConfig:
    return LimitsConfig()


@pytest.fixture(scope="session")
def small_config() -> PrepareConfig:
    return PrepareConfig(workers=2, files_per_shard=4)


@pytest.fixture(scope="session")
def music21_midi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The pieces of MUSIC21_KEYS converted to MIDI files: ``{key: path}``."""
    folder = tmp_path_factory.mktemp("music21")
    items = {item.key: item for item in music21_corpus.list_items()}
    paths = {}
    for key in MUSIC21_KEYS:
        file_key, _, tune = key.partition("#")
        assert file_key in items, f"corpus file not found: {file_key}"
        path = folder / f"{key.replace('/', '_').replace('#', '-')}.mid"
        if tune:
            score = music21_corpus.m21_to_score(abc_tune(Path(items[file_key].path), tune))
            score.dump_midi(path)
        else:
            entry = music21_corpus.convert_to_cache((items[file_key], str(folder)))
            path = folder / entry["pieces"][0]["out"]
        paths[key] = path
    return paths


def abc_tune(path: Path, number: str):  # noqa: ANN201 - a music21 Score
    """Tune ``X:number`` of an ABC file, parsed alone with its file header."""
    from music21 import converter

    text = path.read_text(encoding="latin-1")
    blocks = re.split(r"(?m)^(?=X:)", text)
    header = "" if blocks[0].startswith("X:") else blocks[0]
    block = next(b for b in blocks if b.startswith("X:") and b[2:].split("\n", 1)[0].strip() == number)
    return converter.parseData(header + block, format="abc")


def real_piece_params(shared: bool = True) -> list:
    """pytest params of every real test file: the music21 keys, POP909 files, then the other
    shared sources (drums, GM arrangements, performed piano) unless ``shared`` is False."""
    params = [pytest.param(("music21", key), id=key) for key in MUSIC21_KEYS]
    params += [pytest.param(("pop909", name), id=f"pop909-{name}") for name in POP909_FILES]
    if shared:
        params += [pytest.param(("shared", name), id=f"shared-{name.split('/')[0]}-{Path(name).stem[:12]}")
                   for name in SHARED_FILES]
    return params


@pytest.fixture
def real_file(request: pytest.FixtureRequest, music21_midi: dict[str, Path]) -> Path:
    kind, name = request.param
    return {"music21": lambda: music21_midi[name], "pop909": lambda: POP909 / name, "shared": lambda: SHARED / name}[kind]()


def note_table(score: Score) -> list[np.ndarray]:
    """Per track, rows of (onset, duration) in quarter notes and pitch, velocity; sorted."""
    tables = []
    for track in score.tracks:
        n = track.notes.numpy()
        rows = np.stack([n["time"] / score.tpq, n["duration"] / score.tpq,
                         n["pitch"].astype(float), n["velocity"].astype(float)], axis=1)
        tables.append(rows[np.lexsort((rows[:, 3], rows[:, 1], rows[:, 2], rows[:, 0]))])
    return tables


def assert_same_notes(a: Score, b: Score) -> None:
    """Every track of ``a`` equals the same-index track of ``b``: notes, program, drum flag."""
    assert [(t.program, t.is_drum) for t in a.tracks] == [(t.program, t.is_drum) for t in b.tracks]
    for ta, tb in zip(note_table(a), note_table(b)):
        assert ta.shape == tb.shape
        np.testing.assert_array_equal(ta, tb)


def make_score(tracks: list[tuple[int, bool, list[tuple[int, int, int, int]]]], tpq: int = 480,
               bpm: float = 120.0, ts: tuple[int, int] = (4, 4), name: str = "T") -> Score:
    """A Score from ``[(program, is_drum, [(time, duration, pitch, velocity), ...]), ...]``."""
    score = Score(tpq)
    score.tempos.append(Tempo(0, qpm=bpm))
    score.time_signatures.append(TimeSignature(0, *ts))
    for index, (program, is_drum, notes) in enumerate(tracks):
        track = Track(f"{name}{index}", program, is_drum)
        for time, duration, pitch, velocity in notes:
            track.notes.append(Note(time, duration, pitch, velocity))
        score.tracks.append(track)
    return score


def midi_bytes(score: Score) -> bytes:
    return score.dumps_midi()


@pytest.fixture(scope="session")
def training_corpus(tmp_path_factory: pytest.TempPathFactory, music21_midi: dict[str, Path]) -> Path:
    """A prepared folder for the training tests: the real pieces of MUSIC21_KEYS (plus POP909's when
    present), with two pieces held out for validation and two for test by a metadata CSV."""
    import csv
    import shutil

    from harmonixr.data.prepare import prepare

    folder = tmp_path_factory.mktemp("train_src")
    names = []
    for key, path in music21_midi.items():
        name = f"{key.replace('/', '_').replace('#', '-')}.mid"
        shutil.copy(path, folder / name)
        names.append(name)
    if POP909.is_dir():
        for name in POP909_FILES:
            shutil.copy(POP909 / name, folder / f"pop909_{name}")
            names.append(f"pop909_{name}")
    held = {"bach_bwv66.6.mid": "validation", "essenFolksong_han1-5.mid": "validation",
            "bach_bwv1.6.mid": "test", "oneills1850_0201-0300-201.mid": "test"}
    with (folder / "meta.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "style", "split"])
        for name in names:
            writer.writerow([name, "pop" if name.startswith("pop909") else "", held.get(name, "train")])
    out = tmp_path_factory.mktemp("train_corpus")
    config = PrepareConfig(workers=2, files_per_shard=8)
    prepare([str(folder)], out, config, metadata=str(folder / "meta.csv"), style="chorale", show_progress=False)
    return out


def notes_of(track) -> list[tuple[int, int, int, int]]:  # noqa: ANN001 - symusic track
    return sorted((n.time, n.duration, n.pitch, n.velocity) for n in track.notes)


def assert_kept(original: Score, out: Score, start: int, end: int | None, tracks: set[int]) -> int:
    """Everything outside (region x tracks) is the original's; returns the new notes' count."""
    stop = end if end is not None else 1 << 62
    assert out.ticks_per_quarter == original.ticks_per_quarter
    assert [(t.time, t.qpm) for t in out.tempos] == [(t.time, t.qpm) for t in original.tempos][: len(out.tempos)]
    assert [(t.time, t.numerator, t.denominator) for t in out.time_signatures] == \
        [(t.time, t.numerator, t.denominator) for t in original.time_signatures][: len(out.time_signatures)]
    assert [(t.name, t.program, t.is_drum) for t in out.tracks[: len(original.tracks)]] == \
        [(t.name, t.program, t.is_drum) for t in original.tracks]
    new = 0
    for index, track in enumerate(out.tracks):
        before = notes_of(original.tracks[index]) if index < len(original.tracks) else []
        inside = lambda n, i=index: i in tracks and start <= n[0] < stop  # noqa: E731
        assert [n for n in notes_of(track) if not inside(n)] == [n for n in before if not inside(n)], f"track {index}"
        new += sum(1 for n in notes_of(track) if inside(n))
    return new


def out_of_range_midi(path: Path) -> Path:
    """A one-track file of 8 quarter notes whose second has velocity 150 (a data byte above 127)."""
    velocities = [100, 150, 100, 100, 100, 100, 100, 100]
    events = b"".join(bytes([0, 0x90, 60 + k, v, 0x83, 0x60, 0x80, 60 + k, 0]) for k, v in enumerate(velocities))
    events += b"\x00\xff\x2f\x00"
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(events)) + events)
    return path


@pytest.fixture
def sampled_rules(monkeypatch: pytest.MonkeyPatch) -> list:
    """The :class:`~harmonixr.sampling.rules.Rules` of every grammar built while the test runs:
    what the sampler was told to keep."""
    from harmonixr.sampling.grammar import NoteGrammar

    seen: list = []
    init = NoteGrammar.__init__

    def record(self, vocab, rules) -> None:  # noqa: ANN001
        seen.append(rules)
        init(self, vocab, rules)

    monkeypatch.setattr(NoteGrammar, "__init__", record)
    return seen
