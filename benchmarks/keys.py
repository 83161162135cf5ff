"""Is the key asked the key heard? New pieces asked in a key, by the strength of the tonic lean.

A key's scale is a mask (no note outside it), but A minor and C major share a scale: what tells
them apart is the tonic, so :meth:`MusicRules.in_key` also leans the pitch logits to the tonic
chord, by :data:`~harmonixr.sampling.rules.ROOT_LEAN` nats on its root and
:data:`~harmonixr.sampling.rules.CHORD_LEAN` on its third and fifth. This benchmark writes
``--trials`` new pieces of 8 bars (keys drawn at random, half major and half minor; styles and
instruments varied; seeds apart from ``benchmarks/prompts.py``'s) for each lean of ``--leans``
(root/chord pairs, the module's constants set to each in turn), and with ``--relative`` the same
in C major and A minor only (the keys a prompt's mode word asks for, which share a scale and two
notes of their tonic chords), and prints how often the estimated key (duration-weighted
Krumhansl profiles, ``postprocess.estimate_key``) is the one asked, and its mode, and the share
of the notes on the tonic chord: against the same share in ``--trials`` held-out pieces of the
corpus (in their estimated key), it says how far the lean bends the melody towards arpeggios.
Each lean runs with each number of ``--tries`` (``modes.KEY_TRIES``: a piece heard in another key
is drawn again that many times at most; 0: never).

    python benchmarks/keys.py models/harmonixr-small --trials 48
    python benchmarks/keys.py models/harmonixr-small --trials 48 --relative
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table
from symusic import Score

import harmonixr.generation.modes as modes
import harmonixr.sampling.rules as rules
from harmonixr.data.corpus import Corpus
from harmonixr.generation.modes import Generator
from harmonixr.generation.postprocess import Key, estimate_key
from harmonixr.generation.requests import MusicRules

STYLES = ("pop", "folk", "classical", "jazz", "rock", "chorale", "game", "unknown")
ENSEMBLES = ((0,), (0, 33), (24, 33, -1), (40, 42))  # piano; piano and bass; guitar, bass, drums; strings
SEED = 1000  # benchmarks/prompts.py uses seeds from 0


def tonic_share(score, key: Key) -> float:  # noqa: ANN001 - a symusic Score
    """The share of the melodic notes whose pitch class is in ``key``'s tonic chord."""
    pitches = [n.pitch % 12 for t in score.tracks if not t.is_drum for n in t.notes]
    return float(np.mean([p in key.tonic_chord for p in pitches])) if pitches else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--leans", default="0/0,1/1,1.5/0.25,1.5/0.5,2/0.25",
                        help="root/chord leans to try, in nats (1/1: the whole tonic chord by 1)")
    parser.add_argument("--tries", default="0,3", help="redraws of a piece heard in another key to try (modes.KEY_TRIES)")
    parser.add_argument("--relative", action="store_true", help="C major and A minor only")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--data", default="data/corpus-all")
    args = parser.parse_args()
    gen = Generator(args.checkpoint)
    rng = np.random.default_rng(args.seed)
    styles = [s for s in STYLES if s in gen.vocab.styles] or ["unknown"]
    def key_of(k: int) -> Key:
        if args.relative:
            return Key(0, "major") if k % 2 == 0 else Key(9, "minor")
        return Key(int(rng.integers(12)), ("major", "minor")[k % 2])

    trials = [(key_of(k), styles[int(rng.integers(len(styles)))], list(ENSEMBLES[int(rng.integers(len(ENSEMBLES)))]),
               SEED + k) for k in range(args.trials)]
    asked = "C major or A minor" if args.relative else "a key"
    table = Table(title=f"{args.trials} new pieces of {args.bars} bars asked in {asked}: estimated key and mode")
    for column in ("lean, root / chord (nats), redraws", "key heard as asked", "mode heard as asked", "notes on the tonic chord",
                   "seconds"):
        table.add_column(column, justify="right")
    real = [Score(row["path"]) for _, row in Corpus([args.data]).rows("test")]
    real = [real[int(k)] for k in rng.permutation(len(real))[: args.trials]]
    share = np.nanmean([tonic_share(score, estimate_key(score)) for score in real])
    table.add_row("held-out pieces", "", "", f"{share:.2f}", "")
    default = (rules.ROOT_LEAN, rules.CHORD_LEAN, modes.KEY_TRIES)
    for lean in (tuple(float(x) for x in pair.split("/")) for pair in args.leans.split(",")):
        for tries in (int(x) for x in args.tries.split(",")):
            rules.ROOT_LEAN, rules.CHORD_LEAN = lean  # read when each request's grammar is made
            modes.KEY_TRIES = tries
            began, key_ok, mode_ok, shares = time.perf_counter(), 0, 0, []
            for key, style, programs, seed in trials:
                score = gen.generate(programs, style, args.bars, 110.0, seed=seed, rules=MusicRules.in_key(key))[0].score
                heard = estimate_key(score)
                key_ok, mode_ok = key_ok + (heard == key), mode_ok + (heard.mode == key.mode)
                shares.append(tonic_share(score, key))
            mark = " (default)" if (*lean, tries) == default else ""
            table.add_row(f"{lean[0]:g} / {lean[1]:g}, {tries}{mark}", f"{key_ok}/{args.trials}",
                          f"{mode_ok}/{args.trials}", f"{np.nanmean(shares):.2f}", f"{time.perf_counter() - began:.0f}")
    rules.ROOT_LEAN, rules.CHORD_LEAN, modes.KEY_TRIES = default
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
