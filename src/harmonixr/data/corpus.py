"""Prepared folders as pieces: notes, bars, track slots and labels, for training and evaluation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmonixr.data.shards import NoteShards
from harmonixr.errors import HarmonixrError
from harmonixr.tokens.notes import Tracks
from harmonixr.tokens.prompt import Bars
from harmonixr.tokens.vocab import NoteVocab, VocabError


@dataclass(frozen=True)
class CorpusPiece:
    """One prepared piece: its note rows, per-bar features, slots and labels."""

    notes: np.ndarray  # (N, 7) 0-based note columns
    bars: Bars
    tracks: Tracks
    style: str
    source: str
    path: str
    split: str

    @property
    def bar_count(self) -> int:
        return len(self.bars.meter)


class Corpus:
    """One or more prepared folders sharing one vocabulary."""

    def __init__(self, folders: Sequence[str | Path]) -> None:
        if not folders:
            raise HarmonixrError("data.folders is empty: name at least one prepared folder")
        self.shards = [NoteShards(f) for f in folders]
        self.vocab = NoteVocab.from_file(Path(folders[0]))
        for folder in folders[1:]:
            if not NoteVocab.from_file(Path(folder)).same_as(self.vocab):
                raise VocabError(f"{folder}: its vocabulary differs from {folders[0]}'s; prepare both with one config")

    def rows(self, split: str) -> list[tuple[NoteShards, dict]]:
        """``(shards, row)`` of every row of ``split`` with at least one note."""
        return [(s, r) for s in self.shards for r in s.rows(split) if r["notes"] > 0]

    def piece(self, shards: NoteShards, row: dict) -> CorpusPiece:
        """The piece of a manifest row."""
        bars = shards.bars(row)
        programs = json.loads(row["programs"])
        tracks = Tracks(programs, [""] * len(programs), bool(row["drums"]))
        return CorpusPiece(shards.notes(row), Bars(bars[:, 0].copy(), bars[:, 1].copy()), tracks, row["style"],
                           row["source"], row["path"], row["split"])

    def pieces(self, split: str, limit: int | None = None) -> list[CorpusPiece]:
        rows = self.rows(split)[: limit or None]
        return [self.piece(s, r) for s, r in rows]
