"""The Harmonixr vocabulary: miditok REMI (programs, velocities, tempos, time signatures) plus a header.

A tokenized piece reads::

    BOS Style_pop CtlTempo_3 CtlDensity_4 CtlLow_4 CtlHigh_7 CtlLoud_5 Instrument_0 Instrument_33
    Bar_None TimeSig_4/4 Position_0 Tempo_120.0 Program_0 Pitch_60 Velocity_79 Duration_1.0.12 ...
    EOS

The header names the style, five control values (tempo, note density, lowest and highest octave,
loudness) and one ``Instrument_<GM program>`` per track slot, in slot order (``Instrument_Drums``
last when there is a drum track). In the REMI body, ``Program_k`` names **track slot k**, not a
General MIDI program: two tracks with the same instrument (POP909's MELODY, BRIDGE and PIANO are
all program 0; a string quartet's two violins) stay separate tracks, which plain REMI+programs
would merge. ``Program_-1`` is the drum track. ``Infill_Hole``, ``Infill_Fill`` and ``Infill_End``
are reserved for the fill-in-the-middle task.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from miditok import REMI, TokenizerConfig
from miditok.constants import MIDI_INSTRUMENTS
from symusic import Score

from harmonixr.config import TokenizerSpec, from_dict, to_dict

SPECIAL_TOKENS = ("PAD", "BOS", "EOS", "MASK")
INFILL_TOKENS = ("Infill_Hole", "Infill_Fill", "Infill_End")
DRUMS = "Drums"
OCTAVES = range(11)  # MIDI pitch // 12 is 0..10
TOKEN_DTYPE = np.uint16  # shards store ids as uint16: the vocabulary must stay below 2**16
TOKENIZER_FILE = "tokenizer.json"
# Supported time signatures, {denominator: numerators}. The numerators go high enough that a piece
# mixing denominators can be rewritten over its largest one (see quantize.py).
TIME_SIGNATURES = {2: [1, 2, 3, 4, 6, 8], 4: list(range(1, 13)), 8: list(range(1, 17)),
                   16: [3, 5, 6, 7, 9, 12, 15, 16]}


class TokenizeError(ValueError):
    """A token sequence or score the vocabulary cannot represent."""


def style_token(style: str) -> str:
    """The token of a style name (lower case; ``_`` and spaces become ``-``)."""
    return f"Style_{normalize_style(style)}"


def normalize_style(style: str) -> str:
    """Canonical form of a style label, as used in tokens and in the manifest."""
    return style.strip().lower().replace("_", "-").replace(" ", "-") or "unknown"


@dataclass(frozen=True)
class Controls:
    """Piece-level control values, each a bin index (see ``TokenizerSpec`` for the edges)."""

    tempo: int
    density: int
    low_octave: int
    high_octave: int
    loudness: int

    def tokens(self) -> list[str]:
        return [
            f"CtlTempo_{self.tempo}", f"CtlDensity_{self.density}", f"CtlLow_{self.low_octave}",
            f"CtlHigh_{self.high_octave}", f"CtlLoud_{self.loudness}",
        ]


class HarmonixrTokenizer:
    """Score <-> token ids, for scores normalized by :func:`harmonixr.data.quantize.normalize`."""

    def __init__(self, spec: TokenizerSpec) -> None:
        self.spec = spec
        self.styles = tuple(dict.fromkeys(normalize_style(s) for s in spec.styles))
        if "unknown" not in self.styles:
            self.styles = ("unknown", *self.styles)
        self.miditok = REMI(self._miditok_config())
        self.vocab: dict[str, int] = dict(self.miditok.vocab)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.pad_id, self.bos_id, self.eos_id = (self.vocab[f"{t}_None"] for t in ("PAD", "BOS", "EOS"))
        self.bar_id = self.vocab["Bar_None"]
        self.header_ids = frozenset(self.vocab[t] for t in self._header_tokens())
        self._check_invariants()

    # -- vocabulary ------------------------------------------------------------------------
    def _header_tokens(self) -> list[str]:
        spec = self.spec
        tokens = [style_token(s) for s in self.styles]
        tokens += [f"CtlTempo_{i}" for i in range(len(spec.tempo_edges) + 1)]
        tokens += [f"CtlDensity_{i}" for i in range(len(spec.density_edges) + 1)]
        tokens += [f"CtlLow_{o}" for o in OCTAVES] + [f"CtlHigh_{o}" for o in OCTAVES]
        tokens += [f"CtlLoud_{i}" for i in range(len(spec.loudness_edges) + 1)]
        tokens += [f"Instrument_{p}" for p in range(128)] + [f"Instrument_{DRUMS}"]
        return tokens

    def _miditok_config(self) -> TokenizerConfig:
        spec = self.spec
        return TokenizerConfig(
            pitch_range=tuple(spec.pitch_range),
            drums_pitch_range=tuple(spec.drums_pitch_range),
            beat_res={(0, 4): spec.grid_per_beat, (4, spec.max_duration_beats): spec.long_grid_per_beat},
            num_velocities=spec.num_velocities,
            special_tokens=[*SPECIAL_TOKENS, *self._header_tokens(), *INFILL_TOKENS],
            use_velocities=True,
            use_programs=True,
            programs=[*range(spec.max_tracks), -1],  # track slots, see the module docstring
            one_token_stream_for_programs=True,
            use_tempos=True,
            num_tempos=spec.num_tempos,
            tempo_range=tuple(spec.tempo_range),
            delete_equal_successive_tempo_changes=True,
            use_time_signatures=True,
            time_signature_range=TIME_SIGNATURES,
            remove_duplicated_notes=True,
            harmonixr=to_dict(spec),
        )

    def _check_invariants(self) -> None:
        assert self.pad_id == 0, "PAD must be id 0 (padding masks rely on it)"
        assert len(self.vocab) < np.iinfo(TOKEN_DTYPE).max, f"vocabulary of {len(self.vocab)} overflows uint16"
        assert sorted(self.vocab.values()) == list(range(len(self.vocab))), "ids must be contiguous"
        assert all(t in self.vocab for t in INFILL_TOKENS)
        assert len(self.header_ids) == len(self._header_tokens()), "header tokens must be distinct"

    def __len__(self) -> int:
        return len(self.vocab)

    def token_type(self, token_id: int) -> str:
        """The family of a token: ``Pitch``, ``Velocity``, ``Duration``, ``Position``, ``Style`` ..."""
        return self.id_to_token[int(token_id)].split("_", 1)[0]

    # -- controls --------------------------------------------------------------------------
    def controls(self, score: Score, bars: int) -> Controls:
        """Bin the tempo, notes per bar, lowest/highest octave and mean velocity of ``score``."""
        spec = self.spec
        times = np.concatenate([t.notes.numpy()["time"] for t in score.tracks])
        pitches = np.concatenate([t.notes.numpy()["pitch"] for t in score.tracks]).astype(int)
        velocities = np.concatenate([t.notes.numpy()["velocity"] for t in score.tracks])
        return Controls(
            tempo=bisect_right(spec.tempo_edges, _main_tempo(score, int(times.max(initial=0)))),
            density=bisect_right(spec.density_edges, len(pitches) / max(bars, 1)),
            low_octave=int(pitches.min()) // 12,
            high_octave=int(pitches.max()) // 12,
            loudness=bisect_right(spec.loudness_edges, float(velocities.mean())),
        )

    # -- encode / decode -------------------------------------------------------------------
    def quantize(self, score: Score) -> Score:
        """miditok's preprocessing on slot programs: onsets/durations to the grid, velocity bins."""
        slotted, instruments = _to_slots(score, self.spec.max_tracks)
        names = [t.name for t in sorted(score.tracks, key=lambda t: t.is_drum)]
        return _from_slots(self.miditok.preprocess_score(slotted), instruments, names)

    def encode(self, score: Score, style: str = "unknown") -> np.ndarray:
        """Token ids (uint16) of a normalized score: header, REMI body, EOS."""
        style = normalize_style(style)
        if style not in self.styles:
            raise TokenizeError(f"style {style!r} is not in the vocabulary {list(self.styles)}")
        slotted, instruments = _to_slots(score, self.spec.max_tracks)
        body = self.miditok.encode(slotted, no_preprocess_score=True).ids
        bars = sum(1 for i in body if i == self.bar_id)
        header = ["BOS_None", style_token(style), *self.controls(score, bars).tokens()]
        header += [f"Instrument_{DRUMS if p < 0 else p}" for p in instruments]
        ids = [self.vocab[t] for t in header] + list(body) + [self.eos_id]
        return np.asarray(ids, dtype=TOKEN_DTYPE)

    def split_header(self, ids: Sequence[int] | np.ndarray) -> tuple[list[int], list[int]]:
        """Split a sequence into (header ids, body ids); BOS/EOS/PAD are dropped."""
        ids = [int(i) for i in ids if int(i) not in (self.pad_id, self.bos_id, self.eos_id)]
        cut = next((k for k, i in enumerate(ids) if i not in self.header_ids), len(ids))
        return ids[:cut], ids[cut:]

    def instruments(self, header: Sequence[int]) -> list[int]:
        """The GM program of each track slot named by the ``Instrument_*`` tokens of ``header`` (-1: drums)."""
        return [
            -1 if tok.endswith(DRUMS) else int(tok.split("_")[1])
            for tok in (self.id_to_token[int(i)] for i in header)
            if tok.startswith("Instrument_")
        ]

    def decode(self, ids: Sequence[int] | np.ndarray) -> Score:
        """The score of a token sequence; tracks get back their GM programs, in slot order."""
        header, body = self.split_header(ids)
        instruments = self.instruments(header)
        if not body:
            raise TokenizeError("the sequence has no body tokens (nothing after the header)")
        try:
            slotted = self.miditok.decode(body)
        except Exception as exc:
            raise TokenizeError(f"miditok could not decode the body: {exc}") from exc
        return _from_slots(slotted, instruments)

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``tokenizer.json`` (miditok's file, with the Harmonixr spec and vocab inside)."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / TOKENIZER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        self.miditok.save(tmp, additional_attributes={"vocab": self.vocab})
        tmp.replace(path)
        return path

    @classmethod
    def from_file(cls, path: str | Path) -> HarmonixrTokenizer:
        """Load a tokenizer saved by :meth:`save` (a directory or the json file itself)."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        try:
            data = json.loads(path.read_text())
            spec_data = data["config"]["additional_params"]["harmonixr"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TokenizeError(f"{path}: not a Harmonixr tokenizer file ({exc})") from exc
        tokenizer = cls(from_dict(TokenizerSpec, spec_data, where=str(path)))
        if data.get("vocab") != tokenizer.vocab:  # e.g. another miditok version builds other ids
            raise TokenizeError(f"{path}: the saved vocabulary differs from the one its config builds")
        return tokenizer


def instrument_name(program: int) -> str:
    """General MIDI name of a program (-1: drums)."""
    return "Drums" if program < 0 else MIDI_INSTRUMENTS[program]["name"]


def _to_slots(score: Score, max_tracks: int) -> tuple[Score, list[int]]:
    """Copy of ``score`` whose tracks carry their slot index as program, and the slot programs.

    Non-drum tracks take slots 0, 1, ... in score order; all drum tracks share the drum slot (-1),
    listed last.
    """
    slotted = score.copy()
    melodic = [t for t in slotted.tracks if not t.is_drum]
    if len(melodic) > max_tracks:
        raise TokenizeError(f"{len(melodic)} tracks > {max_tracks} track slots")
    instruments = [t.program for t in melodic]
    for slot, track in enumerate(melodic):
        track.program = slot
    if any(t.is_drum for t in slotted.tracks):
        instruments.append(-1)
    return slotted, instruments


def _from_slots(slotted: Score, instruments: list[int], names: list[str] | None = None) -> Score:
    """Inverse of :func:`_to_slots`: slot programs back to GM programs, in slot order.

    Tracks are named from ``names`` (slot order, the drum track last) when given, else by their
    General MIDI instrument.
    """
    melodic = [p for p in instruments if p >= 0]
    drum_name = names[len(melodic)] if names and len(names) > len(melodic) else instrument_name(-1)
    tracks = sorted(slotted.tracks, key=lambda t: (t.is_drum, t.program))
    score = slotted.copy()
    score.tracks.clear()
    for track in tracks:
        track = track.copy()
        if track.is_drum:
            track.program, track.name = 0, drum_name
        else:
            slot = track.program
            track.program = melodic[slot] if slot < len(melodic) else 0
            track.name = names[slot] if names and slot < len(melodic) else instrument_name(track.program)
        score.tracks.append(track)
    return score


def _main_tempo(score: Score, end_tick: int) -> float:
    """The tempo (bpm) in force for the longest time up to ``end_tick``; 120 when none is set."""
    tempos = sorted(score.tempos, key=lambda t: t.time)
    if not tempos:
        return 120.0
    spans: dict[float, int] = {}
    for here, nxt in zip(tempos, [*tempos[1:], None]):
        stop = max(end_tick, here.time) if nxt is None else nxt.time
        spans[here.qpm] = spans.get(here.qpm, 0) + max(stop - here.time, 0)
    return max(spans, key=lambda q: spans[q])
