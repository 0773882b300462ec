"""The rows of an artifact, defined once: optimized neurons and groups, vocabulary tokens, neuron stats.

Each row type is a dataclass whose fields carry their storage type; the `datasets.Features` of
every config (schema.py), the builder's writer and `ft-artifacts textualize --json` all derive
from these classes. Vector fields are float32 lists of the model's hidden size: `vector` is the
analysis space (embedding output after LayerNorm, at the optimized position), `pre_ln_vector` is
`x @ E` alone (the input times the word-embedding matrix, without the position and token-type embeddings
that are added before the embedding LayerNorm: not the LayerNorm's input; a vocabulary token's is its word
embedding). A row whose optimization did not stay finite is `diverged`: its activation and vectors
are stored as computed, it has no nearest tokens and no target rank, and no summary counts it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _col(dtype: str, **kwargs):
    """A field with its storage type: a `datasets.Value` dtype, `floats` (float32 list),
    `strings` (string list) or `nearest` (list of {token, cosine})."""
    return field(metadata={"dtype": dtype}, **kwargs)


@dataclass
class Nearest:
    token: str = _col("string")
    cosine: float = _col("float32")


@dataclass
class _NeuronName:
    neuron: str = _col("string")  # `L12.N225`
    layer: int = _col("int32")  # 1..L
    index: int = _col("int32")  # 0..H-1

    @property
    def label(self) -> str:
        return self.neuron


@dataclass
class _Optimized:
    """Columns of every optimized row (single neurons and neuron groups)."""

    vector: list[float] = _col("floats")
    pre_ln_vector: list[float] = _col("floats")
    norm: float = _col("float32")
    activation: float = _col("float32")  # the objective at the final input, evaluated in float32
    diverged: bool = _col("bool")  # activation or vectors not finite
    most_activating_token: str = _col("string")  # the vocabulary item that maximizes the objective
    most_activating_token_id: int = _col("int32")
    most_activating_activation: float = _col("float32")
    nearest: list[Nearest] = _col("nearest")  # nearest vocabulary tokens by cosine, best first
    activation_trace: list[float] = _col("floats")  # the objective every `trace_every` steps
    seed: int = _col("int64")  # this row's init seed, from (run seed, objective)
    steps: int = _col("int32")
    lr: float = _col("float32")
    init_std: float = _col("float32")
    method: str = _col("string")


@dataclass
class NeuronRow(_Optimized, _NeuronName):  # columns: the name's, then the optimized ones
    """One single neuron and its optimized input (config `neurons`)."""


@dataclass
class _Group:
    group: str = _col("string")  # `crowd/relative/250`
    word: str = _col("string")
    selection: str = _col("string")
    k: int = _col("int32")
    neurons: list[str] = _col("strings")  # the group's members, best first
    target_token_id: int = _col("int32")
    target_rank: int | None = _col("int32")  # 1 = the target word is the nearest token; None if diverged
    target_cosine: float | None = _col("float32")
    target_activation: float = _col("float32")  # the group's activation for the target word alone

    @property
    def label(self) -> str:
        return self.group


@dataclass
class GroupRow(_Optimized, _Group):  # columns: the group's, then the optimized ones
    """One (word, selection, k) neuron group and its optimized input (config `word_groups`)."""


@dataclass
class _DirectionSource:
    direction: str = _col("string")  # `L2.probe[0]`: layer, file stem, row
    layer: int = _col("int32")  # 1..L: the neuron space the direction lives in
    row: int = _col("int32")  # row of the file
    file: str = _col("string")  # the file's name (its folder is not part of the artifact)
    file_sha256: str = _col("string")  # sha256 of the file's bytes, as recorded in the build's settings
    weights_sha256: str = _col("string")  # sha256 of this row's weights as float64 little-endian: what was optimized

    @property
    def label(self) -> str:
        return self.direction


@dataclass
class DirectionsRow(_Optimized, _DirectionSource):  # columns: the direction's, then the optimized ones
    """One direction of a layer's neuron space and its optimized input (config `directions`, optional)."""


@dataclass
class VocabularyRow:
    """One vocabulary token and its vectors (config `vocabulary`; row i is index/vocab.faiss row i)."""

    token_id: int = _col("int32")
    token: str = _col("string")
    vector: list[float] = _col("floats")
    pre_ln_vector: list[float] = _col("floats")


@dataclass
class NeuronStatsRow(_NeuronName):
    """One neuron of the model: its largest activation over the vocabulary (config `neuron_stats`)."""

    a_max: float = _col("float32")
    most_activating_token: str = _col("string")
    most_activating_token_id: int = _col("int32")
    sampled: bool = _col("bool")
    # The scan's 10 most activating tokens, best first, and their activations (null in older artifacts).
    top_tokens: list[str] | None = _col("strings", default=None)
    top_activations: list[float] | None = _col("floats", default=None)


OPTIONAL_COLUMNS = {"neuron_stats": ("top_tokens", "top_activations")}  # absent (read as null) in older artifacts
ROW_TYPES = {"neurons": NeuronRow, "word_groups": GroupRow, "vocabulary": VocabularyRow,
             "neuron_stats": NeuronStatsRow, "directions": DirectionsRow}


def column_types(row_type) -> dict[str, str]:
    """{column: storage dtype} in declaration order (inherited columns first)."""
    return {f.name: f.metadata["dtype"] for f in fields(row_type)}


def to_record(row) -> dict[str, Any]:
    """A row as a plain dict of its columns (the parquet record and the `--json` object)."""
    return asdict(row)
