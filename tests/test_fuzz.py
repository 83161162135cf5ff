"""The fuzzing harness: mutated real MIDI bytes and random event streams through the whole input
path, in isolated workers. Every input must end ``ok`` or in a named refusal; the short run here
is the CI run (the long one: ``harmonixr fuzz --inputs 30000``)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmonixr.cli import main
from harmonixr.config import TokenizerSpec
from harmonixr.data import fuzz
from harmonixr.data.isolation import IsolatedPool
from harmonixr.generation.demo import example_score

STRUCTURE_KEEPING = ("running_status", "huge_delta", "many_tracks", "sysex_junk", "meta_junk")


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    return [example_score(name).dumps_midi() for name in ("chorale", "folk", "rag")]


@pytest.fixture(scope="module")
def pool():  # noqa: ANN201 - an IsolatedPool running fuzz.input_path
    with IsolatedPool(fuzz.input_path, workers=2, timeout_s=20.0, memory_mb=2048, init=fuzz._init_worker,
                      init_arg=TokenizerSpec()) as running:
        yield running


def outcome(pool: IsolatedPool, data: bytes) -> str:
    [(_, result)] = list(pool.map_unordered([data]))
    return fuzz.outcome_of(result)


@pytest.mark.parametrize("name", list(fuzz.MUTATORS))
def test_each_mutator_changes_the_file_as_it_says(name, seeds) -> None:
    rng = np.random.default_rng(0)
    changed = 0
    for k in range(20):
        data = seeds[k % len(seeds)]
        out = fuzz.splice(data, rng, seeds[(k + 1) % 3]) if name == "splice" else fuzz.MUTATORS[name](data, rng)
        changed += out != data
        if name in STRUCTURE_KEEPING:  # the chunk lengths stay true: the damage is inside the events
            assert fuzz.join(fuzz.chunks(out)) == out
    assert changed >= 18


@pytest.mark.slow
def test_a_short_fuzz_run_ends_every_input_in_a_named_outcome(tmp_path) -> None:
    code = main(["fuzz", "--inputs", "320", "--seed", "7", "--out", str(tmp_path), "--quiet"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert code == 0 and report["failure_classes"] == [] and report["inputs"] == 320
    assert set(report["mutators"]) == set(fuzz.MUTATORS)
    assert report["outcomes"].get("ok", 0) > 20  # some mutations leave a usable piece
    assert len([o for o in report["outcomes"] if o.startswith("reject:")]) >= 4


@pytest.mark.parametrize("meta", [
    b"\x00\xff\x58\x04\x04\x08\x18\x08",  # 4/2**8: the denominator wraps to 0 (a division by zero)
    b"\x00\xff\x58\x04\x7f\x00\x18\x08",  # 127/1 beside 4/4: over a common denominator, 508/4 (no byte holds it)
], ids=["denominator-0", "numerator-overflow"])
def test_damaged_time_signatures_found_by_the_fuzzer_are_dropped(pool, seeds, meta) -> None:
    parts = fuzz.chunks(seeds[0])
    parts[1] = (b"MTrk", meta + parts[1][1])
    assert outcome(pool, fuzz.join(parts)) == "ok"


def _event() -> st.SearchStrategy[bytes]:
    delta = st.integers(0, 0x0FFFFFFF).map(fuzz._varlen)
    note = st.tuples(st.integers(0x80, 0xEF), st.integers(0, 127), st.integers(0, 127)).map(bytes)
    running = st.tuples(st.integers(0, 127), st.integers(0, 127)).map(bytes)  # data bytes with no status
    junk = st.binary(max_size=24)
    sysex = st.tuples(st.sampled_from([0xF0, 0xF7]), st.integers(0, 1 << 20), junk).map(
        lambda t: bytes([t[0]]) + fuzz._varlen(t[1]) + t[2])
    meta = st.tuples(st.integers(0, 127), st.integers(0, 1 << 20), junk).map(
        lambda t: bytes([0xFF, t[0]]) + fuzz._varlen(t[1]) + t[2])
    return st.tuples(delta, st.one_of(note, note, running, sysex, meta, junk)).map(lambda t: t[0] + t[1])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tracks=st.lists(st.lists(_event(), max_size=30), min_size=1, max_size=4),
       fmt=st.sampled_from([0, 1, 2, 7]), declared=st.integers(0, 6),
       division=st.sampled_from([0, 1, 96, 480, 0x7FFF, 0x8000, 0xE728]))
def test_random_event_streams_end_in_a_named_outcome(pool, tracks, fmt, declared, division) -> None:
    data = b"MThd" + struct.pack(">IHHH", 6, fmt, declared, division)
    data += b"".join(b"MTrk" + struct.pack(">I", len(body)) + body for body in (b"".join(t) for t in tracks))
    result = outcome(pool, data)
    assert not fuzz.is_failure(result), result
