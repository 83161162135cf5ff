"""Files per second of parse + validate + normalize + tokenize, next to miditok's own tokenization.

Both run in one process on the same files (POP909 and/or the converted music21 corpus, whichever
is present), so the numbers compare the work per file, not the parallelism. Ours does more: the
byte-level structure scan, content limits, track slots, overlap trimming, fingerprint and controls.

    python benchmarks/prepare_throughput.py [--files 200]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from miditok import REMI, TokenizerConfig
from rich.console import Console
from rich.table import Table

from harmonixr.config import PrepareConfig
from harmonixr.data.music21_corpus import cache_dir
from harmonixr.data.prepare import encode_piece
from harmonixr.data.sources import PieceRef
from harmonixr.data.tokenize import HarmonixrTokenizer

POP909 = Path(__file__).resolve().parents[2] / "shared" / "data" / "pop909"


def time_ours(files: list[Path], tokenizer: HarmonixrTokenizer, config: PrepareConfig) -> tuple[float, int]:
    start, tokens = time.perf_counter(), 0
    for path in files:
        _rows, arrays = encode_piece(PieceRef(str(path), "bench", split="val"), tokenizer, config)
        tokens += len(arrays[0])
    return time.perf_counter() - start, tokens


def time_miditok(files: list[Path], tokenizer: REMI) -> tuple[float, int]:
    start, tokens = time.perf_counter(), 0
    for path in files:
        tokens += len(tokenizer.encode(path).ids)
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="files per corpus")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    config = PrepareConfig()
    ours = HarmonixrTokenizer(config.tokenizer)
    theirs = REMI(TokenizerConfig(use_programs=True, use_velocities=True, use_tempos=True,
                                  use_time_signatures=True, beat_res={(0, 4): 12, (4, 12): 4}))
    corpora = {"POP909": sorted(POP909.glob("*.mid")), "music21 (converted)": sorted(cache_dir().rglob("*.mid"))}
    table = Table(title="parse + validate + tokenize, one process (files/s)")
    for column in ("corpus", "files", "harmonixr files/s", "miditok REMI files/s", "harmonixr tokens", "miditok tokens"):
        table.add_column(column, justify="right")
    for name, files in corpora.items():
        if not files:
            continue
        step = max(len(files) // args.files, 1)
        files = files[::step][: args.files]
        time_ours(files[:3], ours, config)  # warm-up (imports, caches)
        ours_s, ours_tokens = time_ours(files, ours, config)
        theirs_s, theirs_tokens = time_miditok(files, theirs)
        table.add_row(name, str(len(files)), f"{len(files) / ours_s:.1f}", f"{len(files) / theirs_s:.1f}",
                      f"{ours_tokens:,}", f"{theirs_tokens:,}")
    Console().print(table)


if __name__ == "__main__":
    main()
