"""An artifact folder or Hub repo id in, its subsets as `datasets.Dataset`s and exact cosine lookups out.

    import ft_artifacts
    art = ft_artifacts.load("ORG/NAME")                             # or a local folder
    art.neurons                                                     # datasets.Dataset
    art.nearest_words(neuron="L12.N225", k=10)                      # [{"token", "cosine", "token_id"}, ...]
    art.nearest_words(group=("crowd", "relative", 250))
    art.neurons_near(word="crowd", k=5)                             # [{"name", "config", "cosine"}, ...]
    art.directions                                                  # the optional config, or None when absent
    art.nearest_words(direction="L3.probe[0]")

Reading needs neither torch nor transformers. Only the files build_info.json lists are read, each
checked against its size and sha256 first (unchanged files are not hashed again; `full_verify`
forces it), and FAISS index files are checked against the manifest before FAISS parses them.
"""

from __future__ import annotations

import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, ChecksumError
from .manifest import (CONFIGS, OPTIMIZED_CONFIGS, OPTIONAL_CONFIGS, VOCAB_INDEX, Manifest, check_files,
                       read_manifest)
from .naming import Group, Neuron, parse_group, parse_neuron
from .settings import DEFAULT_NEAREST
from .sources import HUB, MISSING, source_kind

logger = logging.getLogger(__name__)


def load(path_or_repo_id: str | Path, revision: str | None = None, *, verify: bool = True,
         full_verify: bool = False, cache_dir: str | None = None, force_download: bool = False) -> "Artifact":
    """Open a local artifact folder, or download a Hub dataset repo (cached; honours HF_HUB_OFFLINE).

    `verify` checks every listed file (hashing only files changed since they were last verified;
    `full_verify` hashes all). `force_download` fetches a Hub artifact again, replacing a corrupt
    cached copy."""
    kind, text = source_kind(path_or_repo_id)  # the one folder-or-Hub-id rule (ft_artifacts.sources)
    path, remote = Path(text), kind == HUB
    if kind == MISSING:
        raise ArtifactError(f"{text}: no such artifact folder (a Hub repo id looks like ORG/NAME)")
    if remote:
        from .publish import download_artifact

        path = download_artifact(text, revision=revision, cache_dir=cache_dir, force_download=force_download)
    artifact = Artifact(path)
    if verify:
        try:
            artifact.verify(full=full_verify)
        except ChecksumError as exc:
            if remote:
                raise ChecksumError(f"{exc} (load(..., force_download=True) fetches it again)") from exc
            raise
    return artifact


