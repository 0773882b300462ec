"""A parquet file's footer checked against what its manifest entry allows, before anything is decoded:
row counts, column names and types, and per column the values and uncompressed bytes that the rows,
the model's hidden size and the build settings imply. Decoding stays within a small multiple of an
honest artifact's memory; a file that claims more is refused in one line.

Imports pyarrow only (no datasets, no torch)."""

from __future__ import annotations


from .errors import ArtifactError

STRING_BYTES = 256  # the most bytes an honest string value takes on average (tokens, names, labels)
SLACK_BYTES = 1 << 20  # per column: encodings' overhead on tiny columns
_NUMERIC_BYTES = 8 + 2  # a value (at most 8 bytes) and its definition/repetition levels


def expected_schema(config: str):
    """The pyarrow schema of a config, from rows.py's row types (as the builders write it)."""
    import pyarrow as pa

    from .rows import ROW_TYPES, column_types

    def arrow(dtype: str):
        if dtype == "floats":
            return pa.list_(pa.float32())
        if dtype == "strings":
            return pa.list_(pa.string())
        if dtype == "nearest":
            return pa.list_(pa.struct([("token", pa.string()), ("cosine", pa.float32())]))
        return {"float32": pa.float32(), "float64": pa.float64(), "bool": pa.bool_()}.get(dtype) or pa.type_for_alias(dtype)

    return pa.schema([(name, arrow(dtype)) for name, dtype in column_types(ROW_TYPES[config]).items()])


def leaves_per_row(manifest) -> int:
    """The most values any list column of an honest row holds: a vector (hidden size), a group's
    neurons (the largest k), the nearest tokens, or the activation trace (steps + 1)."""
    settings = manifest.settings  # a settings.BuildConfig: typed, but its numbers not yet bounded

    def number(value, default: int) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 31 else default

    model = manifest.model
    return max([model.hidden_size, number(settings.nearest, 100), number(settings.optim.steps, 0) + 2,
                *(number(k, 0) for k in settings.ks)] + [1])


def _refuse(where: str, problem: str) -> ArtifactError:
    return ArtifactError(f"{where}: {problem}; re-download or rebuild the artifact")


def check_footer(metadata_list: list, names: list[str], config: str, rows: int, manifest) -> None:
    """Refuse, before decoding, parquet files (their `FileMetaData`, in order; `names` for messages)
    whose rows, schema or claimed sizes do not fit the manifest's entry for `config`."""
    from .rows import OPTIONAL_COLUMNS

    expected = expected_schema(config)
    leaves = leaves_per_row(manifest)
    total = 0
    for metadata, where in zip(metadata_list, names):
        try:
            schema = metadata.schema.to_arrow_schema()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a schema it cannot map
            raise _refuse(where, f"its parquet schema cannot be read ({exc})") from None
        got = [(f.name, f.type) for f in schema]
        present = {n for n, _ in got}
        optional = OPTIONAL_COLUMNS.get(config, ())  # columns added later: an older artifact may lack them
        want = [(f.name, f.type) for f in expected if f.name in present or f.name not in optional]
        if got != want:
            wrong = next(((n, t, dict(want).get(n)) for n, t in got if dict(want).get(n) != t), None)
            if wrong and wrong[2] is not None:
                problem = f"column {wrong[0]!r} is {_plain(wrong[1])}, expected {_plain(wrong[2])}"
            else:
                problem = (f"its columns are {', '.join(n for n, _ in got)[:200]}, expected "
                           f"{', '.join(n for n, _ in want)}")
            raise _refuse(where, f"not the {config} schema: {problem}")
        if metadata.num_rows < 0 or metadata.num_rows > rows - total:
            raise _refuse(where, f"its footer claims {metadata.num_rows} rows, more than the {rows} that "
                                 f"{config} lists")
        total += metadata.num_rows
        _check_sizes(metadata, where, leaves)
    if total != rows:
        raise _refuse(names[0] if len(names) == 1 else config, f"its footer holds {total} rows but the manifest "
                                                                f"lists {rows}")


def _check_sizes(metadata, where: str, leaves: int) -> None:
    """Per column: no more values than its rows allow, and no more uncompressed bytes than those values take."""
    import pyarrow as pa

    arrow = {f.name: f.type for f in metadata.schema.to_arrow_schema()}
    values: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            path = column.path_in_schema
            values[path] = values.get(path, 0) + max(0, column.num_values)
            sizes[path] = sizes.get(path, 0) + max(0, column.total_uncompressed_size)
    rows = metadata.num_rows
    for path, count in values.items():
        top = arrow.get(path.split(".")[0])
        nested = top is not None and pa.types.is_list(top)
        most_values = rows * (leaves if nested else 1)
        if count > most_values:
            raise _refuse(where, f"column {path!r} claims {count} values, more than {rows} rows can hold "
                                 f"({most_values})")
        textual = "token" in path.split(".") or _is_text(top)
        most_bytes = most_values * (STRING_BYTES if textual else _NUMERIC_BYTES) + SLACK_BYTES
        if sizes[path] > most_bytes:
            raise _refuse(where, f"column {path!r} would decode to {sizes[path]} bytes, more than its {rows} rows "
                                 f"allow ({most_bytes})")


