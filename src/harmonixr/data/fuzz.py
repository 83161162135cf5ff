"""A mutation fuzzer over real MIDI bytes, through the whole input path (``harmonixr fuzz``).

Each input is a real MIDI file with one to three mutations (:data:`MUTATORS`): flipped bytes,
truncation, bogus chunk lengths, running status abuse, huge delta times, thousands of tracks,
sysex and meta junk, spliced pieces of other files, a broken header. Mutations that edit events
keep the chunk lengths right, so the damage reaches the event parser instead of stopping at the
byte scan.

Every input runs in an isolated worker (:class:`~harmonixr.data.isolation.IsolatedPool`, with a
time and a memory limit) through the path a corpus file or an upload takes: scan and parse
(:func:`~harmonixr.data.validate.parse_midi`), check, normalize (:func:`~harmonixr.data.normalize.normalize`),
encode as note rows, decode, write MIDI and parse that again. Its outcome is ``ok``, a named refusal
(``reject:<reason>``, ``tokenize``), or a **failure**: an exception no one named
(``error:<type>``), a crash, a timeout or an out-of-memory. A failure is a bug; its input is kept
so it can be replayed.
"""

from __future__ import annotations

import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harmonixr.config import LimitsConfig, TokenizerSpec
from harmonixr.data.isolation import Failure, IsolatedPool
from harmonixr.errors import HarmonixrError

if TYPE_CHECKING:
    from harmonixr.tokens.vocab import NoteVocab

Rng = np.random.Generator
NAMED = ("ok", "reject:", "tokenize")  # outcomes that are not failures
FUZZ_LIMITS = LimitsConfig(max_file_bytes=4 * 1024 * 1024, min_notes=1, parse_timeout_s=10.0, worker_memory_mb=2048)


# -- chunks ----------------------------------------------------------------------------------
def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(kind, body) of each chunk, read leniently (a short last chunk keeps what there is)."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        (size,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        out.append((data[pos : pos + 4], data[pos + 8 : pos + 8 + size]))
        pos += 8 + size
    return out


def join(parts: list[tuple[bytes, bytes]]) -> bytes:
    """Chunks back to bytes, each with its true length."""
    return b"".join(kind + struct.pack(">I", len(body)) + body for kind, body in parts)


def _edit_track(data: bytes, rng: Rng, edit: Callable[[bytes, Rng], bytes]) -> bytes:
    parts = chunks(data)
    tracks = [k for k, (kind, _) in enumerate(parts) if kind == b"MTrk"]
    if not tracks:
        return data
    k = int(rng.choice(tracks))
    parts[k] = (parts[k][0], edit(parts[k][1], rng))
    return join(parts)


def _insert(body: bytes, rng: Rng, event: bytes) -> bytes:
    at = int(rng.integers(0, len(body) + 1))
    return body[:at] + event + body[at:]


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    while value > 0x7F:
        value >>= 7
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


# -- mutators: (bytes, rng) -> bytes ----------------------------------------------------------
def flip_bytes(data: bytes, rng: Rng) -> bytes:
    out = bytearray(data)
    for at in rng.integers(0, len(out), size=int(rng.integers(1, 9))):
        out[at] = int(rng.integers(0, 256))
    return bytes(out)


def truncate(data: bytes, rng: Rng) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def bogus_chunk_length(data: bytes, rng: Rng) -> bytes:
    parts, out, pos = chunks(data), bytearray(data), 0
    k = int(rng.integers(0, max(len(parts), 1)))
    for _, body in parts[:k]:
        pos += 8 + len(body)
    if pos + 8 <= len(out):
        value = int(rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, len(out), int(rng.integers(0, 1 << 32))]))
        out[pos + 4 : pos + 8] = struct.pack(">I", value)
    return bytes(out)


def running_status(data: bytes, rng: Rng) -> bytes:
    """Drop status bytes (the next events then run on whatever status came before, or none)."""
    def edit(body: bytes, rng: Rng) -> bytes:
        statuses = [i for i, b in enumerate(body) if 0x80 <= b < 0xF0]
        drop = set(rng.choice(statuses, size=min(len(statuses), int(rng.integers(1, 6))), replace=False).tolist()) \
            if statuses else set()
        return bytes(b for i, b in enumerate(body) if i not in drop)
    return _edit_track(data, rng, edit)


