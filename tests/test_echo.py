"""Echoes: each note's row says what its track played at its place some bars away, read causally.

The columns are checked against a plain reference (every earlier row searched) on real pieces'
plain and infill sequences and on random rows; the sampler's incremental index must give the same
values, and the heads of a model that reads echoes must be told the same ones at sampling as in
training (the log-probabilities the sampler drew from equal the teacher-forced ones).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_score, real_piece_params
from harmonixr.config import TokenizerSpec
from harmonixr.generation.piece import Piece, Region
from harmonixr.models.checkpoint import CheckpointError, build_model, save_checkpoint, start_from
from harmonixr.models.config import ModelConfig
from harmonixr.tokens.echo import EchoIndex, add_echoes
from harmonixr.tokens.notes import BAR
from harmonixr.tokens.prompt import Hole, infill, plain
from harmonixr.tokens.vocab import (
    COL,
    COLUMNS,
    DRUM_PROGRAM,
    ECHO_COLUMNS,
    ECHO_LAGS,
    ECHO_NEAREST,
    ECHO_NOTE_COLUMNS,
    ECHO_NOTE_FIELDS,
    LAST_NOTE_COLUMNS,
    LAST_NOTE_FIELDS,
    MATCHED_COLUMN,
    MAX_WINDOW_BARS,
    NOTE,
    SOUNDING_COLUMNS,
    NoteVocab,
)

ECHO = [COL[name] for name in ECHO_COLUMNS]
VOCAB = NoteVocab(TokenizerSpec())  # the hypothesis tests' (a function-scoped fixture is refused there)


def matched_lag(seen: list[tuple[int, int, int, int]], bar: int) -> int:
    """The lag by its definition: the earlier bar c whose cells (track, pos, pitch) among ``seen``
    have the best F1 with bar ``bar - 1``'s, the nearest on a tie; ``bar - 1 - c``; 0 if none is alike."""
    def cells(b: int) -> set[tuple[int, int, int]]:
        return {(t, p, q) for t, b2, p, q in seen if b2 == b}

    before, best, lag = cells(bar - 1), 0.0, 0
    for c in range(bar - 2, 0, -1):
        there = cells(c)
        if before and there and 2 * len(before & there) / (len(before) + len(there)) > best:
            best, lag = 2 * len(before & there) / (len(before) + len(there)), bar - 1 - c
    return lag


def sounds_at(vocab: NoteVocab, row: np.ndarray, bar: int, pos: int) -> bool:
    """Whether the melodic note of ``row`` sounds at stored (bar, pos), by its grid steps: its bar's
    start plus its position, to that plus its duration (the bar before it as long as its meter says)."""
    if row[COL["program"]] == DRUM_PROGRAM + 1:
        return False
    start = int(row[COL["pos"]]) - 1
    end = start + int(vocab.durations[max(int(row[COL["dur"]]) - 1, 0)])
    if int(row[COL["bar"]]) == bar - 1:
        start, end = start - int(vocab.meter_positions(row[COL["meter"]])), end - int(vocab.meter_positions(row[COL["meter"]]))
    elif int(row[COL["bar"]]) != bar:
        return False
    return start <= pos - 1 < end