def _plain(kind) -> str:
    """A type as a reader knows it: `list<float>`, not `list<element: float>`."""
    return str(kind).replace("element: ", "").replace("item: ", "")


def _is_text(kind) -> bool:
    import pyarrow as pa

    while kind is not None and pa.types.is_list(kind):
        kind = kind.value_type
    return kind is not None and (pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _valid(array):
    """[len(array)] bool: which slots of a pyarrow array hold a value (its validity bitmap, read with numpy)."""
    import numpy as np

    if not array.null_count:
        return np.ones(len(array), dtype=bool)
    bits = np.unpackbits(np.frombuffer(array.buffers()[0], dtype=np.uint8), bitorder="little")
    return bits[array.offset:array.offset + len(array)].astype(bool)


def _dictionary_parts(chunk, where: str, column: str):
    """(indices as int64, which are valid, the dictionary's byte offsets as int64) of a dictionary-encoded string
    chunk, from its buffers with numpy (pyarrow.compute, which pyarrow's own tools need, costs 40 ms to import per
    query). A valid index outside the dictionary is refused; an empty dictionary has no offsets (None)."""
    import numpy as np
    import pyarrow as pa

    indices, dictionary = chunk.indices, chunk.dictionary
    kind = np.dtype(indices.type.to_pandas_dtype()).newbyteorder("<")
    picked = np.frombuffer(indices.buffers()[1], dtype=kind, count=len(indices),
                           offset=indices.offset * kind.itemsize).astype(np.int64)
    valid = _valid(indices)  # a null index's slot holds any value
    used = picked[valid]
    if len(used) and (int(used.min()) < 0 or int(used.max()) >= len(dictionary)):
        raise _refuse(where, f"column {column!r} has dictionary indices outside its dictionary")
    picked[~valid] = 0
    if not len(dictionary):
        return picked, valid, None
    width = 8 if pa.types.is_large_string(dictionary.type) else 4
    offsets = np.frombuffer(dictionary.buffers()[1], dtype=f"<i{width}", count=len(dictionary) + 1,
                            offset=dictionary.offset * width).astype(np.int64)
    return picked, valid, offsets


def _decoded_size(chunk, where: str, column: str) -> int:
    """Bytes a dictionary-encoded string chunk decodes to: the sum over its valid indices of their entries'
    lengths (a null entry spans no bytes in any array pyarrow decodes)."""
    picked, valid, offsets = _dictionary_parts(chunk, where, column)  # refuses a valid index outside it
    if offsets is None or not len(picked):
        return 0
    return int((offsets[picked + 1] - offsets[picked])[valid].sum())


def dense_strings(values, where: str, column: str, rows: int):
    """A string column read dictionary-encoded, decoded only when its dense size fits its rows
    (`STRING_BYTES` each on average): a small dictionary of huge strings, repeated, is refused."""
    import pyarrow as pa

    if not pa.types.is_dictionary(values.type):
        return values
    size = 0
    for chunk in values.chunks:
        size += _decoded_size(chunk, where, column)
    if size > rows * STRING_BYTES + SLACK_BYTES:
        raise _refuse(where, f"column {column!r} would decode to {size} bytes, more than its {rows} rows allow")
    if not all(pa.types.is_string(chunk.dictionary.type) for chunk in values.chunks):
        return values.cast(pa.string())
    return pa.chunked_array([_decoded(chunk, where, column) for chunk in values.chunks], type=pa.string())


def _decoded(chunk, where: str, column: str):
    """A dictionary-encoded string chunk as a plain string array, gathered from its buffers with numpy (pyarrow's
    own decoding, `cast` or `dictionary_decode`, imports pyarrow.compute: 40 ms a query)."""
    import numpy as np
    import pyarrow as pa

    indices, dictionary = chunk.indices, chunk.dictionary
    n = len(indices)
    picked, valid, offsets = _dictionary_parts(chunk, where, column)
    if offsets is None:  # an empty dictionary: every index is null
        return pa.nulls(n, type=pa.string())
    valid &= _valid(dictionary)[picked]  # an index of a null entry decodes to null
    data = dictionary.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    starts, lengths = offsets[picked], np.where(valid, offsets[picked + 1] - offsets[picked], 0)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    gather = np.repeat(starts - out_offsets[:-1], lengths) + np.arange(int(out_offsets[-1]), dtype=np.int64)
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    return pa.StringArray.from_buffers(n, pa.py_buffer(out_offsets.astype("<i4").tobytes()),
                                       pa.py_buffer(data[gather].tobytes()), validity, int((~valid).sum()))