class Artifact:
    """A built artifact: its manifest, subsets, and exact nearest-neighbour queries."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest: Manifest = read_manifest(self.path)
        self._subsets: dict[str, Any] = {}
        self._matrices: dict[str, np.ndarray] = {}  # config -> its vectors [rows, h], read on first use
        self._opened: dict[str, Any] = {}  # path -> the handle it was verified through (read from it, not the path)
        self._indexes: dict[str, Any] = {}  # index name -> the FAISS index, read on first use

    def __repr__(self) -> str:
        rows = ", ".join(f"{n}={c.rows}" for n, c in self.manifest.configs.items())
        return f"Artifact({str(self.path)!r}, model={self.manifest.model.id!r}, {rows})"

    # --- integrity -------------------------------------------------------------------------------
    def verify(self, full: bool = False) -> dict[str, str]:
        """Check every listed file's size and sha256: {path: "ok" | "missing (rebuilt on use)"}.
        A data file that is missing or differs, or an unlisted file under data/ or index/, raises;
        a missing index file is rebuilt when used."""
        opened: dict[str, Any] = {}
        try:
            status = check_files(self.path, self.manifest, full=full, opened=opened)
        except BaseException:
            for handle in opened.values():
                handle.close()
            raise
        for handle in self._opened.values():
            handle.close()
        self._opened = opened
        return status

    def _source(self, rel: str) -> str:
        """Where to read a listed file: the handle it was verified through (by its /proc/self/fd path on
        Linux, so pyarrow and FAISS read exactly the verified file), or its path when not verified."""
        handle = self._opened.get(rel)
        if handle is not None and not handle.closed and os.path.isdir("/proc/self/fd"):
            return f"/proc/self/fd/{handle.fileno()}"
        return str(self.path / rel)

    def _checked_sources(self, name: str, columns: list[str] | None = None) -> list[str]:
        """A config's files (as `_source`), their footers checked against the manifest before any decoding."""
        import pyarrow.parquet as pq

        from .parquet_bounds import check_footer

        self._files(name)
        rels = list(self.manifest.configs[name].files)
        sources = [self._source(r) for r in rels]
        try:
            footers = [pq.read_metadata(s) for s in sources]
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged footer
            raise ArtifactError(f"cannot read the parquet footer of config {name!r} ({_one_line(exc)}); re-download "
                                "or rebuild the artifact") from None
        check_footer(footers, rels, name, self.manifest.configs[name].rows, self.manifest)
        return sources

    # --- subsets ---------------------------------------------------------------------------------
    def _files(self, name: str) -> list[Path]:
        if name in OPTIONAL_CONFIGS and name not in self.manifest.configs:
            raise ArtifactError(_NO_DIRECTIONS)
        if name not in self.manifest.configs:
            raise ArtifactError(f"unknown config {name!r}; this artifact has {', '.join(self.manifest.configs)}")
        files = [self.path / f for f in self.manifest.configs[name].files]
        if not all(f.is_file() for f in files):
            raise ArtifactError(f"config {name!r} is missing from {self.path}; re-download or rebuild the artifact")
        return files

    def subset(self, name: str):
        """One config as a `datasets.Dataset` (read from its listed parquet files, in memory)."""
        if name not in self._subsets:
            from .schema import read_parquet

            files = self._checked_sources(name)
            try:
                self._subsets[name] = read_parquet(files, name)
            except Exception as exc:  # pyarrow and datasets raise several types for a damaged file
                raise ArtifactError(f"cannot read the parquet files of config {name!r} ({exc}); re-download or rebuild "
                                    "the artifact") from exc
            if len(self._subsets[name]) != self.manifest.configs[name].rows:
                raise ArtifactError(f"config {name!r} has {len(self._subsets[name])} rows but {self.path} lists "
                                    f"{self.manifest.configs[name].rows}; re-download or rebuild the artifact")
        return self._subsets[name]

    neurons = property(lambda self: self.subset("neurons"))
    word_groups = property(lambda self: self.subset("word_groups"))
    vocabulary = property(lambda self: self.subset("vocabulary"))
    neuron_stats = property(lambda self: self.subset("neuron_stats"))

    @property
    def directions(self):
        """The optional `directions` config as a `datasets.Dataset`; None when the artifact was built without
        directions (`subset("directions")` and `nearest_words(direction=...)` then say so in one line)."""
        return self.subset("directions") if "directions" in self.manifest.configs else None

    def _read_column(self, name: str, column: str):
        """One column of a config as a pyarrow array, read with pyarrow alone (no datasets import),
        with exactly the rows the manifest lists."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from .parquet_bounds import dense_strings
        from .rows import ROW_TYPES, column_types

        rows = self.manifest.configs[name].rows
        strings = [column] if column_types(ROW_TYPES[name]).get(column) == "string" else None  # dense_strings reads them
        try:
            sources = self._checked_sources(name)
            chunks = []
            for source in sources:
                # ParquetFile, not read_table: read_table imports pyarrow.dataset and, through it, pandas (0.3-0.5 s).
                with pq.ParquetFile(source, read_dictionary=strings) as parquet:
                    col = parquet.read(columns=[column]).column(0)
                chunks += dense_strings(col, name, column, rows).chunks
            values = pa.chunked_array(chunks) if chunks else pa.chunked_array([], type=col.type)
            values = values.combine_chunks()
        except ArtifactError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
            raise ArtifactError(f"cannot read column {column!r} of config {name!r} ({exc}); re-download or rebuild "
                                "the artifact") from exc
        if len(values) != self.manifest.configs[name].rows:
            raise ArtifactError(f"config {name!r} does not hold the {self.manifest.configs[name].rows} rows its "
                                "manifest lists; re-download or rebuild the artifact")
        return values

    def _column(self, name: str, column: str) -> list:
        return self._read_column(name, column).to_pylist()

    def _vectors(self, name: str, rows: list[int] | None = None) -> np.ndarray:
        """A config's analysis-space vectors [n, h] (read once per config), or the given rows of them."""
        if name not in self._matrices:
            h = self.manifest.model.hidden_size
            flat = _float_values(self._read_column(name, "vector").flatten())
            if flat.size != self.manifest.configs[name].rows * h:
                raise ArtifactError(f"config {name!r} vectors do not have the manifest's shape; re-download or rebuild "
                                    "the artifact")
            self._matrices[name] = flat.reshape(-1, h)
        vectors = self._matrices[name]
        return vectors if rows is None else vectors[rows]

    # --- indexes ---------------------------------------------------------------------------------
    @property
    def vocab_index(self):
        """The vocabulary's FAISS index (index/vocab.faiss): row i is vocabulary row i."""
        return self.index("vocabulary")

    def index(self, config: str):
        """The FAISS index holding `config`'s rows (`vocabulary`, or an optimized config): an exact cosine
        IndexFlatIP, row i = the config's row i (in a format-2 artifact, neurons then word_groups share one)."""
        if config == "directions" and "directions" not in self.manifest.configs:
            raise ArtifactError(_NO_DIRECTIONS)
        if config != "directions" and (config not in CONFIGS or config == "neuron_stats"):
            raise ArtifactError(f"no index for {config!r}; indexes hold {', '.join(('vocabulary',) + OPTIMIZED_CONFIGS)}")
        name, _ = self.manifest.index_of(config)
        if name not in self._indexes:
            self._indexes[name] = self._read_index(name)
        return self._indexes[name]

    def _read_index(self, name: str):
        from .index import build_index, read_index

        entry = self.manifest.indexes[name]
        path = self.path / entry.path
        if path.is_file():
            return self._read_listed(entry.path, lambda source: read_index(source, entry.dimension, entry.rows))
        logger.warning("%s is missing; rebuilding it from the artifact's vectors", entry.path)
        parts = []
        for config, _ in entry.sources:
            vectors = self._vectors(config)
            if config != "vocabulary":
                vectors = vectors.copy()  # the cache stays as read
                vectors[self._diverged[config]] = 0.0  # no direction: never near anything
            parts.append(vectors)
        return build_index(np.concatenate(parts))

    @property
    def directions_index(self):
        """The `directions` config's own exact cosine index (index/directions.faiss, row i: directions row i;
        diverged rows are zero), as `index("directions")`."""
        return self.index("directions")

    @cached_property
    def _tokens(self) -> list[str]:
        return self._column("vocabulary", "token")

    @cached_property
    def _special(self) -> frozenset:
        """Ids of the bracketed tokens ([CLS], [PAD], [unused7], ...), which `skip_special` leaves out."""
        return frozenset(i for i, t in enumerate(self._tokens) if len(t) > 2 and t[0] == "[" and t[-1] == "]")

    # Each read on first use, per config: a neuron query reads neither the groups' nor the vocabulary's names.
    @cached_property
    def _names(self) -> dict[str, list[str]]:
        """{optimized config: its rows' names, in row order}."""
        return _PerConfig(lambda c: self._column(c, NAME_COLUMNS[c]))

    @cached_property
    def _diverged(self) -> dict[str, np.ndarray]:
        """{optimized config: [rows] bool}."""
        return _PerConfig(lambda c: np.array([bool(v) for v in self._column(c, "diverged")], dtype=bool))

    @cached_property
    def _rows(self) -> dict[str, dict[str, int]]:
        """{config: {name (a token for the vocabulary): row}}."""
        return _PerConfig(lambda c: {n: i for i, n in enumerate(self._tokens if c == "vocabulary" else self._names[c])})

    # --- queries ---------------------------------------------------------------------------------
    def vector(self, query=None, *, neuron=None, group=None, word=None, vectors=None, direction=None) -> np.ndarray:
        """The analysis-space vector(s) [n, h] of exactly one of: `neuron` (`L12.N225` or a `Neuron`),
        `group` ((word, selection, k), a `Group` or `word/selection/k`), `word` (a vocabulary token),
        `direction` (a label of the optional `directions` config, `L3.probe[0]`) or `vectors` ([h] or [n, h]).
        A positional `query` may be a `Neuron`, a `Group` or vectors."""
        given = {k: v for k, v in dict(neuron=neuron, group=group, word=word, vectors=vectors,
                                       direction=direction).items() if v is not None}
        if query is not None:
            if isinstance(query, str):
                raise ArtifactError(f"{query!r}: a string is ambiguous; pass neuron='L12.N225', "
                                    "group=('crowd', 'relative', 250) or word='crowd'")
            kind = "neuron" if isinstance(query, Neuron) else "group" if isinstance(query, Group) else "vectors"
            given[kind] = query
        if len(given) != 1:
            raise ArtifactError("give exactly one query: neuron=, group=, word=, direction= or vectors=")
        (kind, value), = given.items()
        if kind == "vectors":
            return self._raw_vectors(value)
        if kind == "direction":
            return self._vectors("directions", [self._direction_row(value)])
        config, row = self._row(kind, value)
        return self._vectors(config, [row])

    def _query_directions(self, query, kinds: dict) -> tuple[np.ndarray, bool]:
        """What a cosine query needs of `vector(query, **kinds)`, and whether it is already unit length: for a
        neuron, group, word or direction, its row of the config's index (the stored vector, L2-normalized by the
        code that normalizes every query, so the answers are bit for bit those for the stored vector), so a word
        query reads no vocabulary vectors and a neuron query no vector column; given vectors as they are."""
        if isinstance(query, (Neuron, Group)) and not kinds:
            kind, value = ("neuron" if isinstance(query, Neuron) else "group"), query
        else:
            named = query is None and len(kinds) == 1 and all(v is not None for v in kinds.values())
            (kind, value), = kinds.items() if named else (("vectors", None),)  # anything else: as vector() says
        if kind == "vectors":
            return self.vector(query, **kinds), False
        config, row = ("directions", self._direction_row(value)) if kind == "direction" else self._row(kind, value)
        return self._index_row(config, row)[None], True

    def _index_row(self, config: str, row: int) -> np.ndarray:
        """Row `row` of `config` as its index stores it (L2-normalized), read alone unless the index is in memory."""
        from .index import read_index_row

        name, offset = self.manifest.index_of(config)
        entry = self.manifest.indexes[name]
        if name not in self._indexes and (self.path / entry.path).is_file():
            return self._read_listed(entry.path,
                                     lambda source: read_index_row(source, entry.dimension, entry.rows, offset + row))
        return self.index(config).reconstruct(offset + row)

    def _read_listed(self, rel: str, read):
        """`read(source)` of a listed file through `_source`; an error names the file, not the handle read."""
        source = self._source(rel)
        try:
            return read(source)
        except ArtifactError as exc:
            raise ArtifactError(str(exc).replace(source, str(self.path / rel))) from None

    def _raw_vectors(self, query) -> np.ndarray:
        h = self.manifest.model.hidden_size
        try:
            vectors = np.asarray(query, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"cannot use {query!r:.80} as vectors: give an array of shape [{h}] or [n, {h}]") from exc
        vectors = vectors.reshape(1, -1) if vectors.ndim == 1 else vectors
        if vectors.ndim != 2 or vectors.shape[1] != h or not len(vectors):
            raise ArtifactError(f"query vectors must have shape [{h}] or [n, {h}], got {tuple(np.shape(query))}")
        if not np.isfinite(vectors).all():
            raise ArtifactError("query vectors contain NaN or infinite values")
        return vectors

    def _row(self, kind: str, value) -> tuple[str, int]:
        model = self.manifest.model
        if kind == "neuron":
            name = str(value) if isinstance(value, Neuron) else value
            if not isinstance(name, str):
                raise ArtifactError(f"neuron= takes a name like 'L12.N225' (got {value!r})")
            key = str(parse_neuron(name, model.num_layers, model.hidden_size))
            config, why = "neurons", None
        elif kind == "group":
            key = str(_parse_group_hint(value))
            config, why = "word_groups", None
        else:
            if not isinstance(value, str):
                raise ArtifactError(f"word= takes one vocabulary token (got {value!r})")
            key, config, why = value, "vocabulary", None
        row = self._rows[config].get(key)
        if row is None:
            raise ArtifactError(self._missing(config, key))
        if config != "vocabulary":
            if self._diverged[config][row]:
                raise ArtifactError(f"{key}: its optimization diverged (non-finite values); it has no nearest words")
        return config, row

    def _direction_row(self, label) -> int:
        """The row of a direction label; one line naming what the artifact holds otherwise."""
        if "directions" not in self.manifest.configs:
            raise ArtifactError(_NO_DIRECTIONS)
        if not isinstance(label, str):
            raise ArtifactError(f"direction= takes a label like 'L3.probe[0]' (got {label!r})")
        names = self._rows["directions"]
        row = names.get(label)
        if row is None:
            import difflib

            close = difflib.get_close_matches(label, list(names), n=1)
            shown = ", ".join(list(names)[:6]) + (", ..." if len(names) > 6 else "")
            raise ArtifactError(f"{label!r} is not one of this artifact's {len(names)} directions"
                                + (f"; did you mean `{close[0]}`?" if close else "") + f" (they are: {shown}); "
                                "`ft-artifacts info ARTIFACT --directions` lists them all")
        if self._diverged["directions"][row]:
            raise ArtifactError(f"{label}: its optimization diverged (non-finite values); it has no nearest words")
        return row

    def _missing(self, config: str, key: str) -> str:
        """The one-line error for a neuron, group or word this artifact does not hold, saying what it holds."""
        if config == "vocabulary":
            from .words import word_hint

            return word_hint(key, self._rows["vocabulary"])
        if config == "neurons":
            names = self._names["neurons"]
            layer = key.partition(".")[0]
            same = [n for n in names if n.partition(".")[0] == layer]
            shown = ", ".join((same or names)[:6])
            return (f"{key!r}: neuron is not in this artifact's sample of {len(names)}"
                    + (f" (in layer {layer[1:]}: {shown}, ...)" if same else f" (e.g. {shown})")
                    + "; `ft-artifacts info ARTIFACT --neurons` lists them all")
        word = key.rsplit("/", 2)[0]
        contents = artifact_contents(self)
        words = contents["words"]
        shown = "; ".join(f"{s} k={', '.join(map(str, ks))}" for s, ks in contents["groups"].items())
        if word in words:
            return f"{key!r}: group is not in this artifact; its (selection, k) are: {shown}"
        return (f"{key!r}: group is not in this artifact: {word!r} is not one of its {len(words)} group words ("
                + ", ".join(words[:8]) + (", ..." if len(words) > 8 else "")
                + f"; selections and k: {shown}); `ft-artifacts info ARTIFACT --words` lists them all")

    def nearest_words(self, query=None, *, k: int = DEFAULT_NEAREST, skip_special: bool = False, **kinds):
        """Nearest vocabulary tokens by cosine in the analysis space: a list of {"token", "cosine",
        "token_id"} for one query, or one such list per row for a batch of vectors.
        Queries as in `vector` (neuron=, group=, word= or vectors=). `skip_special` leaves out bracketed
        tokens ([CLS], [PAD], [unused7], ...); by default every token counts, as in the stored `nearest` columns."""
        _check_kinds("nearest_words", kinds)
        vectors, unit = self._query_directions(query, kinds)
        from .index import search

        k = _check_k(k)
        skip = self._special if skip_special else frozenset()
        cosines, ids = search(self.vocab_index, vectors, min(k + len(skip), len(self._tokens)), normalized=unit)
        results = [[{"token": self._tokens[int(i)], "cosine": float(c), "token_id": int(i)}
                    for c, i in zip(cs, row) if i >= 0 and int(i) not in skip][:k] for cs, row in zip(cosines, ids)]
        return results if _is_batch(query, kinds) else results[0]

    def neurons_near(self, query=None, *, k: int = DEFAULT_NEAREST, **kinds):
        """Neurons and groups whose optimized inputs lie nearest (cosine) to a query (as in `vector`):
        a list of {"name", "config", "cosine"} (one list per row for a batch of vectors). Diverged rows
        are never returned."""
        _check_kinds("neurons_near", kinds)
        vectors, unit = self._query_directions(query, kinds)
        k = _check_k(k)
        found = [[] for _ in range(len(vectors))]  # per query: (-cosine, config order, row, config)
        for order, config in enumerate(OPTIMIZED_CONFIGS):
            for hits, row_hits in zip(found, self._nearest_rows(config, vectors, k, unit)):
                hits += [(-c, order, j, config) for c, j in row_hits]
        results = [[{"name": self._names[config][j], "config": config, "cosine": -c}
                    for c, _, j, config in sorted(hits)[:k]] for hits in found]
        return results if _is_batch(query, kinds) else results[0]

    def _nearest_rows(self, config: str, vectors: np.ndarray, k: int,
                      unit: bool = False) -> list[list[tuple[float, int]]]:
        """Per query, up to k (cosine, row) of `config`'s optimized rows nearest to it, diverged rows left out."""
        from .index import search

        name, offset = self.manifest.index_of(config)
        rows, diverged = self.manifest.configs[config].rows, self._diverged[config]
        if not rows:
            return [[] for _ in range(len(vectors))]
        # The index may hold other configs' rows (format 2): ask for enough that k of this config's survive.
        extra = self.manifest.indexes[name].rows - rows
        cosines, ids = search(self.index(config), vectors, k + int(diverged.sum()) + extra, normalized=unit)
        out = []
        for cs, ids_row in zip(cosines, ids):
            hits = []
            for c, i in zip(cs, ids_row):
                j = int(i) - offset
                if 0 <= j < rows and not diverged[j] and len(hits) < k:
                    hits.append((float(c), j))
            out.append(hits)
        return out