def reference(rows: np.ndarray, vocab: NoteVocab) -> np.ndarray:
    """The echo columns (T, E) by their definition: for each NOTE row, the earlier NOTE rows of its
    track at its position ``lag`` bars away (each fixed lag, then the matched one), the one of its
    rank among the notes of its own onset; then the pitch, duration and velocity of its track's
    latest earlier note; the duration and velocity of the note the nearest earlier lag holds;
    then the pitch classes of the earlier melodic notes sounding at its onset,
    in groups of four bits."""
    out = np.zeros((len(rows), len(ECHO_COLUMNS)), dtype=np.int64)
    seen: list[tuple[int, int, int, int]] = []  # (track, bar, pos, pitch) of earlier known notes
    struck: list[tuple[int, int]] = []  # and their (dur, vel)
    last: dict[int, list[int]] = {}
    earlier: list[np.ndarray] = []  # the earlier known NOTE rows
    for t, row in enumerate(rows):
        track, bar, pos = int(row[COL["track"]]), int(row[COL["bar"]]), int(row[COL["pos"]])
        if row[COL["type"]] != NOTE or not 0 < bar < MAX_WINDOW_BARS:
            continue
        rank = sum(1 for s in seen if s[:3] == (track, bar, pos))
        for k, lag in enumerate((*ECHO_LAGS, -matched_lag(seen, bar))):
            there = [s[3] for s in seen if s[:3] == (track, bar + lag, pos)]
            if lag and 0 < bar + lag < MAX_WINDOW_BARS and rank < len(there):
                out[t, k] = there[rank]
        out[t, [ECHO_COLUMNS.index(name) for name in LAST_NOTE_COLUMNS]] = last.get(track, 0)
        for lag in ECHO_NEAREST:
            there = [struck[k] for k, s in enumerate(seen) if s[:3] == (track, bar + lag, pos)]
            if 0 < bar + lag < MAX_WINDOW_BARS and rank < len(there):
                out[t, [ECHO_COLUMNS.index(name) for name in ECHO_NOTE_COLUMNS]] = there[rank]
                break
        classes = {(int(r[COL["pitch"]]) - 1) % 12 for r in earlier if sounds_at(vocab, r, bar, pos)}
        out[t, [ECHO_COLUMNS.index(name) for name in SOUNDING_COLUMNS]] = \
            [1 + sum(1 << (k - group) for k in classes if group <= k < group + 4) for group in (0, 4, 8)]
        earlier.append(row)
        seen.append((track, bar, pos, int(row[COL["pitch"]])))
        struck.append(tuple(int(row[COL[name]]) for name in ECHO_NOTE_FIELDS))
        last[track] = [int(row[COL[name]]) for name in LAST_NOTE_FIELDS]
    return out


def incremental(rows: np.ndarray, vocab: NoteVocab, matched: bool = True, sounding: bool = True) -> np.ndarray:
    """The echo columns as the sampler works them out: one note at a time from an index."""
    index = EchoIndex(rows[:0], vocab, matched, sounding)
    out = np.zeros((len(rows), len(ECHO_COLUMNS)), dtype=np.int64)
    for t, row in enumerate(rows):
        if row[COL["type"]] == NOTE:
            out[t] = index.echoes(int(row[COL["track"]]), int(row[COL["bar"]]), int(row[COL["pos"]]))
            index.add(row)
    return out


