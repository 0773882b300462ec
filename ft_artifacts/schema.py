"""Config names in, `datasets.Features` out: the one schema the builders write and the loader reads,
derived from the row types of rows.py."""

from __future__ import annotations

from .manifest import CONFIGS, DEFAULT_CONFIG  # noqa: F401 - re-exported: the configs the schema covers
from .rows import OPTIONAL_COLUMNS, ROW_TYPES, column_types


def _feature(dtype: str):
    from datasets import Sequence, Value

    if dtype == "floats":
        return Sequence(Value("float32"))
    if dtype == "strings":
        return Sequence(Value("string"))
    if dtype == "nearest":
        return [{"token": Value("string"), "cosine": Value("float32")}]
    return Value(dtype)


def features(config: str):
    """The `datasets.Features` of one config."""
    from datasets import Features

    if config not in ROW_TYPES:
        raise KeyError(config)
    return Features({name: _feature(dtype) for name, dtype in column_types(ROW_TYPES[config]).items()})


def read_parquet(files, config: str | None = None):
    """Parquet files as one in-memory `datasets.Dataset` (nothing copied into the datasets cache).
    With `config`, the result has exactly that config's features."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.table import InMemoryTable

    table = pa.concat_tables([pq.read_table(str(f)) for f in files])
    for column in OPTIONAL_COLUMNS.get(config, ()):  # an older artifact: the column reads as null
        if column not in table.column_names:
            table = table.append_column(column, pa.nulls(table.num_rows, features(config).arrow_schema.field(column).type))
    dataset = datasets.Dataset(InMemoryTable(table))  # parquet metadata carries the schema
    if config is not None and dataset.features != features(config):
        dataset = dataset.cast(features(config))
    return dataset
