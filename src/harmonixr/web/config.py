"""The web studio's settings and limits (``configs/serve.yaml``), every one checked before work starts.

An upload is refused by size before it is read, then parsed in a child process with the limits of
:class:`~harmonixr.config.LimitsConfig` (tracks, notes, duration, time, memory); a request is
refused when it asks for more variations or bars than allowed, and sampling stops at
``max_generation_s`` (:meth:`Generator.time_limit`).
"""

from __future__ import annotations

from dataclasses import dataclass

from harmonixr.config import LimitsConfig

MIB = 1024 * 1024


@dataclass(frozen=True)
class StudioLimits:
    """What one upload or one request may ask for."""

    max_upload_bytes: int = 2 * MIB
    max_tracks: int = 16
    max_notes: int = 20_000
    max_minutes: float = 20.0  # duration of an uploaded piece
    parse_timeout_s: float = 20.0
    parse_memory_mb: int = 2048
    max_variations: int = 4
    max_new_bars: int = 32  # continue / generate
    max_region_bars: int = 16  # infill / add a track / refine
    max_generation_s: float = 60.0  # per request, all variations together
    max_audio_seconds: float = 120.0  # audio of a piece, or of a variation's region with bars around it
    max_workdir_mb: int = 512  # the studio's folder: past it the oldest files are deleted

    def parse_limits(self) -> LimitsConfig:
        """The isolated parser's limits for an upload."""
        return LimitsConfig(max_file_bytes=self.max_upload_bytes, max_tracks=self.max_tracks, max_notes=self.max_notes,
                            max_seconds=self.max_minutes * 60, min_notes=1, parse_timeout_s=self.parse_timeout_s,
                            worker_memory_mb=self.parse_memory_mb)


@dataclass(frozen=True)
class StudioConfig:
    """``harmonixr serve``: where it listens, which model, where choices and files go."""

    model: str = ""  # checkpoint directory ("": the shipped models/harmonixr-small)
    host: str = "127.0.0.1"  # 0.0.0.0 to listen on every interface
    port: int = 7860
    prefs: str = "runs/prefs.sqlite"  # the preference store (SQLite)
    workdir: str = ""  # uploads and results ("": a new temporary folder)
    who: str = "web"  # recorded with each choice unless the page says who
    limits: StudioLimits = StudioLimits()
