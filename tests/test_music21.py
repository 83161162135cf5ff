"""The bundled corpus: conversion keeps bars, ties, parts and labels."""

from __future__ import annotations

from collections import Counter

import pytest
from music21 import corpus
from symusic import Score

from harmonixr.data import music21_corpus
from harmonixr.data.music21_corpus import COLLECTIONS, m21_to_score
from tests.conftest import abc_tune


def test_every_style_and_the_big_collections_are_listed() -> None:
    items = music21_corpus.list_items()
    files = Counter(item.collection for item in items)
    assert files["bach"] >= 400 and files["palestrina"] >= 1300 and files["ryansMammoth"] >= 1000
    assert files["essenFolksong"] >= 25 and files["oneills1850"] >= 30
    styles = {item.style for item in items}
    assert {"chorale", "folk-german", "folk-chinese", "folk-celtic", "renaissance", "medieval",
            "classical", "romantic"} <= styles
    assert len({item.key for item in items}) == len(items), "keys are unique"
    assert not any("/test" in item.key for item in items if item.collection == "essenFolksong")


def test_chorale_becomes_one_track_per_part_with_pickup_on_the_bar() -> None:
    parsed = corpus.parse("bach/bwv66.6")
    score = m21_to_score(parsed)
    assert [t.name for t in score.tracks] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert all(t.program == music21_corpus.CHOIR_PROGRAM for t in score.tracks)
    pickup = float(parsed.parts[0].getElementsByClass("Measure").first().paddingLeft)
    first_onset = min(t.notes[0].time for t in score.tracks) / score.tpq
    assert pickup > 0 and first_onset == pytest.approx(pickup), "the pickup ends on the first bar line"
    assert (score.time_signatures[0].numerator, score.time_signatures[0].denominator) == (4, 4)


@pytest.mark.parametrize("name", ["bach/bwv66.6", "bach/bwv1.6", "palestrina/Agnus_01"])
def test_tie_merge_matches_music21_strip_ties(name: str) -> None:
    parsed = corpus.parse(name)
    ours = m21_to_score(parsed)
    for part, track in zip(parsed.parts, ours.tracks):
        stripped = part.flatten().stripTies()
        expected = sorted((round(float(n.offset) * 480), round(float(n.quarterLength) * 480), p.midi)
                          for n in stripped.notes if n.quarterLength > 0 for p in n.pitches)
        shift = min(n.time for n in track.notes) - expected[0][0]
        got = sorted((n.time - shift, n.duration, n.pitch) for n in track.notes)
        assert got == expected


def test_abc_tune_with_dynamics_free_defaults() -> None:
    score = m21_to_score(abc_tune(music21_corpus.corpus_root() / "oneills1850" / "0201-0300.abc", "201"))
    assert len(score.tracks) == 1 and score.tracks[0].note_num() > 50
    assert {n.velocity for n in score.tracks[0].notes} == {music21_corpus.DEFAULT_VELOCITY}


def test_cache_conversion_writes_midi_and_resumes(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HARMONIXR_CACHE", str(tmp_path))
    folder = music21_corpus.cache_dir()
    folder.mkdir(parents=True)
    items = [i for i in music21_corpus.list_items(("bach",), per_collection=3)]
    for item in items[:2]:
        music21_corpus.append_index(folder, [music21_corpus.convert_to_cache((item, str(folder)))])
    assert music21_corpus.pending(items, folder) == items[2:]
    with (folder / music21_corpus.INDEX_FILE).open("a") as handle:
        handle.write('{"key": "cut in the mid')  # a kill during a write
    assert music21_corpus.pending(items, folder) == items[2:]
    refs, failures = music21_corpus.finish(items, folder)
    assert len(refs) == 2 and not failures
    assert all(r.style == COLLECTIONS["bach"][0] and Score(r.path).note_num() > 0 for r in refs)
    assert (folder / "metadata.csv").read_text().count("\n") == 3
