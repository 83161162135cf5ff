"""The KV-cache sampler: cached logits equal full ones, seeds reproduce, filters do what they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harmonixr.data.events import Vocab
from harmonixr.models.config import ModelConfig
from harmonixr.models.structure import Structure
from harmonixr.models.transformer import KVCache, MusicTransformer
from harmonixr.sampling.sampler import Sampler, SamplingConfig, filter_logits


@pytest.fixture(scope="module")
def setup(tokenizer):
    structure = Structure(Vocab(tokenizer))
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=len(tokenizer), d_model=32, n_layers=2, n_heads=4, ffn_hidden=64, max_len=96, dropout=0.0)
    return MusicTransformer(cfg, structure.sizes).eval(), structure


def test_cached_logits_equal_the_full_forward(setup, tokenizer) -> None:
    model, structure = setup
    rng = np.random.default_rng(0)
    ids = [tokenizer.bos_id, *rng.integers(4, len(tokenizer), 59).tolist()]
    feats = torch.from_numpy(structure.features(ids))[None]
    idx = torch.tensor([ids])
    with torch.no_grad():
        full = model(idx, feats)
        cache = KVCache(model.cfg, 1, 60, torch.device("cpu"))
        parts = [model(idx[:, :25], feats[:, :25], cache), model(idx[:, 25:30], feats[:, 25:30], cache)]
        parts += [model(idx[:, t : t + 1], feats[:, t : t + 1], cache) for t in range(30, 60)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_same_seed_same_music_other_seed_other_music(setup, tokenizer) -> None:
    model, structure = setup
    sampler = Sampler(model, structure)
    cfg = SamplingConfig(max_tokens=40)
    prompt = [tokenizer.bos_id, tokenizer.vocab["Style_pop"]]
    a = sampler.generate(prompt, 4, cfg, seed=1)
    assert a == sampler.generate(prompt, 4, cfg, seed=1)
    assert a != sampler.generate(prompt, 4, cfg, seed=2)
    assert len({tuple(x) for x in a}) > 1, "the variations of one batch differ"
    assert all(len(x) == 40 for x in a)


def test_top_k_1_is_greedy_and_stop_tokens_stop(setup, tokenizer) -> None:
    model, structure = setup
    sampler = Sampler(model, structure)
    prompt = [tokenizer.bos_id]
    out = sampler.generate(prompt, 2, SamplingConfig(top_k=1, max_tokens=12), seed=0)[0]
    ids = list(prompt)
    for tok in out:  # each greedy choice is the argmax of a full forward pass
        feats = torch.from_numpy(structure.features(ids))[None]
        with torch.no_grad():
            assert int(model(torch.tensor([ids]), feats)[0, -1].argmax()) == tok
        ids.append(tok)
    stopped = sampler.generate(prompt, 2, SamplingConfig(top_k=1, max_tokens=12), seed=0, stop_ids=[out[3]])
    assert all(x[-1] == out[3] and len(x) <= 4 for x in stopped)


def test_filters() -> None:
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], dtype=np.float32))
    kept = lambda cfg: np.isfinite(filter_logits(logits, cfg))[0].tolist()  # noqa: E731
    assert kept(SamplingConfig(top_k=2)) == [True, True, False, False]
    assert kept(SamplingConfig(top_p=0.7)) == [True, True, False, False]
    assert kept(SamplingConfig(top_p=0.5)) == [True, False, False, False]
    assert kept(SamplingConfig(min_p=0.2)) == [True, True, True, False]
    with pytest.raises(ValueError):
        SamplingConfig(temperature=0)


def test_grammar_masking_makes_every_sample_decode(setup, tokenizer) -> None:
    from harmonixr.sampling.grammar import AFTER_PITCH, AFTER_VELOCITY, Grammar, GrammarConstraint, GrammarState

    model, structure = setup  # untrained: its logits are noise, so only the mask keeps it in grammar
    vocab = structure.vocab
    v = tokenizer.vocab
    tracks = [0, 33, -1]
    prompt = [tokenizer.bos_id, v["Style_pop"], v["Instrument_0"], v["Instrument_33"], v["Instrument_Drums"]]
    grammar = Grammar(vocab, tracks)
    sampler = Sampler(model, structure)
    outs = sampler.generate(prompt, 16, SamplingConfig(max_tokens=90), seed=3, stop_ids=[tokenizer.eos_id],
                            constraint=GrammarConstraint(grammar, 16))
    for out in outs:
        state = GrammarState()
        for tok in out:  # every token was allowed where it stands
            assert grammar.allowed(state)[tok], tokenizer.id_to_token[tok]
            state.step(vocab, tok)
        score = tokenizer.decode(prompt + out)
        assert all(t.is_drum or t.program in (0, 33) for t in score.tracks)  # only the header's instruments
        notes = sum(1 for t in out if vocab.is_pitch[t])
        complete = notes - (state.kind in (AFTER_PITCH, AFTER_VELOCITY))  # a note cut by max_tokens is dropped
        assert score.note_num() == complete
    unconstrained = sampler.generate(prompt, 16, SamplingConfig(max_tokens=90), seed=3)
    broken = 0
    for out in unconstrained:
        state = GrammarState()
        for tok in out:
            broken += not bool(grammar.allowed(state)[tok])
            state.step(vocab, tok)
    assert broken > 0, "without the mask an untrained model breaks the grammar"


def test_numba_decoder_gives_the_torch_logits(setup, tokenizer) -> None:
    from harmonixr.sampling.decoder import NumbaDecoder, TorchDecoder

    model, structure = setup
    rng = np.random.default_rng(1)
    ids = [tokenizer.bos_id, *rng.integers(4, len(tokenizer), 70).tolist()]
    feats = structure.features(ids)
    logits = {}
    for name, decoder in (("torch", TorchDecoder(model)), ("numba", NumbaDecoder(model))):
        rows = [decoder.start(ids[:30], feats[:30], 3, 96)]
        for t in range(30, 70):
            rows.append(decoder.step(np.full(3, ids[t], dtype=np.int64), np.repeat(feats[t : t + 1], 3, axis=0)).copy())
        logits[name] = np.stack(rows)  # (41, 3, V)
    np.testing.assert_allclose(logits["numba"], logits["torch"], atol=1e-4, rtol=1e-4)
    same = Sampler(model, structure, "numba").generate(ids[:5], 3, SamplingConfig(max_tokens=30), seed=4)
    assert same == Sampler(model, structure, "torch").generate(ids[:5], 3, SamplingConfig(max_tokens=30), seed=4)


def test_rules_keep_every_row_inside_its_region(setup, tokenizer) -> None:
    from harmonixr.sampling.grammar import Grammar, GrammarConstraint, GrammarState, Rules

    model, structure = setup  # untrained: only the masks keep it in line
    vocab, v = structure.vocab, tokenizer.vocab
    three_four = v["TimeSig_3/4"]
    c_major = frozenset({0, 2, 4, 5, 7, 9, 11})
    rules = Rules(tracks=(1,), max_bars=2, min_bars=2, time_signatures=(three_four, three_four), first_pos=12,
                  last_pos=24, end_id=vocab.end_id, tempo=False, pitch_range=(50, 70), scale=c_major,
                  max_polyphony=2, max_notes_per_bar=5)
    grammar = Grammar(vocab, rules)
    prompt = [tokenizer.bos_id, v["Instrument_0"], v["Instrument_33"], vocab.fill_id]
    outs = Sampler(model, structure).generate(prompt, 16, SamplingConfig(max_tokens=90), seed=0,
                                              stop_ids=[vocab.end_id], constraint=GrammarConstraint(grammar, 16))
    ended = 0
    for out in outs:
        state, bar_notes, sounding = GrammarState(), [0, 0], []
        for tok in out:
            assert grammar.allowed(state)[tok], tokenizer.id_to_token[tok]
            family = vocab.family[tok]
            if family == "TimeSig":
                assert tok == three_four
            elif family == "Position":
                pos = int(vocab.position[tok])
                assert pos >= 12 if state.bars == 1 else pos < 24
            elif family == "Program":
                assert vocab.program[tok] == 1
            elif family == "Pitch":
                pitch = int(tokenizer.id_to_token[tok].split("_")[1])
                assert 50 <= pitch <= 70 and pitch % 12 in c_major
            elif family == "Duration":
                bar_notes[state.bars - 1] += 1
                now = state.bar_start + state.pos
                sounding = [end for end in sounding if end > now] + [now + int(vocab.duration_steps[tok])]
                assert len(sounding) <= 2
            state.step(vocab, tok)
        assert state.bars <= 2 and max(bar_notes) <= 5
        if out[-1] == vocab.end_id:
            ended += 1
            assert state.bars == 2, "the end comes only after both bars"
    assert ended > 0


def test_the_encoder_decoder_baseline_fills_holes_through_the_same_sampler(tokenizer) -> None:
    from harmonixr.models.baselines import EncoderDecoder
    from harmonixr.sampling.grammar import Grammar, GrammarConstraint, Rules

    structure = Structure(Vocab(tokenizer))
    vocab, v = structure.vocab, tokenizer.vocab
    torch.manual_seed(0)
    cfg = ModelConfig(kind="encdec", vocab_size=len(tokenizer), d_model=32, n_layers=1, n_heads=4, ffn_hidden=64,
                      max_len=96, dropout=0.0, encoder_layers=1)
    model = EncoderDecoder(cfg, structure.sizes).eval()
    prompt = [tokenizer.bos_id, v["Instrument_0"], vocab.bar_id, v["TimeSig_4/4"], vocab.position_id[0],
              vocab.hole_id, vocab.fill_id]
    rules = Rules((0,), max_bars=1, min_bars=1, time_signatures=(v["TimeSig_4/4"],), end_id=vocab.end_id, tempo=False)
    sampler = Sampler(model, structure)
    outs = sampler.generate(prompt, 3, SamplingConfig(max_tokens=40), seed=0, stop_ids=[vocab.end_id],
                            constraint=GrammarConstraint(Grammar(vocab, rules), 3))
    assert outs == sampler.generate(prompt, 3, SamplingConfig(max_tokens=40), seed=0, stop_ids=[vocab.end_id],
                                    constraint=GrammarConstraint(Grammar(vocab, rules), 3))
    assert all(out[:2] == [vocab.bar_id, v["TimeSig_4/4"]] for out in outs)
    with pytest.raises(ValueError, match="Infill_Fill"):
        sampler.generate(prompt[:-1], 1, SamplingConfig(max_tokens=5), seed=0)
