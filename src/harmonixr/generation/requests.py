"""What a generation request asks beyond its region (:class:`MusicRules`) and what it returns
(:class:`Result`), shared by every mode (:mod:`~harmonixr.generation.modes`,
:mod:`~harmonixr.generation.infill`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from symusic import Score

from harmonixr.generation.piece import GenerationError
from harmonixr.generation.postprocess import Key
from harmonixr.sampling.rules import UNLIMITED

ANY_PITCH = (0, 127)  # the pitch range of rules that ask for none
FILL_SHARE = 0.6  # at most this share of the context may be left for a region's notes
RESAMPLE_SEED = 1_000_003  # a take drawn again uses seed + this x the attempt
RESAMPLE_TRIES = 2  # a fill that leaves out a track that must play, or repeats another, is drawn again this many times


class RegionTooLong(GenerationError):
    """The region's own notes do not fit the model's context."""


@dataclass(frozen=True)
class MusicRules:
    """Optional musical constraints, enforced while sampling (see :class:`Rules`)."""

    pitch_range: tuple[int, int] = ANY_PITCH
    scale: frozenset[int] | None = None  # pitch classes (see postprocess.scale_pitch_classes)
    tonic: tuple[int, ...] = ()  # pitch classes melodic notes lean to (a key's tonic chord, root first)
    max_polyphony: int = UNLIMITED
    max_notes_per_bar: int = UNLIMITED
    key: Key | None = None  # the key asked: a new piece heard in another is drawn again (Generator.generate)

    @classmethod
    def in_key(cls, key: Key, **rest: Any) -> MusicRules:
        """New notes in ``key``'s scale, leaning to its tonic chord, its root most (rules.ROOT_LEAN,
        CHORD_LEAN): A minor and C major share a scale, and only the lean makes the one asked for
        the one heard (most often; a new piece heard in the other is drawn again)."""
        return cls(scale=key.pitch_classes, tonic=key.tonic_chord, key=key, **rest)


@dataclass
class Result:
    """One variation: the whole piece with the region rewritten, and what was made."""

    score: Score
    start_tick: int
    end_tick: int | None
    tracks: tuple[int, ...]  # original track indices written
    notes: int  # notes generated
    positions: int  # model steps taken (one per note, and the end)
    finished: bool  # the model closed the region itself (False: cut at the note budget or the context)
    seconds: float  # compute time of the call (shared by its variations)
    mode: str = ""
    details: dict = field(default_factory=dict)  # mode-specific figures (refine: bits per note per round)

    @property
    def incomplete(self) -> bool:
        """Written, but not what was asked: empty, cut at the note budget, or a track left out."""
        return self.notes == 0 or not self.finished or bool(self.details.get("missing_tracks"))

    def notices(self) -> list[str]:
        """What must be said with this result (the CLI prints it, the studio shows it)."""
        said = []
        if not self.finished:
            said.append("cut at the note budget")
        if self.details.get("resampled"):
            said.append(f"{self.details['resampled']} draw(s) repeated so that every track playing around the region plays")
        if self.details.get("alike"):
            said.append(f"{self.details['alike']} sampled variation(s) the same as another, drawn again "
                        f"{RESAMPLE_TRIES} times: the region leaves the model little choice")
        if self.details.get("with_tracks"):
            said.append("track(s) " + ", ".join(str(t + 1) for t in self.details["with_tracks"]) + " rewritten too: "
                        "the model hears them as one part with the track(s) asked (drum tracks are one kit to it; "
                        "same-instrument tracks of a file with more than 16 parts are merged)")
        if self.details.get("backbeat_redrawn"):
            said.append(f"the drums drawn again {self.details['backbeat_redrawn']} time(s) for a kick and a snare "
                        "in most spans of four beats")
        if self.details.get("key_redrawn"):
            said.append(f"drawn {self.details['key_redrawn']} more time(s) to be heard in {self.details['key']}")
        if self.details.get("heard_in"):
            said.append(f"heard in {self.details['heard_in']}, not the {self.details['key']} asked")
        if self.details.get("far_silent"):
            said.append("track(s) " + ", ".join(str(t + 1) for t in self.details["far_silent"]) + " left silent: they play "
                        "on one side of the region only, further off than the bar next to it (a density asked of "
                        "them, --control TRACK:density=N, writes them)")
        if self.details.get("missing_tracks"):
            said.append("no notes on track(s) " + ", ".join(str(t + 1) for t in self.details["missing_tracks"])
                        + " although they play around the region")
        if self.notes == 0:
            said.append("no notes were written")
        return said


def rule_fields(rules: MusicRules) -> dict:
    """The :class:`~harmonixr.sampling.rules.Rules` fields of ``rules``."""
    return {"pitch_range": rules.pitch_range, "scale": rules.scale, "tonic": rules.tonic, "max_polyphony": rules.max_polyphony,
            "max_notes_per_bar": rules.max_notes_per_bar}


def timed(results: list[Result], began: float) -> list[Result]:
    """``results`` with the seconds since ``began`` (the call's compute, shared by its variations)."""
    seconds = time.perf_counter() - began
    for result in results:
        result.seconds = seconds
    return results
