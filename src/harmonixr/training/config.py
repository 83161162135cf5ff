"""Training configuration: ``configs/default.yaml`` loads into :class:`TrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

from harmonixr.models.config import ModelConfig


INFILL_LAYOUTS = ("context", "spm")


@dataclass(frozen=True)
class ObjectiveConfig:
    """Next-token prediction mixed with fill-in-the-middle on random holes."""

    infill_rate: float = 0.5  # share of examples rewritten as infill
    hole_bars: float = 0.4  # relative weights of the hole kinds: whole bars, all tracks
    hole_span: float = 0.3  # a beat-aligned span, all tracks
    hole_tracks: float = 0.3  # some tracks inside a span of bars, the others kept
    max_hole_bars: int = 4
    open_end_rate: float = 0.3  # a hole that reaches the window's end may drop its end marker
    drop_style: float = 0.2  # chance to drop the style token (the model must also work without)
    drop_control: float = 0.25  # chance to drop each control token
    infill_layout: str = "context"  # "context": the fill after the whole context; "spm": the music
    # after the hole first, then the music before it, the fill straight after (see training/examples.py)

    def __post_init__(self) -> None:
        if self.infill_layout not in INFILL_LAYOUTS:
            raise ValueError(f"objective: infill_layout must be one of {INFILL_LAYOUTS}, not {self.infill_layout!r}")

    def hole_weights(self) -> list[float]:
        weights = [self.hole_bars, self.hole_span, self.hole_tracks]
        total = sum(weights)
        if total <= 0:
            raise ValueError("objective: the hole weights must not all be zero")
        return [w / total for w in weights]


@dataclass(frozen=True)
class DataConfig:
    folders: tuple[str, ...] = ("data/corpus-all",)  # prepared folders (``harmonixr prepare``)
    block_size: int = 512  # tokens per example, header included
    batch_size: int = 16
    val_batches: int = 16  # batches per validation (fixed windows, same every time)


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
    max_minutes: float = 0.0  # stop after this much wall-clock time (0: no limit)
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


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
