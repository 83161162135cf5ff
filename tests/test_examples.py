"""Events, windows, infill examples and structural features, on real pieces."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from harmonixr.data.events import BAR, NOTE, Vocab, parse_body, render
from harmonixr.data.quantize import normalize
from harmonixr.data.tokenize import HarmonixrTokenizer
from harmonixr.data.validate import load_midi
from harmonixr.models.structure import FEATURES, Structure
from harmonixr.training.batches import scoring_windows
from harmonixr.training.config import ObjectiveConfig
from harmonixr.evaluation.compare import without_right_context
from harmonixr.training.examples import ExampleMaker
from tests.conftest import real_piece_params


@pytest.fixture(scope="module")
def vocab(tokenizer: HarmonixrTokenizer) -> Vocab:
    return Vocab(tokenizer)


def piece_ids(path: Path, tokenizer: HarmonixrTokenizer, limits) -> np.ndarray:
    score, _ = normalize(load_midi(path, limits), tokenizer, str(path))
    return tokenizer.encode(score, "pop")


def note_set(vocab: Vocab, ids, first_bar: int = 0) -> Counter:
    """Multiset of (bar, pos, track, pitch, velocity, duration) of a REMI body."""
    return Counter((e.bar, e.pos, e.track, *e.tokens[1:]) for e in parse_body(vocab, ids, first_bar) if e.kind == NOTE)


@pytest.mark.parametrize("real_file", real_piece_params(), indirect=True)
def test_events_render_back_to_the_same_tokens(real_file: Path, tokenizer, vocab, limits) -> None:
    _, body = tokenizer.split_header(piece_ids(real_file, tokenizer, limits))
    assert render(vocab, parse_body(vocab, body)) == body


@pytest.mark.parametrize("real_file", real_piece_params(), indirect=True)
def test_infill_examples_split_the_window_into_context_and_fill(real_file: Path, tokenizer, vocab, limits) -> None:
    ids = piece_ids(real_file, tokenizer, limits)
    maker = ExampleMaker(vocab, 384, ObjectiveConfig(infill_rate=1.0, drop_style=0.0, drop_control=0.0))
    rng = np.random.default_rng(7)
    kinds = Counter()
    for _ in range(30):
        ex = maker.sample(ids, rng)
        assert len(ex.ids) <= 384 and ex.ids[0] == tokenizer.bos_id
        kinds[ex.kind] += 1
        if ex.fill_start < 0:
            continue
        seq = [int(t) for t in ex.ids]
        assert seq[ex.fill_start] == vocab.fill_id and seq[-1] == vocab.end_id
        header, context = tokenizer.split_header(seq[: ex.fill_start])
        fill = seq[ex.fill_start + 1 : -1]
        marks = [k for k, t in enumerate(context) if t == vocab.hole_id]
        assert 1 <= len(marks) <= 2
        # the hole's tracks, when some are named, follow the first marker
        named = []
        for t in context[marks[0] + 1 :]:
            if vocab.program[t] == -2 or vocab.family[t] != "Program":
                break
            named.append(int(vocab.program[t]))
        fill_events = parse_body(vocab, fill, first_bar=0)
        assert fill_events and fill_events[0].kind == BAR
        if named:
            assert {e.track for e in fill_events if e.kind == NOTE} <= set(named)
        # context and fill together hold exactly the window's notes; only context after the hole may
        # have been trimmed to fit the block
        given = maker.given_mask(seq)
        ctx_ids = [t for k, t in enumerate(seq[: ex.fill_start]) if not given[k]][len(header) + 1 :]
        hole_bar = ex.bar0 + context[: marks[0]].count(vocab.bar_id) - 1
        ctx, filled = note_set(vocab, ctx_ids, ex.bar0), note_set(vocab, fill, hole_bar)
        _, window_body = tokenizer.split_header(maker.plain(ids, ex.bar0).ids)
        whole = note_set(vocab, window_body, ex.bar0)
        assert not (ctx + filled) - whole, "context or fill holds a note the window does not"
        missing = whole - (ctx + filled)
        if missing:
            assert min(m[:2] for m in missing) >= max(m[:2] for m in ctx + filled)
        # the fill decodes as a REMI body
        assert tokenizer.decode([*header, *fill]).note_num() == sum(1 for e in fill_events if e.kind == NOTE)
        # task tokens are given, never learned
        for k, t in enumerate(seq):
            if t in (vocab.hole_id, vocab.fill_id):
                assert not ex.target_mask[k]
    assert set(kinds) - {"plain"}, "no infill example was made"


@pytest.mark.parametrize("real_file", real_piece_params(), indirect=True)
def test_spm_examples_reorder_the_same_hole_and_fill(real_file: Path, tokenizer, vocab, limits) -> None:
    """The "spm" layout holds the tokens of the "context" layout plus one leading Infill_Hole: the music
    from the hole's first bar on, then Infill_Fill, the bars before the hole and the same fill, whose
    bars get the same structure features; without the music after the hole both layouts agree too."""
    ids = piece_ids(real_file, tokenizer, limits)
    structure = Structure(vocab)
    bar_feature = FEATURES.index("bar")
    makers = {layout: ExampleMaker(vocab, 384, ObjectiveConfig(infill_rate=1.0, drop_style=0.0, drop_control=0.0,
                                                               infill_layout=layout)) for layout in ("context", "spm")}
    compared = 0
    for seed in range(12):
        ctx, spm = (maker.sample(ids, np.random.default_rng(seed)) for maker in makers.values())
        if ctx.fill_start < 0 or spm.fill_start < 0:
            continue
        compared += 1
        assert ctx.kind == spm.kind and ctx.bar0 == spm.bar0
        fill = list(spm.ids[spm.fill_start + 1 :])
        assert fill == list(ctx.ids[ctx.fill_start + 1 :]) and fill[0] == vocab.bar_id and fill[-1] == vocab.end_id
        seq = [int(t) for t in spm.ids]
        header, body = tokenizer.split_header(seq)
        assert body[0] == vocab.hole_id and vocab.fill_id in body
        # one token more: at most what the block trims after the hole differs
        assert Counter(spm.ids.tolist()) - Counter(ctx.ids.tolist()) == Counter({vocab.hole_id: 1})
        # the bars before the hole come after Infill_Fill and the fill follows them directly
        before = seq[seq.index(vocab.fill_id) + 1 : spm.fill_start + 1]
        f_ctx = structure.features(ctx.ids, ctx.bar0)[:, bar_feature]
        f_spm = structure.features(spm.ids, spm.bar0)[:, bar_feature]
        assert list(f_spm[spm.fill_start + 1 :]) == list(f_ctx[ctx.fill_start + 1 :])
        assert f_spm[spm.fill_start + 1] == 1 + (spm.bar0 + before.count(vocab.bar_id)) % 16, "no bar between"
        if before:
            assert before[0] == vocab.bar_id and f_spm[seq.index(vocab.fill_id) + 1] == 1 + spm.bar0 % 16
        # without the music after the hole (what it is worth) the two hold the same tokens
        left = [without_right_context(e, vocab) for e in (ctx, spm)]
        assert list(left[0].ids[left[0].fill_start + 1 :]) == list(left[1].ids[left[1].fill_start + 1 :]) == fill
        assert Counter(left[1].ids.tolist()) - Counter(left[0].ids.tolist()) == Counter({vocab.hole_id: 1})
    assert compared >= 6


@pytest.mark.parametrize("real_file", real_piece_params(), indirect=True)
def test_scoring_windows_score_every_note_once_and_start_at_bars(real_file: Path, tokenizer, vocab, limits) -> None:
    ids = piece_ids(real_file, tokenizer, limits)
    maker = ExampleMaker(vocab, 256, ObjectiveConfig())
    header, _ = tokenizer.split_header(ids)
    scored_notes = 0
    for ex in scoring_windows(maker, ids):
        assert list(ex.ids[1 : 1 + len(header)]) == header, "every window carries the piece's header"
        assert ex.ids[1 + len(header)] == vocab.bar_id, "every window starts at a bar line"
        scored_notes += int(vocab.is_pitch[ex.ids[ex.target_mask]].sum())
    assert scored_notes == int(vocab.is_pitch[ids].sum())


def test_windows_carry_the_tempo_in_force(tokenizer, vocab, music21_midi, limits) -> None:
    ids = piece_ids(music21_midi["mozart/k155/movement2"], tokenizer, limits)
    maker = ExampleMaker(vocab, 256, ObjectiveConfig())
    n_bars = int((ids == vocab.bar_id).sum())
    window = maker.plain(ids, n_bars // 2)
    assert any(vocab.is_tempo[t] for t in window.ids[:40]), "a window in mid-piece states its tempo"


def test_style_and_controls_are_dropped_at_random(tokenizer, vocab, music21_midi, limits) -> None:
    ids = piece_ids(music21_midi["bach/bwv66.6"], tokenizer, limits)
    maker = ExampleMaker(vocab, 256, ObjectiveConfig(drop_style=0.5, drop_control=0.5))
    rng = np.random.default_rng(0)
    lengths = Counter(len(maker.header(ids, rng)) for _ in range(200))
    full = len(maker.header(ids, None))
    assert lengths[full] > 0 and min(lengths) < full - 2


def test_structure_features_follow_bars_positions_tracks_and_fills(tokenizer, vocab) -> None:
    structure = Structure(vocab)
    v = tokenizer.vocab
    seq = [v["BOS_None"], v["Bar_None"], v["TimeSig_4/4"], v["Position_0"], v["Program_1"], v["Pitch_60"],
           v["Position_30"], v["Program_0"], v["Pitch_64"], v["Infill_Hole"], v["Bar_None"], v["Position_12"],
           v["Infill_Fill"], v["Bar_None"], v["Position_13"]]
    f = {name: structure.features(seq, bar0=3)[:, k] for k, name in enumerate(FEATURES)}
    assert f["bar"][0] == 1 + 2 and f["phase"][0] == 0  # before the first Bar: the bar before the window
    assert f["bar"][1] == 1 + 3 and f["phase"][1] == 1 and f["beat"][1] == 1
    assert f["phase"][6] == 1 + 30 % 12 and f["beat"][6] == 1 + 30 // 12
    assert f["track"][5] == 2 + 1 and f["track"][8] == 2 + 0
    assert f["bar"][10] == 1 + 4
    assert f["bar"][13] == 1 + 3, "the fill restarts at the bar of the hole's first marker"
    assert f["phase"][14] == 1 + 13 % 12
    assert len(set(f["type"])) > 5 and min(f["type"]) >= 1
    assert all(int(f[name].max()) < structure.sizes[name] for name in FEATURES)


def test_structure_features_of_the_spm_layout(tokenizer, vocab) -> None:
    """A leading Infill_Hole: the music after the hole has no known bar; Infill_Fill starts the window's bars."""
    v = tokenizer.vocab
    seq = [v["BOS_None"], v["Infill_Hole"], v["Bar_None"], v["TimeSig_4/4"], v["Infill_Hole"], v["Bar_None"],
           v["Position_6"], v["Program_0"], v["Pitch_60"], v["Infill_Fill"], v["Bar_None"], v["Position_3"],
           v["Bar_None"]]
    f = {name: Structure(vocab).features(seq, bar0=5)[:, k] for k, name in enumerate(FEATURES)}
    assert list(f["bar"][1:9]) == [0] * 8 and f["phase"][6] == 1 + 6 and f["track"][7] == 2 + 0
    assert f["bar"][9] == 1 + 4 and f["phase"][9] == 0 and f["track"][9] == 0, "reset to before the window"
    assert f["bar"][10] == 1 + 5 and f["phase"][11] == 1 + 3 and f["bar"][12] == 1 + 6
