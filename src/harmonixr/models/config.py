"""The model's shape, as a typed config (saved as ``config.json`` in every checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass, field

from harmonixr.config import ConfigError
from harmonixr.tokens.vocab import (
    BASE_COLUMNS,
    COLUMNS,
    ECHO_NOTE_COLUMNS,
    FIELDS,
    LAG_COLUMNS,
    LAST_NOTE_COLUMNS,
    MATCHED_COLUMN,
    SOUNDING_COLUMNS,
)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters. ``column_sizes`` is filled in from the vocabulary."""

    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 8
    ffn_hidden: int = 704  # the backbone's SwiGLU hidden size
    head_hidden: int = 256  # the field heads' shared SwiGLU hidden size
    max_len: int = 1024  # longest sequence (rotary tables are built for it)
    dropout: float = 0.0
    rope_theta: float = 10000.0
    columns: tuple[str, ...] = BASE_COLUMNS  # row columns embedded into the input (an ablation may drop features)
    # read the notes' echoes at fixed lags (harmonixr.tokens.echo): their columns join ``columns``,
    # and the field heads are told the next note's echoes once its track is chosen
    echoes: bool = False
    matched_echo: bool = False  # and the matched echo (the lag where the bar before matches best), alike
    last_note: bool = False  # and the pitch, duration and velocity of the last note its track played, alike
    echo_notes: bool = False  # and the duration and velocity of the note the nearest earlier lag holds, alike
    sounding: bool = False  # and the pitch classes the melodic notes read before it sound at its onset, alike
    # the heads of the fields after the track attend over the notes so far, with a query that knows
    # the next note's bar, position and track (HeadAttention)
    head_attention: bool = False
    column_sizes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        added = (*(LAG_COLUMNS if self.echoes else ()), *((MATCHED_COLUMN,) if self.matched_echo else ()),
                 *(LAST_NOTE_COLUMNS if self.last_note else ()), *(ECHO_NOTE_COLUMNS if self.echo_notes else ()),
                 *(SOUNDING_COLUMNS if self.sounding else ()))
        object.__setattr__(self, "columns", tuple(dict.fromkeys((*self.columns, *added))))
        unknown = set(self.columns) - set(COLUMNS)
        if unknown:
            raise ConfigError(f"model.columns: unknown {sorted(unknown)}; known: {list(COLUMNS)}")
        missing = set(FIELDS) - set(self.columns)
        if missing:
            raise ConfigError(f"model.columns: the predicted fields {sorted(missing)} must be embedded")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ConfigError(f"d_model {self.d_model} must split into {self.n_heads} heads of an even size")

    def parameters(self) -> int:
        """Parameters of the model of this shape (embeddings included)."""
        d, embed = self.d_model, sum(self.column_sizes.values()) * self.d_model
        layers = self.n_layers * (4 * d * d + 3 * d * self.ffn_hidden + 2 * d)
        heads = len(FIELDS) * d + 3 * d * self.head_hidden + 2 * d + d * sum(self.column_sizes.get(f, 0) for f in FIELDS)
        attention = (4 * d * d + d) if self.head_attention else 0
        return embed + layers + d + heads + attention
