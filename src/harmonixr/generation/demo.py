"""The main job: the shipped model at work on pieces of the bundled (music21) corpus.

``harmonixr demo`` infills bars of a Bach chorale, rewrites its alto under the other voices,
continues a German folk song from its first bars, writes a band piece (piano, bass, drums) and a
Celtic tune from nothing and infills bars of the band piece, every part at once. Each result is
written to ``out/`` as MIDI, a piano
roll (original above, result below, region shaded) and a WAV (the region with a few bars around
it, rendered with the offline SoundFont). The same calls work on any MIDI file (see the README).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from symusic import Score

from harmonixr.data.music21_corpus import cache_dir, m21_to_score
from harmonixr.generation.modes import Generator
from harmonixr.generation.outputs import write_result
from harmonixr.generation.piece import Region
from harmonixr.generation.requests import MusicRules, Result
from harmonixr.sampling.sampler import SamplingConfig
from harmonixr.visualization.audio import can_render


@dataclass(frozen=True)
class Example:
    """A piece of the bundled corpus: a music21 corpus work (and tune number in the file)."""

    work: str
    number: int | None
    style: str
    title: str


# The demo's pieces and the web studio's examples.
EXAMPLES = {
    "chorale": Example("bach/bwv66.6", None, "chorale", "Bach, chorale BWV 66.6 (4 voices)"),
    "folk": Example("essenFolksong/altdeu10", 3, "folk-german", "Essen collection, German folk song (1 voice)"),
    "reel": Example("oneills1850/0001-0050", 1, "folk-celtic", "O'Neill's 1850, tune 1 (1 voice)"),
    "rag": Example("joplin/maple_leaf_rag", None, "modern", "Joplin, Maple Leaf Rag (piano)"),
    "madrigal": Example("monteverdi/madrigal.3.1.mxl", None, "renaissance", "Monteverdi, madrigal 3.1 (5 voices)"),
}
PIANO, GUITAR, BASS, DRUMS, FLUTE = 0, 30, 33, -1, 73
JIG_NOTES_PER_BAR = 6  # a jig's eighth notes
SAMPLING = SamplingConfig(temperature=0.95, top_p=0.95)


@dataclass
class Made:
    name: str
    what: str
    result: Result
    files: list[Path]


def example_score(name: str) -> Score:
    """An example piece of the bundled corpus, converted to MIDI once (cached beside the corpus cache)."""
    if name not in EXAMPLES:
        raise KeyError(f"no example {name!r}; the examples are {', '.join(EXAMPLES)}")
    example = EXAMPLES[name]
    path = cache_dir() / "demo" / f"{name}.mid"
    if not path.is_file():
        from music21 import converter, corpus

        source = str(corpus.getWork(example.work))
        number = example.number
        parsed = converter.parse(source, number=number) if number is not None else converter.parse(source)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        m21_to_score(parsed).dump_midi(str(tmp))
        tmp.replace(path)
    return Score(str(path))


def run_demo(model: str | Path, out: str | Path = "out", seed: int = 0, wav: bool = True,
             console: Console | None = None) -> list[Made]:
    """Make every demo result; print a table of what was made."""
    console = console or Console()
    out = Path(out)
    began = time.perf_counter()
    if wav and not can_render():
        console.print("[yellow]no WAVs: TinySoundFont is not installed (pip install --no-deps tinysoundfont==0.3.7); "
                      "the MIDI and PNG files are made as usual[/yellow]")
        wav = False
    gen = Generator(model)
    made: list[Made] = []

    def keep(name: str, what: str, result: Result, before: Score | None) -> None:
        files = write_result(result, out / f"{len(made) + 1:02d}-{name}.mid", before, png=True, wav=wav, excerpt=True)
        made.append(Made(name, what, result, files))

    chorale = gen.piece(example_score("chorale"), "chorale")
    keep("chorale-infill", "Bach chorale BWV 66.6: bars 5-8 rewritten, all four voices",
         gen.infill(chorale, Region.parse("5-8", gen.vocab.grid), 1, SAMPLING, seed, source="sampled")[0], chorale.original)
    alto = 1  # soprano, alto, tenor, bass
    keep("chorale-alto", "the same chorale: the alto of bars 1-8 rewritten under the other voices",
         gen.infill(chorale, Region.parse("1-8", gen.vocab.grid, (alto,)), 1, SAMPLING, seed, source="sampled")[0],
         chorale.original)
    folk = gen.piece(example_score("folk"), "folk-german")
    keep("folk-continue", "Essen folk song: its first 4 bars, continued for 8 bars",
         gen.continue_(folk, bars=8, after_bar=4, sampling=SAMPLING, seed=seed)[0], folk.original)
    # The corpus's band arrangements with drums are Freedoom's (style "game"); asked for pop piano,
    # bass and drums, the model gave one part nearly all the notes in 4 of 5 seeds (docs/generation.md).
    band = gen.generate([GUITAR, BASS, DRUMS], style="game", bars=16, tempo=100, sampling=SAMPLING, seed=seed)[0]
    keep("band-generate", "game music, from nothing: 16 bars of guitar, bass and drums", band, None)
    band_piece = gen.piece(band.score, "game")
    keep("band-infill", "that band piece: bars 5-8 rewritten, every part, piece-aware (the song's own bars "
                        "whose surroundings match)",
         gen.infill(band_piece, Region.parse("5-8", gen.vocab.grid), 1, SAMPLING, seed)[0], band.score)
    # The corpus's 4,203 Celtic tunes are all one-line piano tracks: asked for a flute part in that
    # style, the model has nothing to go on and writes chords (178-615 notes for 16 bars). So the
    # tune is written as the corpus has it, one line, and voiced on a flute.
    tune = gen.generate([PIANO], style="folk-celtic", bars=16, tempo=110, time_signature=(6, 8),
                        controls={"density": JIG_NOTES_PER_BAR}, sampling=SAMPLING, seed=seed,
                        rules=MusicRules(max_polyphony=1))[0]
    tune.score.tracks[0].program, tune.score.tracks[0].name = FLUTE, "Flute"
    keep("celtic-generate", "Celtic tune, from nothing: 16 bars of 6/8, one line of about 6 notes a bar, on a "
                            "flute", tune, None)
    _print(console, made, time.perf_counter() - began, out)
    return made


def _print(console: Console, made: list[Made], seconds: float, out: Path) -> None:
    table = Table(title=f"harmonixr demo: {len(made)} results in {out}/ ({seconds:.1f} s in all)")
    for column in ("file", "what", "notes made", "closed", "compute s"):
        table.add_column(column, justify="right" if column in ("notes made", "compute s") else "left")
    for m in made:
        table.add_row(m.files[0].name, m.what, str(m.result.notes), "yes" if m.result.finished else "cut",
                      f"{m.result.seconds:.2f}")
    console.print(table)
    console.print(f"each result: .mid (whole piece), .png (piano roll, region shaded), "
                  f"{'.wav (region with 4 bars around it)' if any(len(m.files) > 2 for m in made) else 'no .wav'}")