# The column naming the rows of each config that has optimized rows.
NAME_COLUMNS = {"neurons": "neuron", "word_groups": "group", "directions": "direction"}


class _PerConfig(dict):
    """{config: value}, each value computed on first use."""

    def __init__(self, compute):
        super().__init__()
        self._compute = compute

    def __missing__(self, config: str):
        value = self[config] = self._compute(config)
        return value


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_group_hint(value) -> Group:
    """parse_group, with a hint for the common slip of passing a bare word."""
    if isinstance(value, str) and value.count("/") == 0:
        raise ArtifactError(f"malformed group {value!r}: a group is (word, selection, k), e.g. group=({value!r}, 'relative', 250) "
                            f"or '{value}/relative/250'; for the word itself use word={value!r}")
    return parse_group(value)


def _float_values(values) -> np.ndarray:
    """A pyarrow float array as float32 numpy, straight from its buffer (`to_numpy` imports pandas: 0.3 s)."""
    import pyarrow as pa

    if values.null_count or not pa.types.is_floating(values.type):
        return values.to_numpy(zero_copy_only=False).astype(np.float32)
    width = values.type.bit_width // 8
    data = np.frombuffer(values.buffers()[1], dtype=f"<f{width}", count=len(values), offset=values.offset * width)
    return data.astype(np.float32)