def sequences(piece: Piece) -> list[np.ndarray]:
    """A real piece's plain sequence and two infill sequences (every track; one track)."""
    vocab, bars = piece.vocab, piece.bars_meta()
    notes = piece.notes[piece.notes[:, BAR] < 40]
    middle = int(notes[len(notes) // 2, BAR])
    holes = [Hole((middle, 0), (middle + 2, 0)), Hole((middle, 0), (middle + 2, 0), (int(notes[0, 3]),))]
    return [plain(vocab, piece.header(), notes, 0, bars, ends=False).rows,
            *(infill(vocab, piece.header(), notes, 0, bars, hole).rows for hole in holes)]


@pytest.mark.parametrize("real_file", real_piece_params(shared=False), indirect=True)
def test_echoes_of_real_sequences_follow_their_definition(real_file, vocab: NoteVocab) -> None:
    piece = Piece.from_file(str(real_file), vocab)
    for rows in sequences(piece):
        expected = reference(rows, vocab)
        np.testing.assert_array_equal(rows[:, ECHO], expected)
        np.testing.assert_array_equal(incremental(rows, vocab), expected)
    assert sequences(piece)[0][:, ECHO].any(), "a real piece repeats something at a bar's distance"


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), count=st.integers(1, 120), bars=st.integers(1, 20))
def test_echoes_of_random_rows_follow_their_definition(seed: int, count: int, bars: int) -> None:
    """Dense random rows (few tracks, bars and positions, so onsets collide and chords form)."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((count, len(COLUMNS)), dtype=np.int64)
    rows[:, COL["type"]] = rng.choice([NOTE, NOTE, NOTE, 2], count)
    rows[:, COL["track"]] = rng.integers(1, 3, count)
    rows[:, COL["bar"]] = rng.integers(0, bars + 1, count) + rng.choice([0, MAX_WINDOW_BARS - bars - 1], count, p=[0.9, 0.1])
    rows[:, COL["pos"]] = rng.integers(1, 4, count)
    rows[:, COL["pitch"]] = rng.integers(1, 129, count)
    rows[:, COL["dur"]] = rng.integers(1, 101, count)
    rows[:, COL["vel"]] = rng.integers(1, 128, count)
    rows[:, COL["meter"]] = rng.choice([VOCAB.meter_id[(3, 4)], VOCAB.meter_id[(4, 4)], VOCAB.meter_id[(6, 8)]], count)
    rows[:, COL["program"]] = rng.choice([1, 41, DRUM_PROGRAM + 1], count)
    expected = reference(rows, VOCAB)
    np.testing.assert_array_equal(add_echoes(rows.copy(), VOCAB)[:, ECHO], expected)
    np.testing.assert_array_equal(incremental(rows, VOCAB), expected)
    unmatched = expected.copy()
    unmatched[:, ECHO_COLUMNS.index(MATCHED_COLUMN)] = 0  # a model that does not read it: left 0, both ways
    np.testing.assert_array_equal(add_echoes(rows.copy(), VOCAB, matched=False)[:, ECHO], unmatched)
    np.testing.assert_array_equal(incremental(rows, VOCAB, matched=False), unmatched)
    silent = expected.copy()
    silent[:, [ECHO_COLUMNS.index(name) for name in SOUNDING_COLUMNS]] = 0  # nor the sounding columns
    np.testing.assert_array_equal(add_echoes(rows.copy(), VOCAB, sounding=False)[:, ECHO], silent)
    np.testing.assert_array_equal(incremental(rows, VOCAB, sounding=False), silent)


def test_a_repeated_tune_echoes_itself_and_a_fill_hears_the_bars_after_it(vocab: NoteVocab) -> None:
    """Four bars played twice: the second time every note's 4-bar echo is its own pitch, and a
    plain sequence has no echo from later bars; in an infill of the first time's bar 2, the fill
    hears the second time through its +4 echo."""
    tune = [(b * 4 + q, 1, 60 + (b * 5 + q * 2) % 12, 90) for b in range(4) for q in range(4)]  # (beat, beats, pitch, vel)
    notes = [(beat * 480, 480, pitch, vel) for beat, _, pitch, vel in tune]
    twice = notes + [(t + 16 * 480, d, p, v) for t, d, p, v in notes]
    piece = Piece.from_score(make_score([(0, False, twice)]), vocab)
    rows = plain(vocab, piece.header(), piece.notes, 0, piece.bars_meta(), ends=True).rows
    note = rows[:, COL["type"]] == NOTE
    second = note & (rows[:, COL["bar"]] > 4)
    assert second.sum() == 16
    np.testing.assert_array_equal(rows[second, COL["echo-4"]], rows[second, COL["pitch"]])
    echoed, own = [COL[f"echo-{name}"] for name in ECHO_NOTE_FIELDS], [COL[name] for name in ECHO_NOTE_FIELDS]
    np.testing.assert_array_equal(rows[second][:, echoed], rows[second][:, own])  # held and struck as the bar before
    assert not rows[:, [COL[f"echo+{lag}"] for lag in (1, 2, 4)]].any(), "nothing later has been read"
    filled = infill(vocab, piece.header(), piece.notes, 0, piece.bars_meta(), Hole((2, 0), (3, 0)))
    fill = filled.rows[filled.fill_start + 1 :]
    fill = fill[fill[:, COL["type"]] == NOTE]
    assert len(fill) == 4
    np.testing.assert_array_equal(fill[:, COL["echo+4"]], fill[:, COL["pitch"]])


def test_a_tune_played_again_after_five_bars_is_heard_by_the_matched_echo(vocab: NoteVocab) -> None:
    """Five bars (no fixed lag) played twice: once the second time's first bar has matched the
    first time's, every later note's matched echo is its own pitch; no fixed lag holds them all."""
    tune = [(b * 4 + q, 60 + (b * 7 + q * 3) % 12) for b in range(5) for q in range(4)]  # (beat, pitch)
    notes = [(beat * 480, 480, pitch, 90) for beat, pitch in tune]
    twice = notes + [(t + 20 * 480, d, p, v) for t, d, p, v in notes]
    piece = Piece.from_score(make_score([(0, False, twice)]), vocab)
    rows = plain(vocab, piece.header(), piece.notes, 0, piece.bars_meta(), ends=True).rows
    later = (rows[:, COL["type"]] == NOTE) & (rows[:, COL["bar"]] > 6)  # bars 7-10: the second time's 2nd-5th
    assert later.sum() == 16
    np.testing.assert_array_equal(rows[later, COL[MATCHED_COLUMN]], rows[later, COL["pitch"]])
    fixed = rows[later][:, [COL[f"echo-{lag}"] for lag in (1, 2, 4, 8, 16)]] == rows[later, COL["pitch"]][:, None]
    assert not fixed.any(axis=1).all()


def test_the_sampler_tells_the_heads_the_echoes_training_does(tmp_path, vocab: NoteVocab, music21_midi,
                                                              monkeypatch) -> None:
    """A small random model that reads echoes, its echo embeddings made loud so that a wrong echo
    moves the pitch's probability: the log-probabilities the sampler drew from, recomputed from the
    rows alone (teacher-forced, as RL and training see them), are the same (the prompt prefilled
    in fp32, as in ``tests/test_rl.py``)."""
    from harmonixr.generation.modes import Generator
    from harmonixr.sampling import decoder

    monkeypatch.setattr(decoder, "autocast_dtype", lambda *_: None)
    from harmonixr.rl.rewards import RewardContext, RewardWeights
    from harmonixr.rl.rollout import Prompt, collect, score_rollouts
    from harmonixr.sampling.decoder import int8_matrices
    from harmonixr.sampling.sampler import SamplingConfig

    torch.manual_seed(0)
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=2, ffn_hidden=128, head_hidden=64, max_len=512, echoes=True,
                      matched_echo=True, last_note=True, echo_notes=True, sounding=True)
    model = build_model(cfg, vocab)
    with torch.no_grad():
        for name in ECHO_COLUMNS:
            start = int(model.embed.offsets[COL[name]])
            model.embed.table.weight[start + 1 : start + vocab.sizes[name]] *= 100.0
    save_checkpoint(tmp_path / "echo", model, vocab, {})
    gen = Generator(tmp_path / "echo")
    piece = gen.piece(music21_midi["bach/bwv66.6"], "chorale")
    prompt = Prompt("chorale", piece=piece, region=Region.parse("5-6", vocab.grid))
    rollouts, skipped = collect(gen, [prompt], 2, SamplingConfig(), 3, RewardWeights(), RewardContext())
    assert skipped == 0 and len(rollouts) == 2
    with torch.no_grad():
        policy = int8_matrices(gen.model)
        scored = score_rollouts(policy, policy, rollouts, 1.0)
    heard = matched = 0
    for row, r in enumerate(rollouts):
        expected = sum(float(t.sum()) for seg in r.segments for t in seg.logps)
        assert float(scored.logp[row]) == pytest.approx(expected, abs=2e-3 * int(scored.tokens[row]) + 1e-3)
        heard += sum(int(seg.rows[seg.prompt_len :, ECHO].any(axis=1).sum()) for seg in r.segments)
        matched += sum(int(seg.rows[seg.prompt_len :, COL[MATCHED_COLUMN]].astype(bool).sum()) for seg in r.segments)
    assert heard > 0 and matched > 0, "the fills' notes heard the chorale around them"


def test_a_model_without_echoes_reads_none_of_them(vocab: NoteVocab) -> None:
    """A model trained before echoes (its config without them) gives the same outputs whatever the
    echo columns hold, and has no parameters for them; one with them reads them (the fixed lags'
    with ``echoes``, the matched one's with ``matched_echo`` as well)."""
    torch.manual_seed(0)
    rows = torch.from_numpy(np.stack([np.random.default_rng(2).integers(0, f.size, 30) for f in vocab.columns], 1))[None]
    noisy = rows.clone()
    noisy[..., ECHO] = torch.from_numpy(np.random.default_rng(3).integers(1, 129, (1, 30, len(ECHO))))
    small = dict(d_model=32, n_layers=1, n_heads=2, ffn_hidden=64, head_hidden=32, max_len=64)
    without, with_them, matched = (build_model(ModelConfig(**small, echoes=e, matched_echo=m), vocab).eval()
                                   for e, m in ((False, False), (True, False), (True, True)))
    assert not set(ECHO_COLUMNS) & set(without.cfg.column_sizes)
    assert MATCHED_COLUMN not in with_them.cfg.columns and MATCHED_COLUMN in matched.cfg.columns
    sizes = [sum(p.numel() for p in m.parameters()) for m in (without, with_them, matched)]
    assert (sizes[1] - sizes[0], sizes[2] - sizes[1]) == (len(ECHO_LAGS) * 129 * 32, 129 * 32)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(without.logits(rows), without.logits(noisy)))
        assert not all(torch.equal(a, b) for a, b in zip(with_them.logits(rows), with_them.logits(noisy)))
        only_matched = rows.clone()
        only_matched[..., COL[MATCHED_COLUMN]] = noisy[..., COL[MATCHED_COLUMN]]
        assert all(torch.equal(a, b) for a, b in zip(with_them.logits(rows), with_them.logits(only_matched)))
        assert not all(torch.equal(a, b) for a, b in zip(matched.logits(rows), matched.logits(only_matched)))


