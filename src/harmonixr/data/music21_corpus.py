"""The bundled corpus: music21's own collection, converted once to MIDI and cached, with labels.

Each corpus file (each tune, for a multi-tune ABC file) becomes one MIDI file in the cache folder
(``$HARMONIXR_CACHE`` or ``~/.cache/harmonixr``), one track per part, with the part's name and
instrument, tempo marks, time signatures, dynamics as velocities, ties merged and pickups placed so
that bar lines fall where the score has them. ``metadata.csv`` beside them labels each piece with
style, collection, composer and title, so the cache is an ordinary folder source afterwards.

Conversion is resumable: finished items are appended to ``index.jsonl`` as they complete.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from symusic import Note, Score, Tempo, TimeSignature, Track

from harmonixr.data.sources import PieceRef, write_metadata
from harmonixr.data.validate import Reason, reject_row

TICKS_PER_QUARTER = 480  # divisible by 3 and 16: triplets and 64ths are exact
DEFAULT_VELOCITY = 80  # music21 scores without dynamics: a plain mezzo-forte
CHOIR_PROGRAM = 52  # GM "Choir Aahs" for vocal parts
VOCAL_PART = re.compile(r"soprano|alto|tenor|bass(?!oon)|cantus|altus|bassus|quintus|sextus|voice|canto", re.IGNORECASE)
INDEX_FILE = "index.jsonl"

# Top-level corpus folder -> (style, composer or collector). Folders not listed are not music
# collections (demos, theory exercises, lead sheets, an empty stub) and are skipped.
COLLECTIONS: dict[str, tuple[str, str]] = {
    "bach": ("chorale", "Johann Sebastian Bach"),
    "essenFolksong": ("folk-german", "anonymous (Essen collection)"),
    "oneills1850": ("folk-celtic", "anonymous (O'Neill's 1850)"),
    "ryansMammoth": ("folk-celtic", "anonymous (Ryan's Mammoth Collection)"),
    "airdsAirs": ("folk-celtic", "anonymous (Aird's Airs)"),
    "miscFolk": ("folk-american", "anonymous"),
    "palestrina": ("renaissance", "Giovanni Pierluigi da Palestrina"),
    "josquin": ("renaissance", "Josquin des Prez"),
    "lusitano": ("renaissance", "Vicente Lusitano"),
    "luca": ("renaissance", "Luca"),
    "monteverdi": ("renaissance", "Claudio Monteverdi"),
    "ciconia": ("medieval", "Johannes Ciconia"),
    "trecento": ("medieval", "anonymous (Trecento)"),
    "corelli": ("baroque", "Arcangelo Corelli"),
    "handel": ("baroque", "George Frideric Handel"),
    "cpebach": ("classical", "Carl Philipp Emanuel Bach"),
    "haydn": ("classical", "Joseph Haydn"),
    "mozart": ("classical", "Wolfgang Amadeus Mozart"),
    "beethoven": ("classical", "Ludwig van Beethoven"),
    "schubert": ("romantic", "Franz Schubert"),
    "schumann_clara": ("romantic", "Clara Schumann"),
    "schumann_robert": ("romantic", "Robert Schumann"),
    "chopin": ("romantic", "Frédéric Chopin"),
    "weber": ("romantic", "Carl Maria von Weber"),
    "verdi": ("romantic", "Giuseppe Verdi"),
    "beach": ("romantic", "Amy Beach"),
    "liliuokalani": ("romantic", "Liliʻuokalani"),
    "joplin": ("modern", "Scott Joplin"),
    "johnson_j_r": ("modern", "J. Rosamond Johnson"),
    "schoenberg": ("modern", "Arnold Schoenberg"),
    "webern": ("modern", "Anton Webern"),
}
# Essen files that are other traditions, and music21's own test fixtures (not music to learn).
ESSEN_STYLES = {"han1": "folk-chinese", "han2": "folk-chinese", "irl": "folk-celtic"}
ESSEN_SKIP = {"test0", "test1", "testd", "teste"}
# Readable formats, best first: a piece shipped in two formats is converted once, from the first.
SCORE_SUFFIXES = (".mxl", ".musicxml", ".xml", ".krn", ".abc")


@dataclass(frozen=True)
class CorpusItem:
    """One unit of conversion work: a corpus file (an ABC file holds many tunes)."""

    key: str  # "<collection>/<file>", unique
    path: str
    style: str
    collection: str
    composer: str
    out: str  # MIDI path stem relative to the cache folder ("-<tune>.mid" is added for ABC tunes)


def cache_dir() -> Path:
    """Where the converted corpus lives: ``$HARMONIXR_CACHE/music21-<version>``."""
    import music21

    base = Path(os.environ.get("HARMONIXR_CACHE", Path.home() / ".cache" / "harmonixr"))
    return base / f"music21-{music21.__version__}"


def corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


def list_items(collections: tuple[str, ...] | None = None, per_collection: int | None = None) -> list[CorpusItem]:
    """Every convertible corpus file, in a fixed order; optionally some collections, and at most
    ``per_collection`` files of each (an ABC file holds many tunes)."""
    root = corpus_root()
    items: list[CorpusItem] = []
    for collection in sorted(COLLECTIONS):
        if collections and collection not in collections:
            continue
        style, composer = COLLECTIONS[collection]
        found, seen = [], set()
        paths = [p for p in (root / collection).rglob("*") if p.suffix.lower() in SCORE_SUFFIXES and p.is_file()]
        for path in sorted(paths, key=lambda p: (p.with_suffix(""), SCORE_SUFFIXES.index(p.suffix.lower()))):
            if path.with_suffix("") in seen:
                continue
            seen.add(path.with_suffix(""))
            if collection == "essenFolksong" and path.stem in ESSEN_SKIP:
                continue
            file_style = ESSEN_STYLES.get(path.stem, style) if collection == "essenFolksong" else style
            rel = path.relative_to(root / collection).with_suffix("")
            found.append(CorpusItem(f"{collection}/{rel}", str(path), file_style, collection, composer,
                                    f"{collection}/{rel}"))
        items.extend(found[:per_collection] if per_collection else found)
    return items


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "x"


def convert_item(item: CorpusItem) -> list[tuple[str, Score | Exception, str]]:
    """Parse one corpus file with music21: ``[(out path, Score or the error, title), ...]``.

    An ABC file is parsed whole (2.5x faster per tune than tune by tune) and gives one entry per
    tune; an error in one tune is returned in its entry and does not cost the others.
    """
    from music21 import converter, stream

    parsed = converter.parse(item.path, forceSource=True)
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    multi = item.path.lower().endswith(".abc")
    entries, used = [], set()
    for index, m21score in enumerate(scores if multi else scores[:1]):
        number = str(m21score.metadata.number) if multi and m21score.metadata and m21score.metadata.number else str(index + 1)
        out = f"{item.out}-{_safe(number)}.mid" if multi else f"{item.out}.mid"
        if out in used:  # repeated X: numbers exist in the wild
            out = f"{item.out}-{_safe(number)}-{index + 1}.mid"
        used.add(out)
        title = (m21score.metadata.title if m21score.metadata else None) or Path(out).stem.replace("_", " ")
        try:
            entries.append((out, m21_to_score(m21score), str(title)))
        except Exception as exc:  # noqa: BLE001 - one tune's error is that tune's reject
            entries.append((out, exc, str(title)))
    return entries


def m21_to_score(m21score, tpq: int = TICKS_PER_QUARTER) -> Score:
    """Convert a music21 Score: one track per part (merged voices), ties merged, pickup placed."""
    from music21 import dynamics, meter, stream

    parts = list(m21score.parts) or [m21score]
    first_measure = parts[0].getElementsByClass(stream.Measure).first()
    pickup = float(first_measure.paddingLeft) if first_measure is not None else 0.0

    def tick(offset: float) -> int:
        return round((float(offset) + pickup) * tpq)

    score = Score(tpq)
    seen_tempo: set[int] = set()
    for start, _end, mark in m21score.metronomeMarkBoundaries():
        qpm = mark.getQuarterBPM()
        at = 0 if float(start) == 0 else tick(start)
        if qpm and at not in seen_tempo:
            seen_tempo.add(at)
            score.tempos.append(Tempo(at, qpm=float(qpm)))
    for ts in parts[0].flatten().getElementsByClass(meter.TimeSignature):
        at = 0 if float(ts.offset) == 0 else tick(ts.offset)
        score.time_signatures.append(TimeSignature(at, ts.numerator, ts.denominator))
    for index, part in enumerate(parts):
        flat = part.flatten()
        dyn = [(float(d.offset), _dynamic_velocity(d)) for d in flat.getElementsByClass(dynamics.Dynamic)]
        name = part.partName or f"Part {index + 1}"
        track = Track(name, _program(part, name), False)
        for start, end, pitch, velocity in _merge_ties(flat, dyn):
            track.notes.append(Note(tick(start), max(tick(end) - tick(start), 1), pitch, velocity))
        if track.note_num():
            score.tracks.append(track)
    return score


def _merge_ties(flat, dynamics_at: list[tuple[float, int]]) -> list[list]:
    """``[start, end, midi pitch, velocity]`` per sounding note, tied notes merged into one.

    One pass over the notes (music21's ``stripTies`` also re-beams and deep-copies the stream,
    which made it 40% of the conversion time).
    """
    notes: list[list] = []
    open_ties: dict[int, int] = {}  # pitch -> index in notes of a note whose tie continues
    level, k = DEFAULT_VELOCITY, 0
    for element in flat.notes:
        if element.duration.isGrace or element.quarterLength <= 0:
            continue
        start = float(element.offset)
        end = start + float(element.quarterLength)
        while k < len(dynamics_at) and dynamics_at[k][0] <= start:
            level, k = dynamics_at[k][1], k + 1
        explicit = element.volume.velocity if element.volume.velocityIsRelative is False else None
        members = element.notes if element.isChord else [element]
        for member in members:
            if not hasattr(member, "pitch"):  # unpitched percussion
                continue
            pitch = int(member.pitch.midi)
            tie = (member.tie or element.tie).type if (member.tie or element.tie) else None
            held = open_ties.get(pitch)
            if held is not None and tie in ("stop", "continue") and abs(notes[held][1] - start) < 1e-6:
                notes[held][1] = end
            else:
                held = len(notes)
                notes.append([start, end, pitch, int(explicit or level)])
            if tie in ("start", "continue"):
                open_ties[pitch] = held
            else:
                open_ties.pop(pitch, None)
    return notes


def _dynamic_velocity(dynamic) -> int:
    scalar = dynamic.volumeScalar
    return max(1, min(127, round(scalar * 127))) if scalar else DEFAULT_VELOCITY


def _program(part, name: str) -> int:
    instrument = part.getInstrument(returnDefault=True)
    if instrument.midiProgram is not None:
        return int(instrument.midiProgram)
    if VOCAL_PART.search(name):
        return CHOIR_PROGRAM
    from music21 import instrument as m21_instrument

    try:  # music21 knows "Violin", "Viola", "Flute" ... by name
        program = m21_instrument.fromString(instrument.instrumentName or name).midiProgram
    except m21_instrument.InstrumentException:
        program = None
    return int(program) if program is not None else 0


def convert_to_cache(job: tuple[CorpusItem, str]) -> dict:
    """Worker function: convert ``item`` into ``folder`` (atomic writes); return its index entry.

    The entry lists each piece written (``out``, ``title``) and each piece that failed (``error``).
    """
    item, folder = job
    warnings.simplefilter("ignore")  # music21 warns on every overfull bar of old editions
    pieces = []
    for out, score, title in convert_item(item):
        if isinstance(score, Exception) or not score.tracks:
            reason = f"{type(score).__name__}: {score}" if isinstance(score, Exception) else "no notes"
            pieces.append({"out": out, "title": title, "error": reason})
            continue
        path = Path(folder) / out
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".mid.tmp")
        score.dump_midi(tmp)
        tmp.replace(path)
        pieces.append({"out": out, "title": title})
    return {"key": item.key, "pieces": pieces}


def read_index(folder: Path) -> dict[str, dict]:
    """Finished conversions (successes and failures) by item key."""
    index = folder / INDEX_FILE
    done: dict[str, dict] = {}
    if index.is_file():
        for line in index.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                done[entry["key"]] = entry
            except (ValueError, KeyError):
                continue  # a line cut by a kill: that item is simply converted again
    return done


def refs_from_index(items: list[CorpusItem], folder: Path) -> tuple[list[PieceRef], list[dict]]:
    """Labelled references for converted items, and the failures, from ``index.jsonl``."""
    done = read_index(folder)
    refs, failures = [], []
    for item in items:
        entry = done.get(item.key)
        if entry is None:
            continue
        if entry.get("error"):  # the whole file failed (its worker crashed or timed out)
            failures.append(reject_row(item.path, Reason.CONVERSION_FAILED, entry["error"]))
        for piece in entry.get("pieces", []):
            if piece.get("error"):
                failures.append(reject_row(f"{item.path}#{piece['title']}", Reason.CONVERSION_FAILED, piece["error"]))
                continue
            refs.append(PieceRef(path=str((folder / piece["out"]).resolve()), source="music21",
                                 style=item.style, collection=item.collection, composer=item.composer,
                                 title=piece["title"]))
    return refs, failures


def pending(items: list[CorpusItem], folder: Path) -> list[CorpusItem]:
    """The items not converted (nor failed) yet."""
    done = read_index(folder)
    return [item for item in items if item.key not in done]


def append_index(folder: Path, entries: list[dict]) -> None:
    with (folder / INDEX_FILE).open("a", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def finish(items: list[CorpusItem], folder: Path) -> tuple[list[PieceRef], list[dict]]:
    """Write ``metadata.csv`` for the converted items and return (refs, failures)."""
    refs, failures = refs_from_index(items, folder)
    write_metadata(refs, folder / "metadata.csv", folder)
    return refs, failures

