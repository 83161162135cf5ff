"""Training configuration: ``configs/default.yaml`` loads into :class:`TrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

from harmonixr.config import ConfigError
from harmonixr.models.config import ModelConfig


@dataclass(frozen=True)
class ObjectiveConfig:
    """Next-note prediction mixed with fill-in-the-middle on random holes, and augmentation."""

    infill_rate: float = 0.6  # share of examples rewritten as infill (see tokens/prompt.py)
    hole_bars: float = 0.4  # relative weights of the hole kinds: whole bars, all tracks
    hole_span: float = 0.2  # a beat-aligned span, all tracks
    hole_tracks: float = 0.4  # some tracks inside a span of bars, the others kept
    max_hole_bars: int = 8
    open_end_rate: float = 0.2  # a hole that reaches the window's end may run to the end of the piece
    drop_style: float = 0.2  # chance to drop the style (the model must also work without)
    drop_control: float = 0.3  # chance to drop each piece-level control
    drop_track_controls: float = 0.3  # chance that a hole has no per-track controls at all
    drop_track_control: float = 0.3  # else, chance to drop each per-track control
    augment: float = 0.9  # share of training examples augmented (never validation)
    transpose: tuple[int, int] = (-5, 6)  # semitones, inclusive, melodic tracks only
    velocity_scale: tuple[float, float] = (0.8, 1.25)
    tempo_shift: tuple[int, int] = (-2, 2)  # tempo feature bins

    def hole_weights(self) -> list[float]:
        weights = [self.hole_bars, self.hole_span, self.hole_tracks]
        total = sum(weights)
        if total <= 0:
            raise ConfigError("objective: the hole weights must not all be zero")
        return [w / total for w in weights]


@dataclass(frozen=True)
class DataConfig:
    folders: tuple[str, ...] = ("data/corpus-all",)  # prepared folders (``harmonixr prepare``)
    block_size: int = 1024  # positions (notes, header, markers) per example
    batch_size: int = 16
    val_batches: int = 16  # batches per validation (fixed windows, same every time)
    # Draw pieces of these sources more (or less) often than their share of the notes.
    source_weights: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    min_lr: float = 1e-4  # cosine decay floor
    warmup_steps: int = 200
    weight_decay: float = 0.1  # on matrices only, never on norms or embeddings
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    accumulate: int = 1  # micro-batches per optimizer step


@dataclass(frozen=True)
class RunConfig:
    out: str = "runs/default"
    max_steps: int = 10000
    max_minutes: float = 0.0  # stop after this much wall-clock time (0: no limit); the learning-rate
    # schedule then runs on whichever of steps and time is further along
    eval_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 10
    patience: int = 8  # validations without improvement before stopping early (0: never)
    seed: int = 0
    precision: str = "auto"  # auto (bf16 on a GPU that has it, else fp32) | fp32 | bf16
    threads: int = 0  # torch CPU threads (0: torch's default)
    device: str = "auto"  # auto | cpu | cuda
    tensorboard: bool = True
    init_from: str = ""  # fine-tune: a checkpoint whose weights start a fresh run (same model and tokenizer)
    compile: bool = False  # torch.compile the model (measure: on 2 CPU cores it may not pay)


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
