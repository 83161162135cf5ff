"""The sampler: cached and compiled decoders equal the full forward pass, seeds reproduce, the
grammar keeps every note where the request says, the last-bar rule and the filters do what they say."""

from __future__ import annotations

from dataclasses import replace

import numba
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmonixr.models.checkpoint import build_model
from harmonixr.models.config import ModelConfig
from harmonixr.models.transformer import KVCache
from harmonixr.runtime import autocast_dtype
from harmonixr.sampling.decoder import INT8_TOP, NumbaDecoder, TorchDecoder, int8_matrices, int8_matrix, int8_rows, make_decoder
from harmonixr.sampling.grammar import NoteGrammar
from harmonixr.sampling.kernels import matmul, softmax
from harmonixr.sampling.rules import CHORD_LEAN, PITCH_SLACK, ROOT_LEAN, NoteState, Rules, cap_lean
from harmonixr.sampling.sampler import Placement, Sampler, SamplingConfig, SamplingError, filter_logits, merge_end
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK
from harmonixr.tokens.prompt import Bars, Header, header_rows, time_key
from harmonixr.tokens.vocab import BODY, END, EOS, FIELDS, NOTE, NoteVocab

BAR_POSITIONS = (48,) * 40


@pytest.fixture(scope="module")
def model(vocab: NoteVocab):
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, ffn_hidden=64, head_hidden=32, max_len=160)
    return build_model(cfg, vocab).eval()


def _setup(vocab: NoteVocab, slots=(0, 1, 16), programs=(0, 33, -1)):  # noqa: ANN001, ANN202
    header = Header(vocab.style_value("pop"), (), tuple(slots), tuple(programs))
    bars = Bars(np.full(40, vocab.meter_value(4, 4)), np.full(40, 17))
    return header, bars, header_rows(vocab, header)


def random_rows(vocab: NoteVocab, length: int) -> np.ndarray:
    """``length`` rows of random values in every column's range (seeded)."""
    rng = np.random.default_rng(0)
    rows = np.zeros((length, len(vocab.columns)), dtype=np.int64)
    for k, f in enumerate(vocab.columns):
        rows[:, k] = rng.integers(0, f.size, length)
    return rows


