"""The note-level vocabulary: one sequence position per note, each a row of small integer columns.

A piece reads as rows, one per position::

    type        value         dbar pos track pitch dur vel micro | bar meter tempo segment program hole
    BOS         -
    STYLE       Style_pop
    CONTROL     Tempo_3
    INSTRUMENT  Program_0                track=1
    NOTE        -             0    1   1     61    12  79  9     | 1   ...
    NOTE        -             0    1   2     49    24  64  9     | 1   ...
    ...
    EOS

The first nine columns are the **fields** of a position; the model predicts eight of them for the
next position, in the order of :data:`FIELDS` (``type``, then bars since the previous position,
position in the bar on a grid of ``grid_per_quarter`` steps per quarter note, track slot, pitch,
duration bin, exact velocity 1-127, and micro-timing: the onset's offset from the grid in
1/16 of a step). ``value`` is only read: it names the style, a control, an instrument, or a hole's
per-track control. The other columns are **features** the model reads and never predicts,
because the piece's timeline, the request and the sequence so far give them: the bar counted from
the window's start, the bar's meter, the tempo bin in force, the segment of the prompt, the GM
program of the note's track, where the note lies against the hole, and its **echoes**: the pitches
the same track played at the same place some bars away, and its track's last note (:mod:`harmonixr.tokens.echo`).

Every column keeps 0 for "not applicable" (a header position has no pitch), so a field's value
``k`` is stored as ``k + 1`` where ``k`` counts from 0 (pitch 60 is 61, track slot 0 is 1), except
velocity, whose stored value is the MIDI velocity itself (1-127). Melodic track slots are 0 to
``max_tracks - 1``; the drum track is slot ``max_tracks``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmonixr.config import TokenizerSpec, from_dict, to_dict
from harmonixr.errors import HarmonixrError

TOKENIZER_FILE = "tokenizer.json"
FORMAT = "harmonixr-notes-1"

# Position types. PAD is 0 so that padding rows are all zeros.
TYPES = ("PAD", "BOS", "EOS", "NOTE", "STYLE", "CONTROL", "INSTRUMENT", "HOLE", "HOLE_END", "HOLE_TRACK",
         "TRACK_CONTROL", "PAST", "FILL", "END")
PAD, BOS, EOS, NOTE, STYLE, CONTROL, INSTRUMENT, HOLE, HOLE_END, HOLE_TRACK, TRACK_CONTROL, PAST, FILL, END = range(len(TYPES))

FIELDS = ("type", "dbar", "pos", "track", "pitch", "dur", "vel", "micro")  # predicted, in this order
# Echoes (:mod:`harmonixr.tokens.echo`): the pitch the same track played at the same place this many
# bars away (negative: earlier), when the sequence has already read that note; 0: none. The
# matched echo: the same, at the lag where the bar before this one best matches an earlier bar.
ECHO_LAGS = (-16, -8, -4, -2, -1, 1, 2, 4)
LAG_COLUMNS = tuple(f"echo{lag:+d}" for lag in ECHO_LAGS)
MATCHED_COLUMN = "echo-match"
# The last note its track played before this one (in the sequence's order): its pitch, duration bin
# and velocity, as the note columns store them.
LAST_NOTE_FIELDS = ("pitch", "dur", "vel")
LAST_NOTE_COLUMNS = tuple(f"last-{name}" for name in LAST_NOTE_FIELDS)
# The duration bin and velocity of the note the nearest earlier lag holds (the first of ECHO_NEAREST
# that holds one): how the note it would repeat was held and struck.
ECHO_NOTE_FIELDS = ("dur", "vel")
ECHO_NOTE_COLUMNS = tuple(f"echo-{name}" for name in ECHO_NOTE_FIELDS)
ECHO_NEAREST = tuple(sorted((lag for lag in ECHO_LAGS if lag < 0), reverse=True))  # -1, -2, -4, ...
# The pitch classes sounding at a note's onset: a 12-bit set (bit k: pitch class k) of the melodic
# notes read before it that sound there, stored in groups of PC_GROUP bits, each as 1 + its bits (0: none read).
PC_GROUP = 4
SOUNDING_COLUMNS = tuple(f"sound-{k}" for k in range(0, 12, PC_GROUP))
ECHO_COLUMNS = (*LAG_COLUMNS, MATCHED_COLUMN, *LAST_NOTE_COLUMNS, *ECHO_NOTE_COLUMNS, *SOUNDING_COLUMNS)
BASE_COLUMNS = ("type", "value", "dbar", "pos", "track", "pitch", "dur", "vel", "micro",
                "bar", "meter", "tempo", "segment", "program", "hole")  # what a model reads without echoes
COLUMNS = (*BASE_COLUMNS, *ECHO_COLUMNS)
COL = {name: k for k, name in enumerate(COLUMNS)}
FIELD_COLUMNS = tuple(COL[f] for f in FIELDS)
NOTE_COLUMNS = FIELD_COLUMNS[1:]  # the fields a note has beyond its type

# segment column: where a position sits in the prompt
HEADER, FUTURE, BODY, FILLED = 1, 2, 3, 4  # 0: padding
# hole column: a note against the hole, by time (0: no hole in the prompt)
BEFORE_HOLE, IN_HOLE, AFTER_HOLE = 1, 2, 3
MAX_WINDOW_BARS = 255  # the bar feature saturates here
DRUM_PROGRAM = 128  # the program column holds GM program + 1, and DRUM_PROGRAM + 1 for drums
# Meters with a feature value of their own (others share the "other" value).
METERS = tuple([(n, 4) for n in range(1, 13)] + [(n, 8) for n in range(1, 17)] + [(n, 2) for n in (1, 2, 3, 4, 6, 8)]
               + [(n, 16) for n in (3, 5, 6, 7, 9, 12, 15, 16)] + [(n, 1) for n in (1, 2, 3, 4)])


class VocabError(HarmonixrError):
    """A tokenizer file or a value that the vocabulary cannot represent."""


def normalize_style(style: str) -> str:
    """Canonical form of a style label, as used in tokens and in the manifest."""
    return style.strip().lower().replace("_", "-").replace(" ", "-") or "unknown"


def instrument_name(program: int) -> str:
    """General MIDI name of a program (-1: drums)."""
    from miditok.constants import MIDI_INSTRUMENTS

    return "Drums" if program < 0 else MIDI_INSTRUMENTS[program]["name"]


@dataclass(frozen=True)
class Field:
    """A column's size (values 0 .. size-1, 0 = not applicable)."""

    name: str
    size: int


