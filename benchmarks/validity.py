"""Validity of generated music: every sample must make a valid MIDI file, and every infill must
keep its context exactly and write nothing outside its region.

- ``--generated`` samples (default 1,000) from nothing with the shipped model: styles, instrument
  sets (drums included), meters, tempos and lengths drawn at random; 8 variations per call.
- ``--infills`` samples (default 1,000) on real pieces: bundled-corpus pieces (chorales, folk
  tunes, renaissance, classical, ...) and, from ``../shared/data`` when it exists, POP909 songs,
  Freedoom arrangements, Groove drum performances and GiantMIDI piano performances;
  whole bars, beat spans, or some tracks under the others, drawn at random; 4 variations per call.
- For contrast, the same from-nothing prompts sampled **without** the grammar's time and order
  rules (only "a note or the end" kept): how many samples then hold a note the grammar forbids
  (time going back, a position past its bar, a note written twice at one onset).

Each result is checked by :func:`harmonixr.evaluation.validity.check_result`.

    python benchmarks/validity.py [--generated 1000] [--infills 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table
from symusic import Score

from harmonixr.data import music21_corpus
from harmonixr.errors import HarmonixrError
from harmonixr.evaluation.validity import check_result, midi_parses
from harmonixr.generation.modes import Generator
from harmonixr.generation.piece import Piece, Region
from harmonixr.sampling.grammar import NoteGrammar
from harmonixr.sampling.rules import NoteState, Rules
from harmonixr.sampling.sampler import Placement, SamplingConfig
from harmonixr.tokens.prompt import plain
from harmonixr.tokens.vocab import BODY, EOS

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "harmonixr-small"
SHARED = ROOT.parent / "shared" / "data"
POP909 = SHARED / "pop909"
COLLECTIONS = ("bach", "essenFolksong", "oneills1850", "palestrina", "monteverdi", "mozart", "haydn", "joplin")
PER_COLLECTION = 3  # corpus files per collection (an ABC file holds many tunes)
INSTRUMENT_SETS = ([0], [0, 0, 0], [52, 52, 52, 52], [73], [40, 41, 42], [0, 33, -1], [24, 33, -1], [0, 48])
METERS = ((4, 4), (3, 4), (6, 8), (2, 4))
SAMPLING = SamplingConfig(top_p=0.98)


def corpus_pieces(limit: int) -> list[tuple[Path, str]]:
    """(MIDI path, style) of bundled-corpus pieces, converted once into the corpus cache."""
    folder = music21_corpus.cache_dir()
    out = []
    for item in music21_corpus.list_items(COLLECTIONS, PER_COLLECTION):
        index = folder / "benchmark" / f"{item.key.replace('/', '_')}.json"
        if index.is_file():
            entry = json.loads(index.read_text())
        else:
            entry = music21_corpus.convert_to_cache((item, str(folder)))
            index.parent.mkdir(parents=True, exist_ok=True)
            index.write_text(json.dumps(entry))
        out += [(folder / p["out"], item.style) for p in entry["pieces"] if "error" not in p][:4]
    return out[:limit]


def generated(gen: Generator, count: int, seed: int, console: Console) -> dict:
    rng = np.random.default_rng(seed)
    styles = [s for s in gen.vocab.styles if s != "unknown"]
    stats = {"samples": 0, "valid_midi": 0, "notes": 0, "empty": 0, "positions": 0, "grammar_breaks_unmasked": 0,
             "unmasked": 0, "seconds": 0.0}
    calls = (count + 7) // 8
    for call in track(range(calls), description="from nothing", console=console):
        style, programs = str(rng.choice(styles)), INSTRUMENT_SETS[rng.integers(len(INSTRUMENT_SETS))]
        meter, bars = METERS[rng.integers(len(METERS))], int(rng.integers(4, 9))
        n = min(8, count - stats["samples"])
        began = time.perf_counter()
        results = gen.generate(list(programs), style, bars, float(rng.integers(60, 180)), meter, n=n,
                               sampling=SAMPLING, seed=seed + call)
        stats["seconds"] += time.perf_counter() - began
        for result in results:
            ok, _ = midi_parses(result.score)
            stats["samples"] += 1
            stats["valid_midi"] += ok
            stats["notes"] += result.notes
            stats["empty"] += result.notes == 0
            stats["positions"] += result.positions
        stats["grammar_breaks_unmasked"] += unmasked_breaks(gen, list(programs), style, n, seed + call)
        stats["unmasked"] += n
    return stats


class Unmasked(NoteGrammar):
    """The grammar with its time and order rules off: any bar ahead, any position, track, pitch."""

    def open_bars(self, state: NoteState) -> np.ndarray:
        mask = np.zeros(self.sizes[1], dtype=bool)
        mask[1:] = True
        return mask

    def mask(self, k: int, state: NoteState, chosen: list[int]) -> np.ndarray:
        if k == 0:
            return self.types
        return self.all[k]


def unmasked_breaks(gen: Generator, programs: list[int], style: str, n: int, seed: int) -> int:
    """How many of ``n`` pieces sampled without the time and order rules hold a note the grammar forbids."""
    piece = Piece.empty(gen.vocab, programs, style, bars=8)
    rules = Rules(tuple(piece.slots), piece.bar_positions(8), (0, 0), 7, 0, EOS, max_notes=200)
    prompt = plain(gen.vocab, piece.header(), piece.notes, 0, piece.bars_meta(), ends=False).rows
    place = Placement(0, piece.bars_meta(64), piece.header(), BODY)
    outs = gen.sampler.generate(prompt, n, SamplingConfig(top_p=0.98, max_notes=200), seed,
                                Unmasked(gen.vocab, rules), NoteState(0, 0), place)
    broken = 0
    grammar = NoteGrammar(gen.vocab, rules)
    for out in outs:
        state = NoteState(0, 0)
        for note in out.notes:
            fields = [3, note[0] - state.bar + 1, note[1] + 1, note[3] + 1, note[4] + 1, note[5] + 1, note[6],
                      note[2] + gen.vocab.micro_zero]
            allowed = (note[0] >= state.bar and grammar.mask(1, state, fields[:1])[min(fields[1], len(grammar.all[1]) - 1)])
            allowed = allowed and all(grammar.mask(k, state, fields[:k])[fields[k]] for k in range(2, 5))
            if not allowed:
                broken += 1
                break
            grammar.advance(state, fields)
    return broken


def infills(gen: Generator, count: int, seed: int, console: Console) -> dict:
    rng = np.random.default_rng(seed)
    pieces = corpus_pieces(60) + [(p, "pop") for p in sorted(POP909.glob("*.mid"))[:100]]
    pieces += [(p, "game") for p in sorted((SHARED / "freedoom").glob("*.mid"))[:30]]
    pieces += [(p, "rock") for p in sorted((SHARED / "groove").rglob("*rock*beat*.mid"))[:30]]
    pieces += [(p, "piano-performance") for p in sorted((SHARED / "giantmidi").glob("*.mid"))[:10]]
    stats = {"samples": 0, "valid_midi": 0, "context_identical": 0, "notes_outside": 0, "notes_inside": 0,
             "closed": 0, "pieces": len(pieces), "kinds": {"bars": 0, "span": 0, "tracks": 0}, "seconds": 0.0,
             "music_seconds": 0.0, "refused": 0}
    loaded: dict[Path, Piece] = {}
    with console.status("") as status:
        while stats["samples"] < count:
            path, style = pieces[rng.integers(len(pieces))]
            if path not in loaded:
                loaded[path] = gen.piece(Score(str(path)), style)
            piece = loaded[path]
            if piece.bars < 3:
                continue
            kind = ("bars", "span", "tracks")[rng.integers(3)]
            region = random_region(piece, kind, rng, gen.vocab.grid)
            n = min(4, count - stats["samples"])
            began = time.perf_counter()
            try:
                results = gen.infill(piece, region, n, SAMPLING, seed=int(rng.integers(1 << 30)))
            except HarmonixrError as exc:  # e.g. one bar of a dense piece longer than the context
                stats["refused"] += 1
                console.print(f"refused: {path.name} {region}: {exc}")
                continue
            stats["seconds"] += time.perf_counter() - began
            for result in results:
                check = check_result(piece.original, result)
                stats["samples"] += 1
                stats["kinds"][kind] += 1
                stats["valid_midi"] += check.valid_midi
                stats["context_identical"] += check.context_identical
                stats["notes_outside"] += check.notes_outside
                stats["notes_inside"] += check.notes_inside
                stats["closed"] += result.finished
                if not (check.valid_midi and check.context_identical):
                    console.print(f"[red]{path.name} {region}: {check.detail}[/red]")
            status.update(f"infill {stats['samples']}/{count}")
    return stats


def random_region(piece: Piece, kind: str, rng: np.random.Generator, grid: int) -> Region:
    """Whole bars (1-4), a beat span (1-8 beats), or some tracks over 1-4 bars."""
    first = int(rng.integers(piece.bars - 1))
    positions = piece.bar_positions()
    if kind == "span":
        beats = max(positions[first] // grid, 1)
        start = (first, int(rng.integers(beats)) * grid)
        length, (bar, pos) = int(rng.integers(1, 9)), start
        for _ in range(length):
            pos += grid
            if pos >= positions[min(bar, piece.bars - 1)]:
                bar, pos = bar + 1, 0
        return Region(start, (min(bar, piece.bars), pos if bar < piece.bars else 0))
    end = min(first + int(rng.integers(1, 5)), piece.bars)
    tracks: tuple[int, ...] = ()
    if kind == "tracks" and len(piece.slot_tracks) > 1:
        chosen = rng.choice(piece.slot_tracks, size=int(rng.integers(1, len(piece.slot_tracks))), replace=False)
        tracks = tuple(sorted(int(t) for t in chosen))
    return Region((first, 0), (end, 0), tracks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generated", type=int, default=1000)
    parser.add_argument("--infills", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    console = Console(width=140)
    gen = Generator(MODEL)
    made = generated(gen, args.generated, args.seed, console)
    filled = infills(gen, args.infills, args.seed, console)
    table = Table(title="validity of generated music (shipped model, grammar mask on)")
    table.add_column("check")
    table.add_column("result", justify="right")
    table.add_row("from nothing: samples", f"{made['samples']:,} ({made['notes']:,} notes, {made['empty']} without notes)")
    table.add_row("  valid MIDI (symusic + mido read every note back)", f"{made['valid_midi']:,} / {made['samples']:,}")
    table.add_row("  without the time and order rules: samples that break the grammar",
                  f"{made['grammar_breaks_unmasked']:,} / {made['unmasked']:,}")
    table.add_row("infill: samples (bars / span / tracks)",
                  f"{filled['samples']:,} ({' / '.join(str(v) for v in filled['kinds'].values())}) on {filled['pieces']} pieces")
    table.add_row("  valid MIDI", f"{filled['valid_midi']:,} / {filled['samples']:,}")
    table.add_row("  context identical (notes, tempo map, tracks, names)",
                  f"{filled['context_identical']:,} / {filled['samples']:,}")
    table.add_row("  new notes outside the region", f"{filled['notes_outside']:,} (of {filled['notes_inside']:,} new notes)")
    table.add_row("  fills the model closed itself (not cut at the budget)", f"{filled['closed']:,} / {filled['samples']:,}")
    table.add_row("  requests refused with a GenerationError (printed above)", str(filled["refused"]))
    table.add_row("compute", f"{made['seconds']:.0f} s from nothing, {filled['seconds']:.0f} s infill")
    console.print(table)
    if args.out:
        Path(args.out).write_text(json.dumps({"generated": made, "infill": filled}, indent=1))


if __name__ == "__main__":
    main()
