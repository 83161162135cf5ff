"""Our note rows against miditok's Octuple (the compound tokenization closest to ours), on real files:
files per second of parse + normalize + encode, and what a round trip keeps (onset error, velocity
error, notes kept). Octuple has no micro-timing and bins velocities; the rows keep both, which is
why the project encodes notes itself (``harmonixr.tokens``) and uses miditok only for its tables.

    python benchmarks/prepare_throughput.py [--files 40]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from miditok import Octuple, TokenizerConfig
from rich.console import Console
from rich.table import Table
from symusic import Score

from harmonixr.config import PrepareConfig
from harmonixr.data.normalize import normalize
from harmonixr.data.validate import load_midi
from harmonixr.tokens.notes import decode_notes, encode_score
from harmonixr.tokens.vocab import NoteVocab

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = {"POP909": "pop909/*.mid", "Groove": "groove/*/*/*.mid", "Freedoom": "freedoom/*.mid",
           "GiantMIDI": "giantmidi/*.mid"}


def errors(original: Score, decoded: Score) -> tuple[float, float, float]:
    """Median |onset error| in ms at 120 bpm, mean |velocity error|, share of notes kept (matched by
    track order, pitch and nearest onset)."""
    tpq_a, tpq_b = original.ticks_per_quarter, decoded.ticks_per_quarter
    onset, velocity, kept, total = [], [], 0, 0
    ours = [n for t in decoded.tracks for n in t.notes]
    by_pitch: dict[int, np.ndarray] = {}
    for n in ours:
        by_pitch.setdefault(n.pitch, []).append((n.time / tpq_b, n.velocity))
    by_pitch = {p: np.asarray(v) for p, v in by_pitch.items()}
    for track in original.tracks:
        for n in track.notes:
            total += 1
            candidates = by_pitch.get(n.pitch)
            if candidates is None:
                continue
            k = int(np.abs(candidates[:, 0] - n.time / tpq_a).argmin())
            delta = abs(candidates[k, 0] - n.time / tpq_a)
            if delta < 0.25:
                kept += 1
                onset.append(delta * 500.0)  # ms at 120 bpm
                velocity.append(abs(candidates[k, 1] - n.velocity))
    median_onset = float(np.median(onset)) if onset else float("nan")
    return median_onset, float(np.mean(velocity)) if velocity else float("nan"), kept / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40)
    args = parser.parse_args()
    config = PrepareConfig()
    vocab = NoteVocab(config.tokenizer)
    octuple = Octuple(TokenizerConfig(use_programs=True, use_tempos=True, use_time_signatures=True, num_velocities=32,
                                      beat_res={(0, 4): 12, (4, 12): 4}))
    table = Table(title="note rows (ours) vs miditok Octuple: encode speed and what a round trip keeps")
    for column in ("source", "files", "ours files/s", "Octuple files/s", "ours onset error ms", "Octuple onset error ms",
                   "ours velocity error", "Octuple velocity error", "ours notes kept", "Octuple notes kept"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for name, pattern in SOURCES.items():
        files = sorted(SHARED.glob(pattern))[: args.files]
        if not files:
            continue
        scores = [normalize(load_midi(path, config.limits), vocab, str(path))[0] for path in files]
        began = time.perf_counter()
        ours = [decode_notes(*encode_score(score, vocab), vocab) for score in scores]
        ours_s = time.perf_counter() - began
        began = time.perf_counter()
        theirs = [octuple.decode(octuple.encode(score)) for score in scores]
        theirs_s = time.perf_counter() - began
        mine = np.array([errors(a, b) for a, b in zip(scores, ours)])
        other = np.array([errors(a, b) for a, b in zip(scores, theirs)])
        table.add_row(name, str(len(files)), f"{len(files) / ours_s:.0f}", f"{len(files) / theirs_s:.0f}",
                      f"{np.nanmedian(mine[:, 0]):.2f}", f"{np.nanmedian(other[:, 0]):.2f}",
                      f"{np.nanmean(mine[:, 1]):.2f}", f"{np.nanmean(other[:, 1]):.2f}",
                      f"{mine[:, 2].mean():.1%}", f"{other[:, 2].mean():.1%}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
