"""The prompt format: plain and infill sequences of real pieces lose and invent no note, and the
training examples, their windows, holes, controls and packing keep their invariants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harmonixr.data.corpus import Corpus, CorpusPiece
from harmonixr.data.normalize import normalize
from harmonixr.data.validate import load_midi
from harmonixr.tokens.notes import BAR, POS, TRACK, encode_score, sort_notes
from harmonixr.tokens.prompt import Bars, Header, Hole, TrackControls, infill, plain, read_notes, time_key
from harmonixr.tokens.timeline import timeline_of
from harmonixr.tokens.vocab import (
    BODY,
    BOS,
    COL,
    END,
    EOS,
    FILL,
    FILLED,
    FUTURE,
    HOLE,
    HOLE_END,
    HOLE_TRACK,
    NOTE,
    PAST,
    TRACK_CONTROL,
    NoteVocab,
)
from harmonixr.training.batches import TrainStream
from harmonixr.training.config import ObjectiveConfig
from harmonixr.training.examples import ExampleMaker
from tests.conftest import real_piece_params


def _piece(path: Path, vocab: NoteVocab, limits) -> CorpusPiece:  # noqa: ANN001
    normalized, _ = normalize(load_midi(path, limits), vocab, str(path))
    notes, tracks, timeline = encode_score(normalized, vocab)
    bars = Bars(timeline.meter_values(vocab), timeline.tempo_values(vocab))
    return CorpusPiece(notes, bars, tracks, "unknown", "test", str(path), "test")


def _header(piece: CorpusPiece, vocab: NoteVocab) -> Header:
    slots = piece.tracks.slots(vocab)
    return Header(vocab.style_value("unknown"), (), tuple(slots), tuple(piece.tracks.program(s, vocab) for s in slots))


@pytest.mark.parametrize("real_file", real_piece_params(), indirect=True)
def test_plain_and_infill_sequences_hold_every_note_once(real_file: Path, vocab: NoteVocab, limits) -> None:
    piece = _piece(real_file, vocab, limits)
    bars = piece.bar_count
    window = piece.notes[piece.notes[:, BAR] < min(bars, 12)]
    header = _header(piece, vocab)
    seq = plain(vocab, header, window, 0, piece.bars, ends=False)
    assert np.array_equal(read_notes(vocab, seq.rows, 0)[BODY], window)
    assert seq.rows[0, COL["type"]] == BOS and not seq.target[: 2 + len(header.slots)].any()
    tracks = tuple(int(t) for t in np.unique(window[:, TRACK])[:1])
    for hole in (Hole((2, 0), (4, 0)), Hole((1, 6), (3, 18)), Hole((2, 0), (5, 0), tracks), Hole((3, 0), None)):
        seq = infill(vocab, header, window, 0, piece.bars, hole, {})
        parts = read_notes(vocab, seq.rows, 0)
        taken = hole.contains(window, vocab)
        both = np.concatenate([parts.get(FUTURE, window[:0]), parts.get(BODY, window[:0])])
        assert np.array_equal(sort_notes(both), window[~taken]), "the context is the window minus the hole"
        assert np.array_equal(parts.get(FILLED, window[:0]), window[taken]), "the fill is the hole's notes"
        types = seq.rows[:, COL["type"]].tolist()
        assert types.index(HOLE) < types.index(PAST) < types.index(FILL) == seq.fill_start < len(types) - 1
        assert types[-1] == END and (HOLE_END in types) == (hole.end is not None)
        assert types.count(HOLE_TRACK) == len(hole.tracks)
        future = parts.get(FUTURE, window[:0])
        assert (time_key(future[:, BAR], future[:, POS], vocab) >= time_key(*hole.start, vocab)).all()
        learned = seq.rows[seq.target, COL["type"]]
        assert set(learned.tolist()) <= {NOTE, END} and (learned == NOTE).sum() == len(window)


def test_hole_controls_are_rows_per_track(vocab: NoteVocab, music21_midi, limits) -> None:  # noqa: ANN001
    piece = _piece(music21_midi["bach/bwv66.6"], vocab, limits)
    header = _header(piece, vocab)
    controls = {0: TrackControls(density=4.0, loudness=80.0, chord=1, low=60, high=72), 2: TrackControls(density=0.0)}
    seq = infill(vocab, header, piece.notes, 0, piece.bars, Hole((2, 0), (4, 0)), controls)
    rows = seq.rows[seq.rows[:, COL["type"]] == TRACK_CONTROL]
    named = [(int(r[COL["track"]]) - 1, vocab.values[r[COL["value"]]], int(r[COL["pitch"]]) - 1) for r in rows]
    assert named[0][:2] == (0, "TrackDensity_6") and named[-1][:2] == (2, "TrackDensity_0")
    assert (0, "TrackLow", 60) in named and (0, "TrackHigh", 72) in named and len(named) == 6
    assert not seq.target[seq.rows[:, COL["type"]] == TRACK_CONTROL].any()


def test_training_examples_fit_the_block_and_keep_the_format(training_corpus: Path) -> None:
    corpus = Corpus([training_corpus])
    vocab = corpus.vocab
    maker = ExampleMaker(vocab, 256, ObjectiveConfig(infill_rate=0.7))
    rng = np.random.default_rng(0)
    kinds = set()
    for shards, row in corpus.rows("train"):
        piece = corpus.piece(shards, row)
        for _ in range(6):
            example = maker.sample(piece, rng)
            kinds.add(example.kind)
            assert len(example.rows) <= 256
            types = example.rows[:, COL["type"]]
            assert types[0] == BOS and set(types[example.target].tolist()) <= {NOTE, END, EOS}
            notes = np.concatenate(list(read_notes(vocab, example.rows, example.bar0).values()) or [piece.notes[:0]])
            assert len(notes) == (types == NOTE).sum()
            assert (example.rows[types == NOTE, COL["dbar"]] >= 1).all()
    assert {"plain", "bars", "span", "tracks"} <= kinds


def test_packed_batches_are_reproducible_and_nearly_full(training_corpus: Path) -> None:
    corpus = Corpus([training_corpus])
    stream = TrainStream(corpus, 512, 4, ObjectiveConfig(), seed=3)
    a, b = stream.batch(7), stream.batch(7)
    assert np.array_equal(a.rows.numpy(), b.rows.numpy()) and np.array_equal(a.target.numpy(), b.target.numpy())
    assert a.rows.shape[1] == 512
    starts = (a.rows[..., COL["type"]] == BOS).sum(1)
    assert (starts >= 1).all() and a.positions > 0.6 * 4 * 511


def test_timeline_of_a_piece_has_a_bar_for_every_onset(vocab: NoteVocab, music21_midi, limits) -> None:  # noqa: ANN001
    score = load_midi(music21_midi["palestrina/Agnus_01"], limits)
    normalized, _ = normalize(score, vocab)
    timeline = timeline_of(normalized, vocab)
    notes, _, _ = encode_score(normalized, vocab, timeline)
    assert notes[:, BAR].max() == timeline.bars - 1 or notes[:, BAR].max() == timeline.bars - 2
