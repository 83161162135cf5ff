"""What a caller asks of a fill, checked and met the same way by copies and sampled fills.

Per-track controls arrive per original track index and go to the model's slots
(:func:`slot_controls`: never ignored); an asked density becomes a window of onsets
(:func:`onset_windows`); a copy of the song's own bars is offered only where it already does what
was asked (:func:`meets`); and a fill's velocities are brought to an asked loudness and range
(:func:`meet_loudness`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from harmonixr.generation.piece import GenerationError, Piece
from harmonixr.generation.postprocess import velocities_to_mean
from harmonixr.sampling.rules import UNLIMITED
from harmonixr.tokens.notes import BAR, PITCH, POS, TRACK, VEL
from harmonixr.tokens.prompt import TrackControls

if TYPE_CHECKING:  # imported for types only: requests imports surroundings, which imports this module
    from harmonixr.generation.requests import MusicRules

DENSITY_TOLERANCE = 0.15  # an asked density is met within this share of its onsets, either way


def slot_controls(piece: Piece, slots: list[int], controls: Mapping[int, TrackControls] | None) -> dict[int, TrackControls]:
    """The caller's controls (per original track index) per slot. A control is never ignored: one
    for a track the piece lacks or the region does not rewrite is refused, and so are different
    controls for tracks the model hears as one part (:meth:`Piece.tracks_of`)."""
    out: dict[int, TrackControls] = {}
    for track, c in sorted((controls or {}).items()):
        if not 0 <= track < len(piece.original.tracks):
            raise GenerationError(f"control for track {track + 1}: the piece has {len(piece.original.tracks)} tracks")
        slot = piece.slot_of(track)
        if slot is None or slot not in slots:
            raise GenerationError(f"control for track {track + 1}: the region does not rewrite it"
                                  + (" (it has no notes: name it among the region's tracks)" if slot is None else ""))
        if (problem := c.problem()) is not None:
            raise GenerationError(f"track {track + 1}: {problem}")
        if out.get(slot, c) != c:
            raise GenerationError(f"tracks {', '.join(str(t + 1) for t in piece.tracks_of(slot))} are one part to the "
                                  "model (drum tracks are one kit to it): give them one control")
        out[slot] = c
    return out


def onset_windows(asked: Mapping[int, TrackControls], bars: float,
                  tolerance: float = DENSITY_TOLERANCE) -> tuple[tuple[int, int, int], ...]:
    """(slot, fewest, most onsets) of each track asked for a density over ``bars`` bars: the asked
    count within ``tolerance`` of it (at least one onset, a silent track having a mask of its own)."""
    out = []
    for slot, c in sorted(asked.items()):
        if c.density:
            target = c.density * bars
            fewest = max(1, int(np.floor(target * (1 - tolerance))))
            out.append((slot, fewest, max(fewest, int(np.ceil(target * (1 + tolerance))))))
    return tuple(out)


def meets(notes: np.ndarray, onsets: tuple[tuple[int, int, int], ...], ranges: tuple[tuple[int, int, int], ...],
          chords: tuple[tuple[int, int], ...], rules: MusicRules, drum_slot: int) -> bool:
    """Whether a copy does what the caller asked: of its tracks, (slot, fewest, most) onsets,
    (slot, lowest, highest) pitches and (slot, most notes at one onset); of its melodic notes, the
    rules' pitch range and scale; of its bars, the rules' most notes. Under a polyphony cap no copy
    is offered (sampled fills meet it)."""
    if rules.max_polyphony < UNLIMITED:
        return False
    melodic = notes[notes[:, TRACK] != drum_slot, PITCH]
    inside = [(melodic, *rules.pitch_range)] + [(notes[notes[:, TRACK] == s, PITCH], lo, hi) for s, lo, hi in ranges]
    if any(len(p) and not (lo <= p.min() and p.max() <= hi) for p, lo, hi in inside):
        return False
    if rules.scale is not None and not np.isin(melodic % 12, sorted(rules.scale)).all():
        return False
    if len(notes) and np.unique(notes[:, BAR], return_counts=True)[1].max() > rules.max_notes_per_bar:
        return False
    for slot, most in chords:
        mine = notes[notes[:, TRACK] == slot]
        if len(mine) and np.unique(mine[:, [BAR, POS]], axis=0, return_counts=True)[1].max() > most:
            return False
    return all(fewest <= len(np.unique(notes[notes[:, TRACK] == slot][:, [BAR, POS]], axis=0)) <= most
               for slot, fewest, most in onsets)


def meet_loudness(notes: np.ndarray, asked: Mapping[int, TrackControls]) -> np.ndarray:
    """A fill whose tracks were asked for a mean velocity, scaled to it (the model's dynamics kept),
    then kept inside the track's asked velocity range (a sampled fill is there already; a copy is
    brought there)."""
    out = notes.copy()
    for slot, c in asked.items():
        mine = out[:, TRACK] == slot
        velocities = out[mine, VEL] if c.loudness is None else velocities_to_mean(out[mine, VEL], float(c.loudness))
        out[mine, VEL] = np.clip(velocities, c.vel_low or 1, c.vel_high or 127)
    return out