def test_cached_and_compiled_decoders_equal_the_full_forward(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """The cache, and both decoders, compute what the full forward pass of the model with int8
    matrices does (the decoders' weights); that model is within 1% of the fp32 one."""
    rows = random_rows(vocab, 60)
    rounded = int8_matrices(model)
    with torch.no_grad():
        exact = model(torch.from_numpy(rows)[None])[0].numpy()
        full = rounded(torch.from_numpy(rows)[None])[0].numpy()
        cache = KVCache(model.cfg, 1, 60, torch.device("cpu"))
        parts = [model(torch.from_numpy(rows[:25])[None], cache), model(torch.from_numpy(rows[25:30])[None], cache)]
        parts += [model(torch.from_numpy(rows[t : t + 1])[None], cache) for t in range(30, 60)]
    np.testing.assert_allclose(torch.cat(parts, 1)[0].numpy(), exact, atol=1e-5, rtol=1e-5)
    assert 0 < np.linalg.norm(full - exact) / np.linalg.norm(exact) < 0.01
    assert all(p.dtype == torch.float32 for p in model.parameters()), "the model itself is left as it was"
    for decoder in (TorchDecoder(model), NumbaDecoder(model)):
        h = decoder.start(rows[:30], 2, 60)
        np.testing.assert_allclose(h[0], full[29], atol=1e-4, rtol=1e-4)
        for t in range(30, 34):
            h = decoder.step(np.repeat(rows[t : t + 1], 2, axis=0))
            np.testing.assert_allclose(h[1], full[t], atol=1e-4, rtol=1e-4)
    heads = NumbaDecoder(model).heads
    with torch.no_grad():
        cond = model.embed.lookup(0, torch.tensor([NOTE]))
        expect = rounded.heads.field_logits(1, torch.from_numpy(full[33:34]), cond).numpy()
    np.testing.assert_allclose(heads.logits(1, full[33:34], cond.numpy()), expect, atol=1e-4, rtol=1e-4)


def test_the_step_is_the_same_bits_on_one_thread_or_more(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """The step splits each layer's attention heads, and its MLP's halves, between numba's threads;
    each part's sums, and the sum of the parts, run in the same order, so two rows of different
    notes give the same hidden states on one thread or two."""
    rng = np.random.default_rng(1)
    rows = np.stack([rng.integers(0, f.size, 40) for f in vocab.columns], 1)
    threads = numba.get_num_threads()
    out = []
    try:
        for count in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(count)
            decoder = NumbaDecoder(model)
            decoder.start(rows[:30], 2, 60)
            out.append([decoder.step(np.stack([rows[t], rows[t + 1]])) for t in range(30, 38)])
    finally:
        numba.set_num_threads(threads)
    assert all(np.array_equal(a, b) for a, b in zip(*out))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(1, 70), st.integers(1, 3), st.floats(1e-3, 1e3), st.integers(0, 2**31 - 1))
def test_int8_matrices_keep_each_row_within_half_a_step(outs: int, ins: int, rows: int, size: float, seed: int) -> None:
    """A row's largest weight becomes +-127 exactly, every weight is within half its row's step of
    q x scale (an all-zero row stays 0), and the kernel's product equals x @ (q x scale)^T."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(outs, ins, generator=gen) * size
    weight[0] = 0.0  # a row of zeros (a pruned output) must not divide by zero
    q, scale = int8_rows(weight)
    assert q.abs().max() <= INT8_TOP and torch.equal(q, q.round())
    assert torch.all(q[1:].abs().amax(dim=1) == INT8_TOP) and not q[0].any()
    assert torch.all((weight - q * scale).abs() <= scale / 2 * (1 + 1e-6))
    x = torch.randn(rows, ins, generator=gen)
    out = np.empty((rows, outs), np.float32)
    matmul(x.numpy(), int8_matrix(weight), out)
    np.testing.assert_allclose(out, (x @ (q * scale).T).numpy(), rtol=1e-4, atol=1e-4 * size * ins)


def test_the_prompt_runs_in_bf16_where_the_machine_has_it(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """make_decoder prefills the prompt under the runtime's autocast dtype (bf16 on a CPU with it);
    the hidden state it hands the fp32 steps stays within 5% of the fp32 prefill's."""
    decoder = make_decoder(model)
    assert decoder.prefill.dtype == autocast_dtype("auto", torch.device("cpu"))
    rows = np.stack([np.random.default_rng(1).integers(0, f.size, 40) for f in vocab.columns], 1)
    exact, fast = NumbaDecoder(model).start(rows, 1, 60), decoder.start(rows, 1, 60)
    assert np.linalg.norm(fast - exact) / np.linalg.norm(exact) < 0.05


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_a_second_draw_on_the_same_prompt_skips_its_prefill(model, vocab: NoteVocab, monkeypatch, backend) -> None:  # noqa: ANN001
    """The same prompt again (a fill drawn again, other seeds) reuses the last prefill and draws
    what a fresh sampler draws; another prompt, or new weights, run it again."""
    from harmonixr.sampling import decoder as decoders

    calls = []
    real = decoders.prefill
    monkeypatch.setattr(decoders, "prefill", lambda *a: calls.append(1) or real(*a))
    rules = Rules((0, 1, 16), BAR_POSITIONS, (0, 0), 3, 0, EOS, min_notes=10)
    header, bars, prompt = _setup(vocab)
    sampler = Sampler(model, backend)
    draw = lambda s, seed, p=prompt: s.generate(p, 2, SamplingConfig(max_notes=30), seed, NoteGrammar(vocab, rules),  # noqa: E731
                                                 NoteState(0, 0), Placement(0, bars, header, BODY))
    first, again, other = draw(sampler, 1), draw(sampler, 1), draw(sampler, 2)
    assert len(calls) == 1 and all(np.array_equal(a.notes, b.notes) for a, b in zip(first, again))
    fresh = draw(Sampler(model, backend), 2)
    assert all(np.array_equal(a.notes, b.notes) for a, b in zip(other, fresh)) and len(calls) == 2
    draw(sampler, 1, prompt[:-1])  # another prompt
    sampler.weights_changed()
    draw(sampler, 1)
    assert len(calls) == 4


def _sample(model, vocab: NoteVocab, rules: Rules, n: int, seed: int, cfg: SamplingConfig = SamplingConfig(),  # noqa: ANN001
            backend: str = "torch"):  # noqa: ANN202
    header, bars, prompt = _setup(vocab)
    grammar = NoteGrammar(vocab, rules)
    state = NoteState(*rules.first)
    sampler = Sampler(model, backend)
    return sampler.generate(prompt, n, cfg, seed, grammar, state, Placement(0, bars, header, BODY)), grammar


def test_same_seed_same_music_on_both_backends(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    rules = Rules((0, 1, 16), BAR_POSITIONS, (0, 0), 7, 0, EOS, min_notes=20)
    a, _ = _sample(model, vocab, rules, 3, seed=1, cfg=SamplingConfig(max_notes=60))
    b, _ = _sample(model, vocab, rules, 3, seed=1, cfg=SamplingConfig(max_notes=60), backend="numba")
    c, _ = _sample(model, vocab, rules, 3, seed=2, cfg=SamplingConfig(max_notes=60))
    assert all(np.array_equal(x.notes, y.notes) for x, y in zip(a, b))
    assert any(not np.array_equal(x.notes, y.notes) for x, y in zip(a, c))
    assert len({x.notes.tobytes() for x in a}) > 1, "the variations of one batch differ"
    for x in a:  # the end waits for the notes asked for, unless the region has no room left
        assert len(x.notes) >= 20 or tuple(x.notes[-1, :2]) == (7, 47)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(first_bar=st.integers(0, 4), first_pos=st.sampled_from([0, 12, 30]), length=st.integers(1, 3),
       last_pos=st.sampled_from([0, 24]), tracks=st.sampled_from([(0,), (1, 16), (0, 1, 16)]),
       low=st.integers(30, 60), poly=st.sampled_from([1, 2, 1 << 30]), seed=st.integers(0, 1000))
def test_every_sampled_note_is_where_the_rules_say(model, vocab: NoteVocab, first_bar, first_pos, length, last_pos,  # noqa: ANN001
                                                   tracks, low, poly, seed) -> None:
    """Property: for an untrained model (any logits), notes stay in the region, on allowed tracks,
    in the pitch range (melodic) and the scale, in reading order, under the polyphony cap."""
    last_bar = first_bar + length - 1
    scale = frozenset({0, 2, 4, 5, 7, 9, 11})
    rules = Rules(tracks, BAR_POSITIONS, (first_bar, first_pos), last_bar, last_pos, END, (low, low + 24), scale,
                  max_polyphony=poly, max_notes=50, min_notes=30)
    outs, grammar = _sample(model, vocab, rules, 2, seed, SamplingConfig(max_notes=50))
    for out in outs:
        notes = out.notes
        if not len(notes):
            continue
        key = time_key(notes[:, BAR], notes[:, POS], vocab)
        assert (key >= time_key(first_bar, first_pos, vocab)).all()
        assert (notes[:, BAR] <= last_bar).all()
        if last_pos:
            assert (notes[notes[:, BAR] == last_bar, POS] < last_pos).all()
        assert set(notes[:, TRACK].tolist()) <= set(tracks)
        melodic = notes[notes[:, TRACK] != vocab.drum_slot]
        assert ((melodic[:, PITCH] >= low) & (melodic[:, PITCH] <= low + 24)).all()
        assert set((melodic[:, PITCH] % 12).tolist()) <= scale
        order = key * 10_000 + notes[:, TRACK] * 200 + notes[:, PITCH]
        assert (np.diff(order) > 0).all(), "reading order, no note twice"
        if poly < 1 << 30:
            onsets = notes[:, BAR] * BAR_POSITIONS[0] + notes[:, POS]  # grid steps: exact integer comparisons
            ends = onsets + vocab.durations[notes[:, 5]]
            for t in onsets:
                assert ((onsets <= t) & (ends > t)).sum() <= poly


@given(length=st.integers(1, 2), last_pos=st.sampled_from([0, 12]), fewest=st.lists(st.integers(0, 12), min_size=3,
       max_size=3), extra=st.integers(0, 3), quiet=st.integers(1, 100), seed=st.integers(0, 1000),
       count_notes=st.booleans(), rhythm=st.booleans(), least=st.booleans())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_asked_onsets_and_velocities_hold_per_track(model, vocab: NoteVocab, monkeypatch, length, last_pos,  # noqa: ANN001
                                                    fewest, extra, quiet, seed, count_notes, rhythm, least) -> None:
    """Property: for an untrained model, every mask leaves a value, each track starts no more
    onsets (with ``count_notes``: notes, and by the end of each bar at most one more than an even
    pace allows) than its most and finishes with at least its fewest, and every note's velocity lies in
    its track's range; track 1 starts no more than 2 notes at one onset. With rhythms, a track's
    onsets take its rhythm's positions (a track behind its pace may play off them when due). With
    ``least``, track 0 starts two notes or more at each onset of a finished row (counting onsets: a
    note count may run out first) unless its note is the highest pitch a melodic note may take."""
    tracks = (0, 1, 16)
    windows = tuple((slot, low, low + extra) for slot, low in zip(tracks, fewest) if low + extra > 0)
    velocities = ((0, quiet, quiet + 20), (16, 1, quiet))
    rhythms = ((0, (0, 12, 24, 36)), (16, tuple(range(0, 48, 6)))) if rhythm else ()
    rules = Rules(tracks, BAR_POSITIONS, (1, 0), length, last_pos, END, track_velocities=velocities,
                  track_onsets=windows, count_notes=count_notes, track_rhythms=rhythms, track_chords=((1, 2),),
                  track_least_chords=((0, 2),) if least else ())
    mask = NoteGrammar.mask

    def checked(self, k, state, chosen):  # noqa: ANN001, ANN202
        out = mask(self, k, state, chosen)
        assert out.any(), (k, state, chosen)
        return out

    monkeypatch.setattr(NoteGrammar, "mask", checked)
    outs, _ = _sample(model, vocab, rules, 2, seed, SamplingConfig(max_notes=120))
    for out in outs:
        notes = out.notes
        for slot, low, high in windows:
            mine = notes[notes[:, TRACK] == slot]
            onsets = len(mine) if count_notes else len({(int(b), int(p)) for b, p in mine[:, [BAR, POS]]})
            assert onsets <= high and (onsets >= low or not out.ended), (slot, onsets, low, high)
            if count_notes:  # by the end of each bar, its share of the region's time (one more for a track due)
                size = BAR_POSITIONS[0]
                start, stop = size, length * size + (last_pos or size)
                for bar in range(1, length + 1):
                    share = -(-high * (min((bar + 1) * size, stop) - start) // (stop - start))
                    assert (mine[:, BAR] <= bar).sum() <= share + 1, (slot, bar, high)
        for slot, low, high in velocities:
            assert ((notes[notes[:, TRACK] == slot, 6] >= low) & (notes[notes[:, TRACK] == slot, 6] <= high)).all()
        _, chords = np.unique(notes[notes[:, TRACK] == 1][:, [BAR, POS]], axis=0, return_counts=True)
        assert (chords <= 2).all(), chords
        if least and out.ended and not count_notes:
            zero = notes[notes[:, TRACK] == 0]
            _, where, counts = np.unique(zero[:, [BAR, POS]], axis=0, return_inverse=True, return_counts=True)
            assert (zero[counts[where.ravel()] == 1, PITCH] == vocab.spec.pitch_range[1]).all(), zero
        paced = {slot for slot, low, _ in windows if low > 0}
        for slot, positions in rhythms:
            if slot not in paced:
                assert set(notes[notes[:, TRACK] == slot, POS].tolist()) <= set(positions), (slot, positions)


def test_the_last_bar_rule_moves_the_mass_past_the_region_to_the_end() -> None:
    types = np.log(np.array([[0.01, 0.01, 0.01, 0.9, 0.01, 0.06]]))  # NOTE is 3, END-like is 5 here
    dbar = np.log(np.array([[0.0001, 0.25, 0.25, 0.4999, 1e-9]]))  # stored dbar 1, 2 allowed; 3 is past
    allowed, past = np.array([[False, True, True, False, False]]), np.array([[False, False, False, True, True]])
    merged = np.exp(merge_end(types, dbar, allowed, past, 5))[0]
    assert merged[3] == pytest.approx(0.9 * 0.5, rel=1e-3)
    assert merged[5] == pytest.approx(0.06 + 0.9 * 0.4999, rel=1e-3)


@pytest.mark.parametrize("bar", [0, 3, 6])
def test_every_bar_offered_has_a_position_while_a_sparse_track_is_ahead_of_its_pace(vocab: NoteVocab, bar: int) -> None:
    """A track at most 8 onsets over 40 bars with 2 already, its last onset's chord free to grow:
    the bars before its pace lets a new onset come hold no position, so they are not offered (they
    were, and the sampler drew a position from an empty mask: a POP909 bridge rewritten whole)."""
    grammar = NoteGrammar(vocab, Rules((1,), BAR_POSITIONS, (0, 0), 39, 0, EOS, track_onsets=((1, 2, 8),),
                                       track_chords=((1, 2),)))
    state = NoteState(bar, 5, 1, 60, 2, frozenset({1}), 1, onsets={1: 2}, last={1: bar * 48 + 5})
    offered = [bar + d - 1 for d in np.nonzero(grammar.open_bars(state))[0]]
    assert offered[0] == bar  # the chord may grow
    assert all(grammar.positions(state, b).any() for b in offered)
    assert offered[1] > bar + 1  # a new onset waits for its pace


def test_the_tonic_lean_weighs_melodic_pitches_only(vocab: NoteVocab) -> None:
    """Rules.tonic (root first) adds ROOT_LEAN nats to the stored pitch values of its root's pitch
    class and CHORD_LEAN to the others' on melodic tracks (stored value = pitch + 1), nothing on
    drums, and no lean at all without a tonic."""
    a_minor = (9, 0, 4)
    grammar = NoteGrammar(vocab, Rules((0, vocab.drum_slot), BAR_POSITIONS, tonic=a_minor))
    lean = grammar.lean(1, 0, 0)  # stored track 1 = slot 0
    assert lean is not None and lean[0] == 0.0
    pitches = np.arange(len(lean) - 1)
    assert set(lean[1:][pitches % 12 == 9]) == {ROOT_LEAN}
    assert set(lean[1:][np.isin(pitches % 12, [0, 4])]) == {CHORD_LEAN}
    assert set(lean[1:][~np.isin(pitches % 12, a_minor)]) == {0.0}
    assert ROOT_LEAN > CHORD_LEAN > 0
    assert grammar.lean(vocab.drum_slot + 1, 0, 0) is None
    assert NoteGrammar(vocab, Rules((0,), BAR_POSITIONS)).pitch_lean == {}


def test_track_leans_add_to_the_key_lean_per_track(vocab: NoteVocab) -> None:
    """Rules.track_leans add their nats to the pitch logits of their track (the drums too), on top
    of a key's tonic lean; a track without one keeps the key's alone."""
    own = np.linspace(-2.0, 0.0, 128)
    kit = np.where(np.arange(128) == 42, 1.5, 0.0)
    rules = Rules((0, 1, vocab.drum_slot), BAR_POSITIONS, tonic=(0,),
                  track_leans=((0, tuple(own)), (vocab.drum_slot, tuple(kit))))
    grammar = NoteGrammar(vocab, rules)
    tonic = np.where(np.arange(128) % 12 == 0, ROOT_LEAN, 0.0)
    np.testing.assert_allclose(grammar.lean(1, 0, 0)[1:], own + tonic)
    np.testing.assert_allclose(grammar.lean(2, 0, 0)[1:], tonic)
    np.testing.assert_allclose(grammar.lean(vocab.drum_slot + 1, 0, 0)[1:], kit)


def test_time_leans_add_to_a_melodic_note_starting_at_their_step(vocab: NoteVocab) -> None:
    """Rules.time_leans (grid step from bar 0, 12 nats) add to the pitch logits of a melodic note
    starting at that step, in every octave, on top of its track's lean; not to the drums, nor at
    another step."""
    own = np.linspace(-1.0, 0.0, 128)
    chord = tuple(2.0 if pc in (0, 4, 7) else 0.0 for pc in range(12))
    rules = Rules((0, 1, vocab.drum_slot), BAR_POSITIONS, track_leans=((0, tuple(own)),), time_leans=((50, chord),))
    grammar = NoteGrammar(vocab, rules)
    now = np.where(np.isin(np.arange(128) % 12, [0, 4, 7]), 2.0, 0.0)
    np.testing.assert_allclose(grammar.lean(1, 1, 2)[1:], own + now)  # bar 1, position 2: step 48 + 2
    np.testing.assert_allclose(grammar.lean(2, 1, 2)[1:], now)
    np.testing.assert_allclose(grammar.lean(1, 1, 3)[1:], own)
    assert grammar.lean(2, 1, 3) is None and grammar.lean(vocab.drum_slot + 1, 1, 2) is None
    assert grammar.leans and not NoteGrammar(vocab, Rules((0,), BAR_POSITIONS)).leans


def test_bass_leans_add_to_a_bass_slots_notes_only(vocab: NoteVocab) -> None:
    """Rules.bass_leans (grid step, 12 nats) add to the time leans of a note of a slot in
    Rules.bass_slots starting at that step, and to no other slot's."""
    chord = tuple(1.5 if pc in (0, 4, 7) else 0.0 for pc in range(12))
    root = tuple(4.0 if pc == 0 else 0.0 for pc in range(12))
    rules = Rules((0, 1, vocab.drum_slot), BAR_POSITIONS, time_leans=((50, chord),), bass_slots=(1,),
                  bass_leans=((50, root),))
    grammar = NoteGrammar(vocab, rules)
    tones = np.where(np.isin(np.arange(128) % 12, [0, 4, 7]), 1.5, 0.0)
    np.testing.assert_allclose(grammar.lean(2, 1, 2)[1:], tones + np.where(np.arange(128) % 12 == 0, 4.0, 0.0))
    np.testing.assert_allclose(grammar.lean(1, 1, 2)[1:], tones)  # slot 0 is no bass
    assert grammar.lean(2, 1, 3) is None and grammar.lean(vocab.drum_slot + 1, 1, 2) is None
    assert not NoteGrammar(vocab, replace(rules, bass_slots=(), time_leans=())).leans


def test_a_track_told_its_first_step_starts_by_it(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """Rules.track_first: a track held to at least one onset starts by the grid step it is told (a
    made onset falls on an eighth note: step 12 is one), however little the model wants it there
    (an untrained model, 6 rows); its pace alone lets its first onset wait until late in the region."""
    window = ((1, 1, 2),)  # slot 1: one or two onsets in the region
    told = Rules((0, 1, vocab.drum_slot), BAR_POSITIONS, (0, 0), 3, 0, EOS, track_onsets=window, track_first=((1, 12),))
    free = Rules((0, 1, vocab.drum_slot), BAR_POSITIONS, (0, 0), 3, 0, EOS, track_onsets=window)

    def firsts(rules: Rules) -> list[int]:
        outs, _ = _sample(model, vocab, rules, 6, 5, SamplingConfig(max_notes=60))
        return [int((o.notes[o.notes[:, TRACK] == 1, BAR] * BAR_POSITIONS[0] + o.notes[o.notes[:, TRACK] == 1, POS]).min())
                for o in outs]

    assert all(step <= 12 for step in firsts(told))
    assert max(firsts(free)) > 12


def test_a_track_told_its_longest_wait_never_waits_longer(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """Rules.track_waits: slot 1 (1 to 4 onsets over 3 bars, 40 notes in all) starts its next onset
    within 12 grid steps of its last one, up to the next eighth note (a made onset falls on one),
    while it is below its pace (3 onsets); an untrained model left alone waits longer."""
    window = ((1, 1, 4),)

    def waits(rules: Rules) -> list[int]:
        outs, _ = _sample(model, vocab, rules, 6, 2, SamplingConfig(max_notes=80))
        found = []
        for o in outs:
            mine = o.notes[o.notes[:, TRACK] == 1]
            steps = np.unique(mine[:, BAR] * BAR_POSITIONS[0] + mine[:, POS])[:3]
            found += np.diff(steps).tolist()
        return found

    told = waits(Rules((0, 1, vocab.drum_slot), BAR_POSITIONS, (0, 0), 2, 0, EOS, min_notes=40, track_onsets=window,
                       track_waits=((1, 12),)))
    assert len(told) >= 8 and max(told) < 12 + vocab.grid // 2, told
    assert max(waits(Rules((0, 1, vocab.drum_slot), BAR_POSITIONS, (0, 0), 2, 0, EOS, min_notes=40,
                           track_onsets=window))) >= 18


def test_a_track_told_its_longest_wait_plays_on_to_the_end_of_the_region(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """Rules.track_waits hold past a track's pace and at the end: slot 1 (1 to 40 onsets over 3
    bars, no least number of notes) waits no more than 12 grid steps between onsets, up to the next
    eighth note, however many it has played, nor from its last onset to the region's end: the
    request does not end before. An untrained model left alone ends a row early or waits longer
    (a fill of a Freedoom song ended 3 beats before its hole's end, every track silent there)."""
    stop = 3 * BAR_POSITIONS[0]

    def longest(rules: Rules) -> int:
        outs, _ = _sample(model, vocab, rules, 6, 3, SamplingConfig(max_notes=200))
        waits = []
        for o in outs:
            mine = o.notes[o.notes[:, TRACK] == 1]
            steps = np.unique(mine[:, BAR] * BAR_POSITIONS[0] + mine[:, POS])
            waits.append(int(np.diff(np.append(steps, stop)).max()))
        return max(waits)

    window = dict(track_onsets=((1, 1, 40),))
    assert longest(Rules((0, 1, vocab.drum_slot), BAR_POSITIONS, (0, 0), 2, 0, EOS, track_waits=((1, 12),), **window)) \
        < 12 + vocab.grid // 2
    assert longest(Rules((0, 1, vocab.drum_slot), BAR_POSITIONS, (0, 0), 2, 0, EOS, **window)) >= 24


def test_a_track_told_its_fewest_chord_notes_sounds_them_at_each_onset(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """Rules.track_least_chords: every onset of slot 1 holds two notes or more (an untrained model,
    which rarely writes two at once; the chord cap of 3 still holds), and the end waits for the last
    one's second note; without the rule, some onsets hold one note."""
    def onsets(rules: Rules) -> np.ndarray:
        outs, _ = _sample(model, vocab, rules, 4, 9, SamplingConfig(max_notes=60))
        rows = [o.notes[o.notes[:, TRACK] == 1] for o in outs]  # each row's notes of slot 1, per onset
        return np.concatenate([np.unique(r[:, [BAR, POS]], axis=0, return_counts=True)[1] for r in rows if len(r)])

    base = dict(min_notes=20, track_chords=((1, 3),))
    told = Rules((0, 1, vocab.drum_slot), BAR_POSITIONS, (0, 0), 3, 0, EOS, track_least_chords=((1, 2),), **base)
    counts = onsets(told)
    assert len(counts) >= 5 and counts.min() >= 2 and counts.max() <= 3
    assert onsets(Rules((0, 1, vocab.drum_slot), BAR_POSITIONS, (0, 0), 3, 0, EOS, **base)).min() == 1


def test_a_track_told_its_most_notes_stops_growing_chords_but_keeps_its_onsets(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """Rules.track_notes: slot 1, told to sound chords of 2-3 notes at each of 8-12 onsets over 4
    bars and at most 12 notes, adds a note to a chord only while it has fewer than an even share
    of the 12 by the end of the chord's bar (3, 6, 9, 12), and still plays its 8 onsets or more:
    past its share a chord grows no more, a new onset still comes. It writes fewer notes than
    without the rule."""
    def rows(rules: Rules) -> list[np.ndarray]:
        outs, _ = _sample(model, vocab, rules, 4, 5, SamplingConfig(max_notes=80))
        return [o.notes[o.notes[:, TRACK] == 1] for o in outs]

    base = dict(min_notes=20, track_chords=((1, 3),), track_least_chords=((1, 2),), track_onsets=((1, 8, 12),))
    told = rows(Rules((0, 1), BAR_POSITIONS, (0, 0), 3, 0, EOS, track_notes=((1, 12),), **base))
    for mine in told:
        assert len(np.unique(mine[:, [BAR, POS]], axis=0)) >= 8
        joined = [k for k in range(1, len(mine)) if tuple(mine[k, [BAR, POS]]) == tuple(mine[k - 1, [BAR, POS]])]
        assert joined and all(k < 3 * (mine[k, BAR] + 1) for k in joined)
    free = rows(Rules((0, 1), BAR_POSITIONS, (0, 0), 3, 0, EOS, **base))
    assert sum(map(len, told)) < sum(map(len, free))


def test_no_pitch_takes_more_than_its_share_of_a_track_told_one(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """Rules.track_pitch_shares: slot 0, leaning 8 nats to middle C, plays it on most notes;
    told a share of 0.25, C is held back whenever it has 0.25 of the track's notes (and
    PITCH_SLACK more), so it ends with no more than that, and the track still plays."""
    drone = tuple(np.where(np.arange(128) == 60, 8.0, 0.0).tolist())

    def c_shares(**told: tuple) -> list[tuple[int, int]]:
        rules = Rules((0,), BAR_POSITIONS, (0, 0), 3, 0, EOS, min_notes=24, track_leans=((0, drone),), **told)
        outs, _ = _sample(model, vocab, rules, 3, 2, SamplingConfig(max_notes=40))
        return [(int((o.notes[:, PITCH] == 60).sum()), len(o.notes)) for o in outs]

    free = c_shares()
    assert all(c > 0.6 * n for c, n in free), free
    for c, n in c_shares(track_pitch_shares=((0, 0.25),)):
        assert n >= 10 and c <= 0.25 * n + PITCH_SLACK + 1, (c, n)


def test_drum_notes_lean_by_their_place_and_no_sound_takes_more_than_its_share(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """A drum track of a kick, a snare, a closed hi-hat and a crash, one at a time: Rules.drum_leans
    of 8 nats on the hi-hat on the bar's first half, on the snare on its second; Rules.drum_velocities
    putting the hi-hat near velocity 30 (spread 2) everywhere: most notes of each half are its
    sound, and the hi-hats lie near 30. Leaning 8 nats to the hi-hat everywhere, most notes are
    hi-hats; told a share of 0.2 for it (Rules.sound_shares), it takes no more (PITCH_SLACK more)."""
    drums, hat, snare = vocab.drum_slot, 42, 38
    lean = {sound: tuple(np.where(np.arange(128) == sound, 8.0, 0.0).tolist()) for sound in (hat, snare)}
    places = tuple((bar * 48 + pos, lean[hat if pos < 24 else snare]) for bar in range(4) for pos in range(48))
    soft = tuple((step, hat, 30.0, 2.0) for step, _ in places)

    def fills(**told: object) -> list[np.ndarray]:
        rules = Rules((drums,), BAR_POSITIONS, (0, 0), 3, 0, EOS, min_notes=24,
                      drum_kit=frozenset({36, hat, snare, 49}), **told)  # type: ignore[arg-type]
        outs, _ = _sample(model, vocab, rules, 3, 2, SamplingConfig(max_notes=40))
        return [o.notes for o in outs]

    for notes in fills(drum_leans=places, drum_velocities=soft, track_chords=((drums, 1),)):
        first = notes[:, POS] < 24
        assert (notes[first, PITCH] == hat).mean() > 0.8 and (notes[~first, PITCH] == snare).mean() > 0.8
        assert abs(np.median(notes[notes[:, PITCH] == hat, 6]) - 30) <= 3  # (velocity)
    hats = ((drums, lean[hat]),)
    assert all((notes[:, PITCH] == hat).mean() > 0.6 for notes in fills(track_leans=hats))
    for notes in fills(track_leans=hats, sound_shares=((hat, 0.2),)):
        assert len(notes) >= 8 and (notes[:, PITCH] == hat).sum() <= 0.2 * len(notes) + PITCH_SLACK + 1


def test_a_part_told_its_velocity_repeats_holds_off_its_last_velocity(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """Drum notes all leaning hard to velocity 30 (Rules.drum_velocities, spread 0.2) play it
    every time; told to give at most 0.1 of the probability to the velocity of the note before
    (Rules.velocity_repeats), they repeat it about that often, and stay near 30."""
    drums = vocab.drum_slot
    soft = tuple((step, sound, 30.0, 0.2) for step in range(4 * 48) for sound in (36, 38, 42))

    def velocities(**told: object) -> list[np.ndarray]:
        rules = Rules((drums,), BAR_POSITIONS, (0, 0), 3, 0, EOS, min_notes=40, drum_kit=frozenset({36, 38, 42}),
                      drum_velocities=soft, **told)  # type: ignore[arg-type]
        outs, _ = _sample(model, vocab, rules, 3, 2, SamplingConfig(max_notes=60))
        return [o.notes[:, 6] for o in outs]  # (velocity)

    assert all((v == 30).all() for v in velocities())
    held = np.concatenate([np.diff(v) == 0 for v in velocities(velocity_repeats=((drums, 0.1, 0.1),))])
    assert len(held) >= 24 and held.mean() <= 0.2, held.mean()
    assert all(np.abs(v - 30).max() <= 3 for v in velocities(velocity_repeats=((drums, 0.1, 0.1),)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-20, 20), min_size=2, max_size=12), st.integers(1, 2**12 - 1), st.floats(0.01, 0.99),
       st.floats(0.3, 2.0), st.integers(0, 2**12))
def test_the_cap_lean_caps_some_values_and_keeps_the_others_ratios(values: list[float], capped: int, most: float,
                                                                  temperature: float, masked: int) -> None:
    """cap_lean: the capped values' probability together (after the lean, at the temperature, where
    the mask is set) is at most ``most``, and ``most`` exactly where it was more; the other values
    keep their ratios, and the capped ones theirs."""
    logits = np.array(values)
    k = np.arange(len(logits))
    chosen = (capped >> k) & 1 == 1
    if not chosen.any():
        chosen[capped % len(logits)] = True
    mask = ((masked >> k) & 1 == 0) | chosen
    lean = cap_lean(logits, mask, None, chosen, most, temperature)

    def probabilities(shift: np.ndarray) -> np.ndarray:
        z = np.where(mask, (logits + shift) / temperature, -np.inf)
        p = np.exp(z - z.max())
        return p / p.sum()

    before, after = probabilities(np.zeros(len(logits))), probabilities(lean)
    others = mask & ~chosen
    if not others.any():  # only they may come: they stay
        assert after[chosen].sum() == pytest.approx(1.0)
        return
    assert after[chosen].sum() == pytest.approx(min(before[chosen].sum(), most), abs=1e-9)
    np.testing.assert_allclose(after[others] / after[others].sum(), before[others] / before[others].sum(), rtol=1e-9)
    np.testing.assert_allclose(after[chosen] / after[chosen].sum(), before[chosen] / before[chosen].sum(), rtol=1e-9)


def test_a_track_told_its_durations_keeps_inside_them(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """Rules.track_durations: every note of slot 1 lasts 3 to 12 grid steps (an untrained model
    draws any length); a window between two bins keeps the bin nearest to it; without, some
    notes of slot 1 fall outside."""
    def lengths(rules: Rules) -> np.ndarray:
        outs, _ = _sample(model, vocab, rules, 3, 4, SamplingConfig(max_notes=60))
        return vocab.durations[np.concatenate([o.notes[o.notes[:, TRACK] == 1, 5] for o in outs])]

    base = dict(min_notes=30)
    told = lengths(Rules((0, 1), BAR_POSITIONS, (0, 0), 3, 0, EOS, track_durations=((1, 3.0, 12.0),), **base))
    assert len(told) >= 10 and ((told >= 3) & (told <= 12)).all()
    free = lengths(Rules((0, 1), BAR_POSITIONS, (0, 0), 3, 0, EOS, **base))
    assert ((free < 3) | (free > 12)).any()
    between = vocab.durations[-1] - 0.5  # no bin lies in [between, between]: the nearest one does
    grammar = NoteGrammar(vocab, Rules((0, 1), BAR_POSITIONS, track_durations=((1, between, between),)))
    assert np.flatnonzero(grammar.lengths[1]).tolist() == [len(vocab.durations)]


def test_the_sampler_leans_each_note_by_its_own_time(model, vocab: NoteVocab) -> None:  # noqa: ANN001
    """With a lean of 40 nats on C at even grid steps and on G at odd ones, every melodic note of an
    untrained model is a C or a G by its onset (the sampler tells the grammar each note's bar and
    position); the drums keep their own pitches."""
    steps = range(0, 8 * BAR_POSITIONS[0])
    leans = tuple((s, tuple(40.0 if pc == (0 if s % 2 == 0 else 7) else 0.0 for pc in range(12))) for s in steps)
    rules = Rules((0, 1, vocab.drum_slot), BAR_POSITIONS, (0, 0), 7, 0, EOS, min_notes=30, time_leans=leans)
    outs, _ = _sample(model, vocab, rules, 2, 3, SamplingConfig(max_notes=40))
    melodic = np.concatenate([o.notes[o.notes[:, TRACK] != vocab.drum_slot] for o in outs])
    assert len(melodic) >= 10
    onsets = melodic[:, BAR] * BAR_POSITIONS[0] + melodic[:, POS]
    assert (melodic[:, PITCH] % 12 == np.where(onsets % 2 == 0, 0, 7)).all()


@settings(max_examples=50, deadline=None)
@given(seen=st.integers(1, 1024), spread=st.sampled_from([0.1, 3.0, 30.0, 300.0]), seed=st.integers(0, 2**16))
def test_the_attention_softmax_kernel_equals_softmax(seen: int, spread: float, seed: int) -> None:
    """kernels.softmax (exp as 2^n x a polynomial, so that it vectorizes) is softmax to 1e-6 of the
    largest weight, over scores close together and far apart (weights below 2^-126 as 0)."""
    scores = (np.random.default_rng(seed).normal(size=seen) * spread).astype(np.float32)
    scale = 0.125
    z = scores.astype(np.float64) * scale
    expect = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    got = scores.copy()
    softmax(got, scale, np.empty(seen, np.uint32))
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-6 * expect.max())
    assert abs(got.sum() - 1) < 1e-5


def test_filters_keep_what_they_say() -> None:
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], dtype=np.float32))
    top_k = filter_logits(logits, SamplingConfig(top_k=2))
    assert np.isfinite(top_k).sum() == 2
    top_p = filter_logits(logits, SamplingConfig(top_p=0.75))
    assert np.isfinite(top_p[0]).tolist() == [True, True, False, False]
    min_p = filter_logits(logits, SamplingConfig(min_p=0.2))
    assert np.isfinite(min_p[0]).tolist() == [True, True, True, False]


@pytest.mark.parametrize("field, value", [("top_p", 2.0), ("top_k", -5), ("temperature", 0.0), ("max_notes", 0)])
def test_bad_settings_name_the_setting(field: str, value: float) -> None:
    with pytest.raises(SamplingError, match=field.replace("_", "-")):
        SamplingConfig(**{field: value})


def test_the_heads_attention_is_the_same_in_the_model_and_the_decoders(vocab: NoteVocab) -> None:
    """A model whose heads attend over the notes so far (ModelConfig.head_attention): both
    decoders keep the attention's keys and values as the rows come, and the pitch logits they give
    once a note's bar, position and track are told equal the model's teacher-forced ones; the
    sampler draws with it, the same notes from the same seed."""
    PITCH_FIELD, TRACK_FIELD = FIELDS.index("pitch"), FIELDS.index("track")
    torch.manual_seed(1)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, ffn_hidden=64, head_hidden=32, max_len=160, head_attention=True)
    model = build_model(cfg, vocab).eval()
    rows = random_rows(vocab, 40)
    rounded = int8_matrices(model)
    with torch.no_grad():
        h = rounded(torch.from_numpy(rows[:-1])[None])  # (1, 39, C)
        expect = rounded.next_logits(h, torch.from_numpy(rows[1:])[None])[PITCH_FIELD][0].numpy()  # (39, V)
        ctx = rounded.context(h, torch.from_numpy(rows[1:])[None])
    assert ctx is not None and float(ctx.abs().mean()) > 0, "the attention adds something"
    for decoder in (TorchDecoder(model), NumbaDecoder(model)):
        heads, memory = decoder.heads, decoder.memory
        assert memory is not None
        state = decoder.start(rows[:30], 2, 60)
        for t in range(29, 33):  # the hidden state at position t predicts row t + 1
            told = heads.lookup_sum([*decoder.model.heads.columns[:TRACK_FIELD + 1], *decoder.model.heads.track_columns],
                                    np.repeat(rows[t + 1 : t + 2, [*decoder.model.heads.columns[:TRACK_FIELD + 1],
                                                                    *decoder.model.heads.track_columns]], 2, axis=0))
            cond = told + memory.context(state, told)
            got = heads.logits(PITCH_FIELD, state, cond)
            np.testing.assert_allclose(got[1], expect[t], atol=2e-3, rtol=2e-3)
            state = decoder.step(np.repeat(rows[t + 1 : t + 2], 2, axis=0))
    rules = Rules((0, 1, 16), BAR_POSITIONS, (0, 0), 7, 0, EOS, min_notes=20)
    a, _ = _sample(model, vocab, rules, 3, seed=1, cfg=SamplingConfig(max_notes=40))
    b, _ = _sample(model, vocab, rules, 3, seed=1, cfg=SamplingConfig(max_notes=40), backend="numba")
    assert all(len(x.notes) and np.array_equal(x.notes, y.notes) for x, y in zip(a, b))