def test_a_fine_tune_that_reads_a_new_column_starts_from_the_same_function(tmp_path, vocab: NoteVocab) -> None:
    """A model that adds the last-note columns, started from one without them, gives the same logits
    whatever those columns hold (their embeddings start at zero) and learns them from there; the
    other way round is refused."""
    torch.manual_seed(0)
    small = dict(d_model=32, n_layers=1, n_heads=2, ffn_hidden=64, head_hidden=32, max_len=64, echoes=True)
    before = build_model(ModelConfig(**small), vocab).eval()
    save_checkpoint(tmp_path / "before", before, vocab, {})
    after = start_from(tmp_path / "before", build_model(ModelConfig(**small, last_note=True), vocab), vocab).eval()
    assert set(after.cfg.columns) - set(before.cfg.columns) == set(LAST_NOTE_COLUMNS)
    rows = torch.from_numpy(np.stack([np.random.default_rng(4).integers(1, f.size, 30) for f in vocab.columns], 1))[None]
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(before.logits(rows), after.logits(rows)))
    save_checkpoint(tmp_path / "after", after, vocab, {})
    with pytest.raises(CheckpointError, match="reads columns this one does not"):
        start_from(tmp_path / "after", build_model(ModelConfig(**small), vocab), vocab)


def test_a_melody_over_a_held_chord_hears_the_chord_and_the_drums_are_not_heard(vocab: NoteVocab) -> None:
    """A C major chord held for two bars (strings), a kick on every beat and a melody of quarter
    notes: each melody note hears C, E and G (and, from the second beat, the melody note before
    it only where it still sounds: never, they are quarter notes), in the second bar too (held
    over the bar line); the drums are heard by no note."""
    bar = 4 * 480
    chord = [(0, 2 * bar, pitch, 70) for pitch in (48, 52, 55)]
    melody = [(beat * 480, 480, 72 + 2 * (beat % 3), 90) for beat in range(8)]
    kicks = [(beat * 480, 120, 36, 100) for beat in range(8)]
    piece = Piece.from_score(make_score([(48, False, chord), (73, False, melody), (0, True, kicks)]), vocab)
    rows = plain(vocab, piece.header(), piece.notes, 0, piece.bars_meta(), ends=True).rows
    flute = (rows[:, COL["type"]] == NOTE) & (rows[:, COL["program"]] == 74)
    assert flute.sum() == 8
    values = rows[flute][:, [COL[name] for name in SOUNDING_COLUMNS]]
    bits = (values[:, 0] - 1) | (values[:, 1] - 1) << 4 | (values[:, 2] - 1) << 8
    assert (bits == (1 << 0) | (1 << 4) | (1 << 7)).all(), [bin(b) for b in bits]  # C, E, G
