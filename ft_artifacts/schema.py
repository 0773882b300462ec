"""Config names in, `datasets.Features` out: the one schema the builders write and the loader reads.

Vector columns hold float32 lists of the model's hidden size. `vector` is always the analysis space
(embedding output after LayerNorm, at the optimized position); `pre_ln_vector` is `x @ E`.
"""

from __future__ import annotations

CONFIGS = ("neurons", "word_groups", "vocabulary", "neuron_stats")
DEFAULT_CONFIG = "neurons"


def _value(dtype: str):
    from datasets import Value

    return Value(dtype)


def _floats():
    from datasets import Sequence

    return Sequence(_value("float32"))


def _neuron_columns() -> dict:
    """A neuron's name (`L12.N225`) and its parts."""
    return {"neuron": _value("string"), "layer": _value("int32"), "index": _value("int32")}


def _optimized_columns() -> dict:
    """Columns shared by every optimized row (single neurons and neuron groups)."""
    return {
        "vector": _floats(),
        "pre_ln_vector": _floats(),
        "norm": _value("float32"),
        "activation": _value("float32"),
        "most_activating_token": _value("string"),
        "most_activating_token_id": _value("int32"),
        "most_activating_activation": _value("float32"),
        "nearest": [{"token": _value("string"), "cosine": _value("float32")}],
        "activation_trace": _floats(),
        "seed": _value("int64"),
        "steps": _value("int32"),
        "lr": _value("float32"),
        "init_std": _value("float32"),
        "method": _value("string"),
    }


def features(config: str):
    """The `datasets.Features` of one config."""
    from datasets import Features, Sequence

    if config == "neurons":
        columns = {**_neuron_columns(), **_optimized_columns()}
    elif config == "word_groups":
        columns = {
            "group": _value("string"),
            "word": _value("string"),
            "selection": _value("string"),
            "k": _value("int32"),
            "neurons": Sequence(_value("string")),
            "target_token_id": _value("int32"),
            "target_rank": _value("int32"),
            "target_cosine": _value("float32"),
            "target_activation": _value("float32"),
        }
        columns.update(_optimized_columns())
    elif config == "vocabulary":
        columns = {
            "token_id": _value("int32"),
            "token": _value("string"),
            "vector": _floats(),
            "pre_ln_vector": _floats(),
        }
    elif config == "neuron_stats":
        columns = {
            **_neuron_columns(),
            "a_max": _value("float32"),
            "most_activating_token": _value("string"),
            "most_activating_token_id": _value("int32"),
            "sampled": _value("bool"),
        }
    else:
        raise KeyError(config)
    return Features(columns)


def read_parquet(files, config: str | None = None):
    """Parquet files as one in-memory `datasets.Dataset` (nothing copied into the datasets cache).
    With `config`, the result has exactly that config's features."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.table import InMemoryTable

    table = pa.concat_tables([pq.read_table(str(f)) for f in files])
    dataset = datasets.Dataset(InMemoryTable(table))  # parquet metadata carries the schema
    if config is not None and dataset.features != features(config):
        dataset = dataset.cast(features(config))
    return dataset