def artifact_contents(artifact: "Artifact") -> dict:
    """What an artifact's queries accept: {"neurons": [names in row order], "words": [group words, sorted],
    "groups": {selection: [k, ...]}}."""
    keys = [g.rsplit("/", 2) for g in artifact._names["word_groups"]]
    groups: dict[str, set[int]] = {}
    for _, selection, k in keys:
        groups.setdefault(selection, set()).add(int(k))
    return {"neurons": list(artifact._names["neurons"]), "words": sorted({w for w, _, _ in keys}),
            "groups": {s: sorted(ks) for s, ks in sorted(groups.items())}}


def direction_contents(artifact: "Artifact") -> list[dict]:
    """The optional directions config's rows as {"direction", "file", "layer", "row", "diverged"} (an
    `ArtifactError` when the artifact has none)."""
    if "directions" not in artifact.manifest.configs:
        raise ArtifactError(_NO_DIRECTIONS)
    columns = {c: artifact._column("directions", c) for c in ("direction", "file", "layer", "row", "diverged")}
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


_KINDS = ("neuron", "group", "word", "vectors", "direction")
_NO_DIRECTIONS = ("this artifact has no directions config; build one with `ft-artifacts build ... --directions FILE "
                  "--directions-layer L`")


def _check_kinds(method: str, kinds: dict) -> None:
    """A wrong keyword named against the public method the user called, not an internal one."""
    for key in kinds:
        if key not in _KINDS:
            raise TypeError(f"Artifact.{method}() got an unexpected keyword argument {key!r}; it takes one of "
                            "neuron=, group=, word=, direction= or vectors=, and k=")


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ArtifactError(f"k must be a positive integer (got {k!r})")
    return int(k)


def _is_batch(query, kinds: dict) -> bool:
    value = kinds.get("vectors", query)
    return value is not None and not isinstance(value, (str, Neuron, Group)) and np.ndim(value) == 2
