"""Checkpoints as directories of safetensors and JSON (nothing is ever unpickled).

A checkpoint directory holds ``model.safetensors``, ``config.json`` (the model config and the
training config) and ``tokenizer.json``; a resumable one adds ``optimizer.safetensors``
and ``trainer_state.json`` (step, early-stopping state, the torch random state). Writes are atomic:
the new directory is written beside the old one and swapped in by two renames, and a reader that
finds no ``latest`` after a crash between them falls back to ``latest.old``. The next write first
puts ``latest.old`` back in place, so a second crash cannot leave no checkpoint at all.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from harmonixr.config import from_dict, to_dict
from harmonixr.errors import HarmonixrError
from harmonixr.models.config import ModelConfig
from harmonixr.models.transformer import NoteTransformer, column_rows
from harmonixr.tokens.vocab import BASE_COLUMNS, NoteVocab

M = TypeVar("M", bound=nn.Module)

MODEL_FILE, CONFIG_FILE = "model.safetensors", "config.json"
OPTIMIZER_FILE, STATE_FILE = "optimizer.safetensors", "trainer_state.json"
FORMAT = 2  # 2: the note-level model


# config.json's tables of the training data's parts
ROW_KEYS = ("program_parts", "drum_kits", "drum_grooves", "drum_repeats", "melodic_velocities")


def config_text(config: dict[str, Any]) -> str:
    """``config.json``'s text: indented, but each row of the tables of :data:`ROW_KEYS` on one line
    (a style's drum groove alone is hundreds of numbers)."""
    lines = []
    for key, value in config.items():
        if key in ROW_KEYS and isinstance(value, list):
            rows = ",\n".join(f"  {json.dumps(row)}" for row in value)
            lines.append(f" {json.dumps(key)}: [\n{rows}\n ]" if value else f" {json.dumps(key)}: []")
        else:
            lines.append(f" {json.dumps(key)}: " + json.dumps(value, indent=1).replace("\n", "\n "))
    return "{\n" + ",\n".join(lines) + "\n}\n"


class CheckpointError(HarmonixrError):
    """A checkpoint directory is missing, incomplete or not a Harmonixr checkpoint."""


@dataclass
class Loaded:
    model: NoteTransformer
    vocab: NoteVocab
    model_config: ModelConfig
    meta: dict[str, Any]  # everything else config.json holds (training config, step, ...)


def build_model(cfg: ModelConfig, vocab: NoteVocab) -> NoteTransformer:
    """A freshly initialised model of shape ``cfg`` for ``vocab``'s columns."""
    sizes = {name: size for name, size in vocab.sizes.items() if name in BASE_COLUMNS or name in cfg.columns}
    return NoteTransformer(replace(cfg, column_sizes=sizes))  # (echo columns only in a model that reads them)


def save_checkpoint(path: str | Path, model: nn.Module, vocab: NoteVocab, meta: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None, state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint directory atomically (replacing any checkpoint already at ``path``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / MODEL_FILE))
    config = {"format": FORMAT, "model": to_dict(model.cfg), **meta}
    (tmp / CONFIG_FILE).write_text(config_text(config))
    vocab.save(tmp)
    if optimizer is not None:
        tensors, groups = _flatten_optimizer(optimizer)
        tensors["torch_rng"] = torch.get_rng_state()
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        (tmp / STATE_FILE).write_text(json.dumps({**(state or {}), "param_groups": groups}, indent=1))
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.exists():  # an earlier swap was interrupted: old is the only good copy
        old.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def resolve(path: str | Path) -> Path:
    """The checkpoint directory to read: ``path``, or ``path.old`` left by an interrupted swap."""
    path = Path(path)
    for candidate in (path, path.with_name(path.name + ".old")):
        if (candidate / MODEL_FILE).is_file() and (candidate / CONFIG_FILE).is_file():
            return candidate
    raise CheckpointError(f"{path}: not a checkpoint directory (needs {MODEL_FILE} and {CONFIG_FILE})")


def read_config(path: str | Path) -> dict[str, Any]:
    path = resolve(path)
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path / CONFIG_FILE}: unreadable ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise CheckpointError(f"{path / CONFIG_FILE}: not a Harmonixr note-level checkpoint (format {found}, "
                              f"expected {FORMAT})")
    return config


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Loaded:
    """Model (in eval mode), vocabulary and configs of a checkpoint directory."""
    path = resolve(path)
    config = read_config(path)
    model_config = from_dict(ModelConfig, config.pop("model"), where=str(path / CONFIG_FILE))
    vocab = NoteVocab.from_file(path)
    if any(vocab.sizes.get(name) != size for name, size in model_config.column_sizes.items()):
        raise CheckpointError(f"{path}: its tokenizer's columns differ from the model's")  # (a model may predate a column)
    model = load_model_weights(path, NoteTransformer(model_config))
    return Loaded(model.to(device).eval(), vocab, model_config, config)