def huge_delta(data: bytes, rng: Rng) -> bytes:
    """A note far in the future (delta times up to the 28-bit maximum)."""
    delta = _varlen(int(rng.choice([0x0FFFFFFF, 1 << 24, int(rng.integers(1 << 16, 1 << 28))])))
    return _edit_track(data, rng, lambda body, r: _insert(body, r, delta + bytes([0x90, 60, 100]) + b"\x00\x80\x3c\x00"))


def many_tracks(data: bytes, rng: Rng) -> bytes:
    """Thousands of tiny track chunks (and a header that declares them)."""
    parts = chunks(data)
    count = int(rng.choice([300, 2000, 65535]))
    tiny = (b"MTrk", b"\x00\x90\x40\x40\x60\x80\x40\x00\x00\xff\x2f\x00")
    parts = parts[:1] + [tiny] * count + parts[1:]
    if parts and parts[0][0] == b"MThd" and len(parts[0][1]) >= 4:
        header = bytearray(parts[0][1])
        header[0:2], header[2:4] = b"\x00\x01", struct.pack(">H", min(count + 1, 0xFFFF))
        parts[0] = (b"MThd", bytes(header))
    return join(parts)


def sysex_junk(data: bytes, rng: Rng) -> bytes:
    """Sysex and escape events, some declaring far more bytes than follow."""
    junk = rng.integers(0, 256, size=int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
    length = int(rng.choice([len(junk), len(junk) + 1000, 0x0FFFFFFF]))
    event = b"\x00" + bytes([int(rng.choice([0xF0, 0xF7]))]) + _varlen(length) + junk
    return _edit_track(data, rng, lambda body, r: _insert(body, r, event))


def meta_junk(data: bytes, rng: Rng) -> bytes:
    """Meta events of any type with wrong lengths (tempo 0, a time signature with a huge denominator ...)."""
    kind = int(rng.choice([0x51, 0x58, 0x59, 0x2F, 0x03, int(rng.integers(0, 128))]))
    payload = rng.integers(0, 256, size=int(rng.integers(0, 8)), dtype=np.uint8).tobytes()
    length = int(rng.choice([len(payload), 0, 255, 0x0FFFFFFF]))
    return _edit_track(data, rng, lambda body, r: _insert(body, r, b"\x00\xff" + bytes([kind]) + _varlen(length) + payload))


def broken_header(data: bytes, rng: Rng) -> bytes:
    """Format, track count or division set to odd values (SMPTE, 0, 65535)."""
    out = bytearray(data)
    if len(out) >= 14:
        field_at = int(rng.choice([8, 10, 12]))
        out[field_at : field_at + 2] = struct.pack(">H", int(rng.choice([0, 1, 2, 3, 0x7FFF, 0x8000, 0xE728, 0xFFFF])))
    return bytes(out)


def splice(data: bytes, rng: Rng, other: bytes = b"") -> bytes:
    """A slice of another file pasted in somewhere."""
    if not other:
        return flip_bytes(data, rng)
    a, b = sorted(int(x) for x in rng.integers(0, len(other), size=2))
    at = int(rng.integers(0, len(data) + 1))
    return data[:at] + other[a : b + 1] + data[at:]


MUTATORS: dict[str, Callable[..., bytes]] = {
    "flip_bytes": flip_bytes, "truncate": truncate, "bogus_chunk_length": bogus_chunk_length,
    "running_status": running_status, "huge_delta": huge_delta, "many_tracks": many_tracks,
    "sysex_junk": sysex_junk, "meta_junk": meta_junk, "broken_header": broken_header, "splice": splice,
}


def mutate(data: bytes, rng: Rng, others: list[bytes]) -> tuple[bytes, tuple[str, ...]]:
    """``data`` with one to three mutations; returns the bytes and the mutators' names."""
    names = tuple(str(n) for n in rng.choice(list(MUTATORS), size=int(rng.integers(1, 4))))
    for name in names:
        if name == "splice":
            data = splice(data, rng, others[int(rng.integers(0, len(others)))] if others else b"")
        else:
            data = MUTATORS[name](data, rng)
    return data, names


# -- the path every input takes (in a worker) --------------------------------------------------
_VOCAB: NoteVocab | None = None


def _init_worker(spec: TokenizerSpec) -> None:
    global _VOCAB
    from harmonixr.tokens.vocab import NoteVocab

    _VOCAB = NoteVocab(spec)


def input_path(data: bytes, limits: LimitsConfig = FUZZ_LIMITS) -> str:
    """The outcome of ``data`` through parse -> check -> normalize -> encode -> decode -> write -> parse."""
    from symusic import Score

    from harmonixr.data.normalize import normalize
    from harmonixr.data.validate import RejectError, parse_midi
    from harmonixr.tokens.notes import decode_notes, encode_score
    from harmonixr.tokens.vocab import VocabError

    assert _VOCAB is not None, "input_path runs in a worker started by _init_worker"
    try:
        score = parse_midi(data, "<fuzz>", limits)
        normalized, _ = normalize(score, _VOCAB, "<fuzz>")
        notes, tracks, timeline = encode_score(normalized, _VOCAB)
        written = decode_notes(notes, tracks, timeline, _VOCAB).dumps_midi()
        Score.from_midi(written)
    except RejectError as exc:
        return f"reject:{exc.reason.value}"
    except VocabError:
        return "tokenize"
    except Exception as exc:  # noqa: BLE001 - an exception nobody named is the finding
        return f"error:{type(exc).__name__}: {str(exc)[:80]}"
    return "ok"


# -- the fuzzer --------------------------------------------------------------------------------
@dataclass
class FuzzReport:
    """What a run tried and found."""

    inputs: int = 0
    seconds: float = 0.0
    seeds: int = 0
    outcomes: Counter = field(default_factory=Counter)
    mutators: Counter = field(default_factory=Counter)
    failures: dict[str, list[str]] = field(default_factory=dict)  # class -> saved inputs

    @property
    def failure_classes(self) -> list[str]:
        return sorted(self.failures)

    def as_dict(self) -> dict:
        return {"inputs": self.inputs, "seconds": round(self.seconds, 1), "seeds": self.seeds,
                "inputs_per_second": round(self.inputs / max(self.seconds, 1e-9), 1),
                "outcomes": dict(self.outcomes.most_common()), "mutators": dict(self.mutators.most_common()),
                "failure_classes": self.failure_classes, "failures": self.failures}


def outcome_of(result: str | Failure) -> str:
    return f"{result.kind}" if isinstance(result, Failure) else result


def is_failure(outcome: str) -> bool:
    return not outcome.startswith(NAMED)


def fuzz(seeds: list[bytes], inputs: int, seed: int = 0, workers: int = 2, minutes: float | None = None,
         timeout_s: float = 20.0, memory_mb: int = 2048, keep: Path | None = None,
         spec: TokenizerSpec = TokenizerSpec(), progress: Callable[[int], None] | None = None) -> FuzzReport:
    """``inputs`` mutated seeds (or as many as ``minutes`` allow) through :func:`input_path`;
    failing inputs are written to ``keep`` (``<class>-<n>.mid``) when given."""
    if not seeds:
        raise HarmonixrError("the fuzzer needs at least one seed MIDI file")
    rng = np.random.default_rng(seed)
    report = FuzzReport(seeds=len(seeds))
    began = time.monotonic()
    stop = began + minutes * 60 if minutes else None
    batch = 64
    with IsolatedPool(input_path, workers=workers, timeout_s=timeout_s, memory_mb=memory_mb,
                      init=_init_worker, init_arg=spec) as pool:
        while report.inputs < inputs and (stop is None or time.monotonic() < stop):
            cases = [mutate(seeds[int(rng.integers(0, len(seeds)))], rng, seeds)
                     for _ in range(min(batch, inputs - report.inputs))]
            for index, result in pool.map_unordered([data for data, _ in cases]):
                outcome = outcome_of(result)
                report.outcomes[outcome.split(":")[0] if outcome.startswith("error:") else outcome] += 1
                report.mutators.update(cases[index][1])
                if is_failure(outcome):
                    saved = report.failures.setdefault(outcome, [])
                    if keep is not None and len(saved) < 5:
                        keep.mkdir(parents=True, exist_ok=True)
                        path = keep / f"{len(report.failures):02d}-{len(saved)}.mid"
                        path.write_bytes(cases[index][0])
                        saved.append(str(path))
                    elif keep is None:
                        saved.append("+".join(cases[index][1]))
            report.inputs += len(cases)
            if progress is not None:
                progress(len(cases))
    report.seconds = time.monotonic() - began
    return report