class NoteVocab:
    """Column sizes, value tokens, duration and micro-timing bins, all computed from a :class:`TokenizerSpec`."""

    def __init__(self, spec: TokenizerSpec) -> None:
        self.spec = spec
        styles = tuple(dict.fromkeys(normalize_style(s) for s in spec.styles))
        self.styles = styles if "unknown" in styles else ("unknown", *styles)
        self.grid = spec.grid_per_quarter
        self.max_positions = spec.max_bar_quarters * spec.grid_per_quarter
        self.drum_slot = spec.max_tracks
        self.durations = self._duration_table()  # (D,) grid steps of each duration bin
        self.values = self._value_tokens()
        self.value_id = {name: k for k, name in enumerate(self.values)}
        self.meter_id = {m: k + 2 for k, m in enumerate(METERS)}  # 1: any other meter
        sizes = {
            "type": len(TYPES), "value": len(self.values), "dbar": spec.max_dbar + 2,
            "pos": self.max_positions + 1, "track": spec.max_tracks + 2, "pitch": 129,
            "dur": len(self.durations) + 1, "vel": 128, "micro": spec.micro_bins + 1,
            "bar": MAX_WINDOW_BARS + 1, "meter": len(METERS) + 2, "tempo": spec.tempo_bins + 1,
            "segment": 5, "program": DRUM_PROGRAM + 2, "hole": 4,
            **{name: 129 for name in (*LAG_COLUMNS, MATCHED_COLUMN)},  # a pitch, as the pitch column stores it
        }
        sizes.update({column: sizes[name] for column, name in zip(LAST_NOTE_COLUMNS, LAST_NOTE_FIELDS)})
        sizes.update({column: sizes[name] for column, name in zip(ECHO_NOTE_COLUMNS, ECHO_NOTE_FIELDS)})
        sizes.update({column: 1 + (1 << PC_GROUP) for column in SOUNDING_COLUMNS})
        self.columns = tuple(Field(name, sizes[name]) for name in COLUMNS)
        self.sizes = sizes
        self.offsets = np.cumsum([0, *(sizes[name] for name in COLUMNS)])[:-1]  # row of each column in one table
        self._tempo_edges = np.geomspace(*spec.tempo_range, spec.tempo_bins + 1)[1:-1]
        self._check_invariants()

    # -- tables ----------------------------------------------------------------------------
    def _duration_table(self) -> np.ndarray:
        steps, low = [], 0
        for stride, up_to in self.spec.duration_steps:
            steps += list(range(low + stride, up_to + 1, stride))
            low = up_to
        return np.asarray(steps, dtype=np.int64)

    def _value_tokens(self) -> tuple[str, ...]:
        spec = self.spec
        names = ["none"] + [f"Style_{s}" for s in self.styles]
        names += [f"Tempo_{i}" for i in range(len(spec.tempo_edges) + 1)]
        names += [f"Density_{i}" for i in range(len(spec.density_edges) + 1)]
        names += [f"Low_{o}" for o in range(11)] + [f"High_{o}" for o in range(11)]
        names += [f"Loud_{i}" for i in range(len(spec.loudness_edges) + 1)]
        names += [f"Program_{p}" for p in range(128)] + ["Program_Drums"]
        names += [f"TrackDensity_{i}" for i in range(len(spec.track_density_edges) + 1)]
        names += [f"TrackLoud_{i}" for i in range(len(spec.track_loudness_edges) + 1)]
        names += [f"TrackPoly_{i}" for i in range(1, spec.max_polyphony + 1)]
        names += ["TrackLow", "TrackHigh"]  # the pitch column holds the pitch
        return tuple(names)

    def _check_invariants(self) -> None:
        spec = self.spec
        assert TYPES[PAD] == "PAD" and PAD == 0, "padding rows must be all zeros"
        assert len(set(self.values)) == len(self.values), "value tokens must be distinct"
        assert spec.micro_bins % 2 == 1, "micro_bins must be odd, so that 'on the grid' is a bin"
        assert np.all(np.diff(self.durations) > 0) and self.durations[0] == 1, "duration bins must rise from 1 step"
        assert self.max_positions < (1 << 15) and len(self.values) < (1 << 15), "columns are stored as int16"
        assert spec.pitch_range[1] - spec.pitch_range[0] >= 11, "the pitch range must span an octave"
        assert all(size >= 2 for size in self.sizes.values())

    def __len__(self) -> int:
        return int(sum(self.sizes.values()))

    def field_size(self, name: str) -> int:
        return self.sizes[name]

    # -- value conversions -----------------------------------------------------------------
    def value(self, name: str) -> int:
        """The id of a value token (``Style_pop``, ``Program_33``, ``TrackDensity_4`` ...)."""
        try:
            return self.value_id[name]
        except KeyError:
            raise VocabError(f"{name!r} is not a value token of this vocabulary") from None

    def style_value(self, style: str) -> int:
        style = normalize_style(style)
        if style not in self.styles:
            raise VocabError(f"style {style!r} is not one the model knows: {', '.join(self.styles)}")
        return self.value_id[f"Style_{style}"]

    def program_value(self, program: int) -> int:
        """Value id of an ``Instrument`` position's program (-1: drums)."""
        return self.value_id["Program_Drums" if program < 0 else f"Program_{program}"]

    def duration_bin(self, steps: np.ndarray) -> np.ndarray:
        """Nearest duration bin (0-based) of durations in grid steps (at least the shortest bin)."""
        steps = np.asarray(steps, dtype=np.float64)
        right = np.clip(np.searchsorted(self.durations, steps), 1, len(self.durations) - 1)
        left = right - 1
        nearer_left = np.abs(steps - self.durations[left]) <= np.abs(self.durations[right] - steps)
        return np.where(steps <= self.durations[0], 0, np.where(nearer_left, left, right))

    def tempo_bin(self, qpm: np.ndarray | float) -> np.ndarray:
        """0-based tempo bin of tempos in quarter notes per minute."""
        return np.searchsorted(self._tempo_edges, np.asarray(qpm, dtype=np.float64), side="right")

    def tempo_of_bin(self, index: int) -> float:
        """The geometric middle of tempo bin ``index`` (0-based), in quarter notes per minute."""
        low, high = self.spec.tempo_range
        edges = np.geomspace(low, high, self.spec.tempo_bins + 1)
        return float(math.sqrt(edges[index] * edges[index + 1]))

    def meter_value(self, numerator: int, denominator: int) -> int:
        return self.meter_id.get((int(numerator), int(denominator)), 1)

    def meter_positions(self, meter: np.ndarray) -> np.ndarray:
        """Grid positions of bars with the stored meter features ``meter`` (another meter: 4/4's)."""
        table = np.full(len(METERS) + 2, 4 * self.grid, dtype=np.int64)
        for (n, d), k in self.meter_id.items():
            table[k] = min(int(np.ceil(n * 4 / d * self.grid)), self.max_positions)
        return table[np.asarray(meter, dtype=np.int64)]

    @property
    def micro_zero(self) -> int:
        """The stored micro-timing value of an onset on the grid."""
        return self.spec.micro_bins // 2 + 1

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``tokenizer.json``: the spec and the value tokens it builds (checked on load)."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / TOKENIZER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"format": FORMAT, "spec": to_dict(self.spec), "values": list(self.values),
                                   "columns": {f.name: f.size for f in self.columns}}, indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def from_file(cls, path: str | Path) -> NoteVocab:
        """Load a vocabulary saved by :meth:`save` (a directory or the json file itself)."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise KeyError(f"format {data.get('format')!r}, expected {FORMAT!r}")
            vocab = cls(from_dict(TokenizerSpec, data["spec"], where=str(path)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VocabError(f"{path}: not a Harmonixr tokenizer file ({exc})") from exc
        if tuple(data.get("values", ())) != vocab.values:
            raise VocabError(f"{path}: the saved value tokens differ from the ones its spec builds")
        return vocab

    def same_as(self, other: NoteVocab) -> bool:
        return self.spec == other.spec and self.values == other.values
