"""The preference store: A/B comparisons of generated music in a SQLite file.

Each comparison keeps the prompt (what was asked: mode, region, style, settings, as JSON), both
samples as MIDI bytes, the choice (``a``, ``b`` or ``tie``), who chose and when. The web studio
writes here, ``harmonixr prefs`` adds, lists and exports, and the DPO and Bradley-Terry trainers
read from here.

The file is opened in WAL mode with a busy timeout, one short transaction per write, so several
processes (a web server's workers, a CLI) can write at once and a writer killed mid-way leaves the
last committed state intact. MIDI bytes are checked (size, and that they parse) before they are
stored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from symusic import Score

from harmonixr.errors import HarmonixrError

CHOICES = ("a", "b", "tie")
MAX_MIDI_BYTES = 4 * 1024 * 1024
SCHEMA = """
CREATE TABLE IF NOT EXISTS comparisons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    who TEXT NOT NULL,
    prompt TEXT NOT NULL,
    midi_a BLOB NOT NULL,
    midi_b BLOB NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie')),
    note TEXT NOT NULL DEFAULT ''
)
"""


class PreferenceError(HarmonixrError):
    """A comparison that cannot be stored (the message says why)."""


@dataclass(frozen=True)
class Comparison:
    id: int
    created: str
    who: str
    prompt: dict
    choice: str
    note: str
    midi_a: bytes = b""
    midi_b: bytes = b""


class PreferenceStore:
    """A/B comparisons in the SQLite file at ``path`` (created on first use)."""

    def __init__(self, path: str | Path, timeout_s: float = 30.0) -> None:
        self.path, self.timeout_s = Path(path), timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self.timeout_s)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()

    def add(self, prompt: dict, midi_a: bytes, midi_b: bytes, choice: str, who: str, note: str = "") -> int:
        """Store one comparison; returns its id. Refuses bad choices and MIDI that does not parse."""
        if choice not in CHOICES:
            raise PreferenceError(f"choice must be one of {CHOICES}, got {choice!r}")
        if not who.strip():
            raise PreferenceError("say who made the choice")
        for name, data in (("A", midi_a), ("B", midi_b)):
            if len(data) > MAX_MIDI_BYTES:
                raise PreferenceError(f"sample {name}: {len(data)} bytes > {MAX_MIDI_BYTES}")
            try:
                Score.from_midi(data)
            except Exception as exc:  # noqa: BLE001 - any parse failure refuses the sample
                raise PreferenceError(f"sample {name} is not a MIDI file symusic can read: {exc}") from exc
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO comparisons (created, who, prompt, midi_a, midi_b, choice, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (created, who, json.dumps(prompt, sort_keys=True), midi_a, midi_b, choice, note),
            )
            assert cursor.lastrowid is not None  # an INSERT sets it
            return cursor.lastrowid

    def list(self, limit: int = 0, with_midi: bool = False) -> list[Comparison]:
        """Comparisons, newest first (``limit`` 0: all)."""
        columns = "id, created, who, prompt, choice, note" + (", midi_a, midi_b" if with_midi else "")
        query = f"SELECT {columns} FROM comparisons ORDER BY id DESC" + (" LIMIT ?" if limit else "")
        with self._connect() as db:
            rows = db.execute(query, (limit,) if limit else ()).fetchall()
        return [Comparison(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], *(r[6:] if with_midi else ())) for r in rows]

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM comparisons").fetchone()[0])

    def export(self, out: str | Path) -> Path:
        """``out/NNNNNN-a.mid``, ``-b.mid`` per comparison and ``out/preferences.jsonl`` (one line each)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        lines = []
        for c in reversed(self.list(with_midi=True)):
            (out / f"{c.id:06d}-a.mid").write_bytes(c.midi_a)
            (out / f"{c.id:06d}-b.mid").write_bytes(c.midi_b)
            lines.append(json.dumps({"id": c.id, "created": c.created, "who": c.who, "prompt": c.prompt,
                                     "choice": c.choice, "note": c.note, "a": f"{c.id:06d}-a.mid", "b": f"{c.id:06d}-b.mid"}))
        path = out / "preferences.jsonl"
        path.write_text("\n".join(lines) + ("\n" if lines else ""))
        return path

    def check(self) -> str:
        """SQLite's own integrity check (``ok`` when the file is sound)."""
        with self._connect() as db:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])
