"""``harmonixr stats``: pieces, notes and hours per style and split, and the reject reasons."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
from rich.console import Console
from rich.table import Table

from harmonixr.data.corpus import Corpus
from harmonixr.data.shards import NoteShards, read_rejects
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK, VEL, onset_lowest
from harmonixr.tokens.vocab import NoteVocab

SPLIT_ORDER = ("train", "val", "test")
# What a GM program's parts play (program_parts): their notes from this quantile to 1 minus it, their
# median onsets per bar where they play, and the chord size 1 minus it of their onsets keep to; from
# the program's own parts where it has LEAST_PARTS of them, else from its family's (8 programs).
RANGE_QUANTILE = 0.05
LEAST_PARTS = 20
# And the share of its notes its most played pitch takes in a span of SHARE_BARS bars (of those
# where it plays SHARE_NOTES notes or more) that 1 - SHARE_QUANTILE of its parts' spans stay under:
# a new part plays no pitch more often than that (the model alone, adding a piano under a POP909
# song, put 0.6-0.7 of its notes on one pitch).
SHARE_BARS = 16
SHARE_NOTES = 8
SHARE_QUANTILE = 0.1
FAMILY = 8  # GM programs per instrument family
DRUMS = -1  # the drums' row of program_parts
MAX_CHORD = 16  # notes at one onset counted apart (more count as this many)
# A style's drum kit (drum_kits): the sounds its drum parts play most, up to this share of their
# notes, from the style's own parts where it has KIT_PARTS of them, else from every style's.
KIT_SHARE = 0.98
KIT_PARTS = 10
EVERY_STYLE = ""  # drum_kits' row of every style together
# A style's groove (drum_grooves), from the drum notes of its parts' 4/4 bars: the places in the
# bar that hold GROOVE_PLACE of them or more, and at each the sounds that hold GROOVE_SOUND of its
# notes or more, with their velocities.
GROOVE_METER = (4, 4)
GROOVE_PLACE = 0.005
GROOVE_SOUND = 0.05
REPEAT_NOTES = 16  # notes of a part for its velocity repeats to count (velocity_repeats)
LOUD = 120  # a velocity this high or more is a loud note (melodic_velocities)


def dataset_stats(folder: str | Path) -> dict:
    """Counts of a prepared folder: ``{"styles": {style: {split: {...}}}, "rejects": {reason: n},
    "meters": {source: {meter: share of its notes}}}`` (pieces, notes, bars and seconds per style
    and split)."""
    data = NoteShards(folder)
    styles: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for row in data.rows():
        cell = styles[row["style"]][row["split"]]
        cell["pieces"] += 1
        cell["notes"] += row["notes"]
        cell["bars"] += row["bars"]
        cell["seconds"] += row["seconds"]
    rejects = Counter(r["reason"] for r in read_rejects(Path(folder)))
    return {"styles": {s: {k: dict(v) for k, v in d.items()} for s, d in styles.items()},
            "rejects": dict(rejects), "meters": meter_shares(data, NoteVocab.from_file(Path(folder)))}


def meter_shares(data: NoteShards, vocab: NoteVocab) -> dict[str, dict[str, float]]:
    """Per source, the share of its notes in bars of each meter (the files' time signatures): a
    source whose files declare a meter its music does not have shows here (POP909's files say 1/4
    or 2/4 where the songs are in four: its bars are one or two beats long)."""
    names = {value: f"{n}/{d}" for (n, d), value in vocab.meter_id.items()}
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in data.rows():
        notes = data.notes(row)
        meters = data.bars(row)[notes[:, BAR], 0] if len(notes) else np.zeros(0, dtype=np.int64)
        values, times = np.unique(meters, return_counts=True)
        counts[row.get("source", "?")].update({names.get(int(v), "other"): int(t) for v, t in zip(values, times)})
    return {source: {meter: n / sum(c.values()) for meter, n in c.most_common()} for source, c in sorted(counts.items())}


def print_stats(folder: str | Path, console: Console | None = None) -> dict:
    """Print the tables of :func:`dataset_stats` and return the numbers."""
    console = console or Console()
    stats = dataset_stats(folder)
    table = Table(title=f"{folder}: kept pieces per style and split")
    for column in ("style", *[f"{s} pieces" for s in SPLIT_ORDER], "notes", "bars", "hours"):
        table.add_column(column, justify="left" if column == "style" else "right", no_wrap=column == "style")
    totals: Counter = Counter()
    for style in sorted(stats["styles"], key=lambda s: -sum(c.get("pieces", 0) for c in stats["styles"][s].values())):
        cells = stats["styles"][style]
        merged = sum((Counter(c) for c in cells.values()), Counter())
        totals.update(merged)
        for split in SPLIT_ORDER:
            totals[f"pieces_{split}"] += cells.get(split, {}).get("pieces", 0)
        table.add_row(style, *[f"{cells.get(s, {}).get('pieces', 0):,}" for s in SPLIT_ORDER],
                      f"{merged['notes']:,}", f"{merged['bars']:,}", f"{merged['seconds'] / 3600:,.1f}")
    table.add_row("[bold]total", *[f"[bold]{totals[f'pieces_{s}']:,}" for s in SPLIT_ORDER],
                  f"[bold]{totals['notes']:,}", f"[bold]{totals['bars']:,}", f"[bold]{totals['seconds'] / 3600:,.1f}")
    console.print(table)
    rejects = Table(title="rejected files per reason")
    rejects.add_column("reason")
    rejects.add_column("files", justify="right")
    for reason, count in sorted(stats["rejects"].items(), key=lambda kv: -kv[1]):
        rejects.add_row(reason, f"{count:,}")
    rejects.add_row("[bold]total", f"[bold]{sum(stats['rejects'].values()):,}")
    console.print(rejects)
    meters = Table(title="notes per meter of the files' bars, by source (the four most)")
    meters.add_column("source")
    meters.add_column("meters", justify="left")
    for source, shares in stats["meters"].items():
        meters.add_row(source, ", ".join(f"{m} {share:.0%}" for m, share in list(shares.items())[:4]))
    console.print(meters)
    return stats


class TypicalPart(NamedTuple):
    """What a GM program's parts play in the training data (a row of :func:`program_parts`)."""

    low: int  # lowest pitch (the drums: sound)
    high: int  # highest
    pace: float  # onsets per bar where they play
    chord: int  # most notes at one onset
    share: float | None = None  # the most played pitch's share of a span's notes (None: a checkpoint before it)


def program_parts(corpus: Corpus, split: str = "train") -> list[tuple[int, int, int, float, int, float]]:
    """(program, lowest pitch, highest pitch, onsets per bar, chord, pitch share) of the parts of
    each GM program in ``split`` (:data:`DRUMS` for the drums: their lowest and highest drum sound):
    the :data:`RANGE_QUANTILE` and 1 - it quantiles of their notes, the median over parts of their
    onsets per bar in the bars where they play, the notes that 1 - :data:`RANGE_QUANTILE` of their
    onsets start at most (a cello: 1; a piano: several), and the share of a span's notes on its most
    played pitch that 1 - :data:`SHARE_QUANTILE` of their spans of :data:`SHARE_BARS` bars stay
    under (1 where no span has enough notes); from the program's own parts where there are
    :data:`LEAST_PARTS` of them, else from its family's; programs with too few of either are left
    out. A part written from nothing
    (``add-track``, ``generate``) keeps to its program's (:class:`TypicalPart`): the model alone,
    told "an electric bass", wrote a pop song's bass around middle C, and in a new piece for piano,
    bass and drums left one of them one note."""
    counts = np.zeros((129, 128), dtype=np.int64)  # (program, the drums last; pitch) notes
    paces: list[list[float]] = [[] for _ in range(129)]  # per program, each part's onsets per bar
    chords = np.zeros((129, MAX_CHORD + 1), dtype=np.int64)  # (program, notes at an onset) onsets
    shares: list[list[float]] = [[] for _ in range(129)]  # per program, each span's most played pitch's share
    for shards, row in corpus.rows(split):
        piece = corpus.piece(shards, row)
        for slot, program in [*enumerate(piece.tracks.programs), (corpus.vocab.drum_slot, DRUMS)]:
            mine = piece.notes[piece.notes[:, TRACK] == slot]
            if len(mine):
                counts[program] += np.bincount(mine[:, PITCH], minlength=128)
                _, sizes = np.unique(mine[:, [BAR, POS]], axis=0, return_counts=True)
                paces[program].append(len(sizes) / len(np.unique(mine[:, BAR])))
                chords[program] += np.bincount(np.minimum(sizes, MAX_CHORD), minlength=MAX_CHORD + 1)
                shares[program] += span_shares(mine)
    families = counts[:128].reshape(128 // FAMILY, FAMILY, 128).sum(1)
    family_chords = chords[:128].reshape(128 // FAMILY, FAMILY, -1).sum(1)
    family_paces = [sum(paces[f * FAMILY:(f + 1) * FAMILY], []) for f in range(128 // FAMILY)]
    family_shares = [sum(shares[f * FAMILY:(f + 1) * FAMILY], []) for f in range(128 // FAMILY)]
    out = []
    for program in [*range(128), DRUMS]:
        notes, pace, sizes, spans = counts[program], paces[program], chords[program], shares[program]
        if len(pace) < LEAST_PARTS and program != DRUMS:
            family = program // FAMILY
            notes, pace, sizes, spans = families[family], family_paces[family], family_chords[family], family_shares[family]
        if len(pace) < LEAST_PARTS:
            continue
        share = np.cumsum(notes) / notes.sum()
        chord = int(np.searchsorted(np.cumsum(sizes) / sizes.sum(), 1 - RANGE_QUANTILE))
        out.append((program, int(np.searchsorted(share, RANGE_QUANTILE)), int(np.searchsorted(share, 1 - RANGE_QUANTILE)),
                    round(float(np.median(pace)), 2), chord,
                    round(float(np.quantile(spans, 1 - SHARE_QUANTILE)), 3) if spans else 1.0))
    return out


def top_share(pitches: np.ndarray) -> float:
    """The share of ``pitches`` (one or more) on the most played one."""
    return float(np.bincount(pitches).max() / len(pitches))


def span_shares(notes: np.ndarray) -> list[float]:
    """The share of its notes the most played pitch takes in each span of :data:`SHARE_BARS` bars
    of a part's ``notes`` where it plays :data:`SHARE_NOTES` notes or more."""
    out = []
    for span in np.unique(notes[:, BAR] // SHARE_BARS):
        pitches = notes[notes[:, BAR] // SHARE_BARS == span, PITCH]
        if len(pitches) >= SHARE_NOTES:
            out.append(top_share(pitches))
    return out


def drum_kits(corpus: Corpus, split: str = "train") -> list[tuple[str, list[tuple[int, float]]]]:
    """(style, [(drum sound, its share of the kit's notes), ...]) of each style with
    :data:`KIT_PARTS` drum parts in ``split``, and of every style together (:data:`EVERY_STYLE`):
    the sounds its drum parts play most, most played first, up to :data:`KIT_SHARE` of their notes.
    A drum part written from nothing (``generate``, ``add-track``) keeps to its style's kit and
    leans to its most played sounds: the model alone, told "rock" with a bass and a piano, played
    a ride bell, a cowbell and maracas as often as a kick and a snare (the game-music arrangements
    are where it has heard drums beside other parts)."""
    counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(128, dtype=np.int64))  # style -> notes per sound
    parts: Counter = Counter()
    for shards, row in corpus.rows(split):
        if not row["drums"]:
            continue
        notes = shards.notes(row)
        sounds = notes[notes[:, TRACK] == corpus.vocab.drum_slot, PITCH]
        if len(sounds):
            for style in (row["style"], EVERY_STYLE):
                counts[style] += np.bincount(sounds, minlength=128)
                parts[style] += 1
    out = []
    for style in sorted(s for s in counts if parts[s] >= KIT_PARTS):
        share = counts[style] / counts[style].sum()
        order = np.argsort(-share, kind="stable")
        size = int(np.searchsorted(np.cumsum(share[order]), KIT_SHARE)) + 1
        out.append((style, [(int(sound), round(float(share[sound]), 4)) for sound in order[:size]]))
    return out


def drum_repeats(corpus: Corpus, split: str = "train") -> list[tuple[str, float, float]]:
    """(style, the share of its drum notes played at the velocity of the part's note before, and
    at that of its note of the same sound before) of each style with :data:`KIT_PARTS` drum parts in
    ``split`` and of every style together (:data:`EVERY_STYLE`). A new drum part repeats a velocity
    no more often than that: the model, once a few hits share a velocity, plays every later one at it."""
    return [(style, *repeat_shares(c[:4])) for style, c in _style_counts(corpus, split, drums=True)]


def melodic_velocities(corpus: Corpus, split: str = "train") -> list[tuple[str, float, float, float]]:
    """:func:`drum_repeats` of the melodic parts (each of a piece's melodic tracks), and the share of
    their notes at :data:`LOUD` or more, for a new piece's melodic parts: the model, told "pop" with
    a bass and a guitar (the game-music arrangements' band, one velocity a part), played every note
    of them at one velocity, where POP909's parts repeat the velocity of the note before 11% of the
    time; held off that, 13% of their notes at 120 or more, where POP909's have 3%."""
    return [(style, *repeat_shares(c[:4]), round(float(c[4] / c[5]), 3))
            for style, c in _style_counts(corpus, split, drums=False)]


def _style_counts(corpus: Corpus, split: str, drums: bool) -> list[tuple[str, np.ndarray]]:
    """(style, (6,): the :func:`repeat_counts`, the notes at :data:`LOUD` or more, the notes) of the
    drum parts, or the melodic ones, of each style with :data:`KIT_PARTS` of them, and every style's."""
    counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(6, dtype=np.int64))
    parts: Counter = Counter()
    for shards, row in corpus.rows(split):
        if drums and not row["drums"]:
            continue
        notes = shards.notes(row)
        slots = [corpus.vocab.drum_slot] if drums else [s for s in np.unique(notes[:, TRACK]) if s != corpus.vocab.drum_slot]
        for slot in slots:
            part = notes[notes[:, TRACK] == slot]
            if len(part) > 1:
                for style in (row["style"], EVERY_STYLE):
                    counts[style] += np.concatenate([repeat_counts(part), [(part[:, VEL] >= LOUD).sum(), len(part)]])
                    parts[style] += 1
    return [(style, c) for style, c in sorted(counts.items()) if parts[style] >= KIT_PARTS]


def repeat_counts(part: np.ndarray) -> np.ndarray:
    """(4,) of one part's notes (in time order): those at the velocity of the note before, the notes
    with one before, those at the velocity of the note of the same pitch before, the notes with one."""
    by_pitch = part[np.lexsort((np.arange(len(part)), part[:, PITCH]))]  # by pitch, in time order
    again = by_pitch[1:, PITCH] == by_pitch[:-1, PITCH]
    return np.array([(part[1:, VEL] == part[:-1, VEL]).sum(), max(len(part) - 1, 0),
                     (again & (by_pitch[1:, VEL] == by_pitch[:-1, VEL])).sum(), again.sum()], dtype=np.int64)


def velocity_repeats(notes: np.ndarray) -> tuple[float, float]:
    """The most of the :func:`repeat_shares` of the parts of ``notes`` (each track's, in time order)
    with :data:`REPEAT_NOTES` notes or more (1 where none has): a part added to a song repeats a
    velocity no more often than the song's most repetitive part. The model alone, adding a guitar
    to a POP909 song whose parts repeat 4-19% of the time, played 97% of its notes at the velocity
    of the one before; a song whose parts keep one velocity says 1, and its new part may too."""
    parts = [notes[notes[:, TRACK] == slot] for slot in np.unique(notes[:, TRACK])]
    shares = [repeat_shares(repeat_counts(part)) for part in parts if len(part) >= REPEAT_NOTES]
    return (max(s[0] for s in shares), max(s[1] for s in shares)) if shares else (1.0, 1.0)


def repeat_shares(counts: np.ndarray) -> tuple[float, float]:
    """The two shares of :func:`repeat_counts` (summed over parts): of the notes after the note before,
    and after the note of the same pitch before (1 where there is none: nothing says otherwise)."""
    return (round(float(counts[0] / counts[1]), 3) if counts[1] else 1.0,
            round(float(counts[2] / counts[3]), 3) if counts[3] else 1.0)


# (place, [(sound, share of the notes there, mean velocity, spread, share of the onsets there it is the lowest sound of)])
Groove = list[tuple[int, list[tuple[int, float, int, int, float]]]]


def drum_grooves(corpus: Corpus, split: str = "train") -> list[tuple[str, Groove]]:
    """(style, [(place in a 4/4 bar, [(drum sound, its share of the notes at that place, their mean
    velocity, their spread, its share of the onsets there whose lowest sound it is), ...]), ...]) of
    each style with :data:`KIT_PARTS` drum parts in ``split`` and of every style together
    (:data:`EVERY_STYLE`): the places of the bar its drum parts play at (:data:`GROOVE_PLACE`) and
    the sounds they play there (:data:`GROOVE_SOUND`), most played first. A new drum part leans to
    them, place by place: the model alone, told "rock", put a snare and a ride bell anywhere in the
    bar and played most hits at velocity 127. The notes of an onset come lowest sound first, so the
    first note of an onset leans by the last share: a funk snare on the backbeat is the onset's
    first note, played with a hi-hat above it."""
    vocab = corpus.vocab
    four, places = vocab.meter_id[GROOVE_METER], GROOVE_METER[0] * vocab.grid
    counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros((4, places, 128)))  # notes, velocities, squares, lowest
    parts: Counter = Counter()
    for shards, row in corpus.rows(split):
        if not row["drums"]:
            continue
        notes = shards.notes(row)
        notes = notes[notes[:, TRACK] == vocab.drum_slot]
        notes = notes[(shards.bars(row)[notes[:, BAR], 0] == four) & (notes[:, POS] < places)]
        if not len(notes):
            continue
        velocity = notes[:, VEL].astype(np.float64)
        for style in (row["style"], EVERY_STYLE):
            for k, value in enumerate((np.ones(len(notes)), velocity, velocity**2, onset_lowest(notes))):
                np.add.at(counts[style][k], (notes[:, POS], notes[:, PITCH]), value)
            parts[style] += 1
    out = []
    for style in sorted(s for s in counts if parts[s] >= KIT_PARTS):
        n, sums, squares, lowest = counts[style]
        at, onsets = n.sum(axis=1), lowest.sum(axis=1)
        groove = []
        for place in np.flatnonzero(at >= GROOVE_PLACE * at.sum()).tolist():
            sounds = [s for s in np.argsort(-n[place], kind="stable").tolist() if n[place, s] >= GROOVE_SOUND * at[place]]
            mean = sums[place, sounds] / n[place, sounds]
            spread = np.sqrt(np.maximum(squares[place, sounds] / n[place, sounds] - mean**2, 0.0))
            first = lowest[place, sounds] / onsets[place]
            groove.append((place, [(sound, round(float(n[place, sound] / at[place]), 3), round(float(m)), round(float(d)),
                                    round(float(f), 3)) for sound, m, d, f in zip(sounds, mean, spread, first)]))
        out.append((style, groove))
    return out
