"""Harmonixr: symbolic music (MIDI) generation with Transformers, note by note.

The common entry points, importable from the package itself (loaded on first use)::

    from harmonixr import Generator, Region, SamplingConfig, MusicRules, TrackControls, write_result
    from harmonixr import parse_prompt, track_controls  # text prompts -> settings and per-track controls

The pipeline, by package: :mod:`harmonixr.data` (sources, validation, prepared corpora) ->
:mod:`harmonixr.tokens` (notes as rows, the prompt format) -> :mod:`harmonixr.models` ->
:mod:`harmonixr.training` -> :mod:`harmonixr.sampling` -> :mod:`harmonixr.generation` (the modes) ->
:mod:`harmonixr.evaluation` and :mod:`harmonixr.rl` -> :mod:`harmonixr.web` -> :mod:`harmonixr.cli`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "Generator": "harmonixr.generation.modes",
    "MusicRules": "harmonixr.generation.requests",
    "Result": "harmonixr.generation.requests",
    "Piece": "harmonixr.generation.piece",
    "Region": "harmonixr.generation.piece",
    "SamplingConfig": "harmonixr.sampling.sampler",
    "TrackControls": "harmonixr.tokens.prompt",
    "write_result": "harmonixr.generation.outputs",
    "parse_prompt": "harmonixr.generation.text",
    "track_controls": "harmonixr.generation.text",
    "HarmonixrError": "harmonixr.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harmonixr' has no attribute {name!r}")