def load_model_weights(path: str | Path, model: M) -> M:
    """Load a checkpoint's ``model.safetensors`` into ``model`` (same architecture), strictly."""
    path = resolve(path)
    try:
        load_model(model, str(path / MODEL_FILE), strict=True)
    except Exception as exc:  # safetensors raises several types for a bad or mismatched file
        raise CheckpointError(f"{path / MODEL_FILE}: cannot load weights ({exc})") from exc
    return model


def start_from(path: str | Path, model: M, vocab: NoteVocab) -> M:
    """Fine-tuning: load another run's weights into a fresh ``model``; its vocabulary must be
    ``vocab`` (the same values with the same ids), else the weights would mean other things.

    Where ``model`` reads columns the checkpoint's model did not (a new input), their embeddings
    start at zero, so the fine-tune starts from the checkpoint's function; every other weight must
    have the same shape."""
    path = resolve(path)
    if not NoteVocab.from_file(path).same_as(vocab):
        raise CheckpointError(f"{path}: its vocabulary differs from the corpus's, so its weights cannot start this run")
    source = from_dict(ModelConfig, read_config(path)["model"], where=str(path / CONFIG_FILE))
    target = cast(NoteTransformer, model).cfg
    if source.column_sizes == target.column_sizes:
        return load_model_weights(path, model)
    gone = set(source.column_sizes) - set(target.column_sizes)
    if gone:
        raise CheckpointError(f"{path}: its model reads columns this one does not ({sorted(gone)})")
    weights = load_file(str(path / MODEL_FILE))
    old_table = weights.pop(TABLE)
    table = torch.zeros(model.state_dict()[TABLE].shape, dtype=old_table.dtype)
    old_rows, new_rows = column_rows(source), column_rows(target)
    for name in source.column_sizes:
        table[new_rows[name]] = old_table[old_rows[name]]
    weights[TABLE] = table
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path / MODEL_FILE}: cannot start this model ({exc})") from exc
    return model


TABLE = "embed.table.weight"  # the row embedding's one table (its rows per column: :func:`column_rows`)


def load_training_state(path: str | Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore the optimizer and torch's random state; return ``trainer_state.json``."""
    path = resolve(path)
    if not (path / OPTIMIZER_FILE).is_file():
        raise CheckpointError(f"{path}: no {OPTIMIZER_FILE}, so training cannot resume from it")
    tensors = load_file(str(path / OPTIMIZER_FILE))
    state = json.loads((path / STATE_FILE).read_text())
    torch.set_rng_state(tensors.pop("torch_rng"))
    _restore_optimizer(optimizer, tensors, state.pop("param_groups"))
    return state


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    sd = optimizer.state_dict()
    tensors = {f"state.{pid}.{key}": value.detach().cpu().contiguous()
               for pid, entry in sd["state"].items() for key, value in entry.items() if torch.is_tensor(value)}
    return tensors, sd["param_groups"]


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})
