"""build_info.json in and out: the typed manifest that says exactly what an artifact holds.

Written once by the packer, read (and validated) by the loader, the CLI, the publisher and the
builder's resume check. Nothing else reads build_info.json. Reading validates everything: types,
every path relative and inside the folder, every data and index file of every config listed with
its checksum, index shapes consistent with the configs. Anything else is one `ArtifactError`.
This module imports neither torch nor datasets.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import ArtifactError
from .files import atomic_path
from .safejson import JSONLimitError, loads
from .settings import BuildConfig

FORMAT_VERSION = 3  # the format this package writes; it reads this one and every older one MIGRATIONS reaches
# {N: a function turning a parsed format-N build_info.json into format N + 1}. Reading applies them in turn,
# so a reader of format N reads N - 1 and older. Bumping the format: add MIGRATIONS[N] and raise FORMAT_VERSION.
# Format 1 (the untyped manifest before ft-artifacts 0.1.0's typed one) has no migration: rebuild it.
# Format 3 gives each optimized config its own index (index/neurons.faiss, index/word_groups.faiss), so that
# plain `Dataset.load_faiss_index` works on each; format 2 had one index/optimized.faiss over both configs.


def _format_2_to_3(data: dict) -> dict:
    """Format 2 -> 3: nothing is rewritten. Its one `optimized` index over the neurons rows, then the word_groups
    rows (LEGACY_OPTIMIZED_INDEX), stays what the artifact holds and lists; the reader accepts that layout only
    from an artifact written as format 2, and the loader maps its rows to the two configs."""
    return {**data, "format_version": 3}


MIGRATIONS: dict = {2: _format_2_to_3}
BUILD_INFO = "build_info.json"
CARD = "README.md"
CONFIGS = ("neurons", "word_groups", "vocabulary", "neuron_stats")
DEFAULT_CONFIG = "neurons"
OPTIMIZED_CONFIGS = ("neurons", "word_groups")  # rows with an optimized input; each has its own index
VOCAB_INDEX = "vocab"
LEGACY_OPTIMIZED_INDEX = "optimized"  # format 2: one index over the neurons rows, then the word_groups rows
# Optional configs: present only when a build asked for them, each with its own index named after it.
# `directions`: rows of a directions file (--directions FILE --directions-layer L) in a layer's neuron space.
OPTIONAL_CONFIGS = ("directions",)
DIRECTIONS_INDEX = "directions"
from .index import INDEX_KIND  # noqa: E402,F401 - the index kind, defined once (index.py)
INDEX_METRIC = "cosine (IndexFlatIP over L2-normalized float32 vectors)"
DATA_DIRS = ("data", "index")  # folders whose every file must be listed

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# An honest build_info.json is tens of KiB (an atlas's word list and results: a few MiB at most); JSON
# costs up to ~25 times its size in memory, so this bounds a hostile one to a few hundred MiB.
MANIFEST_LIMIT = 8 << 20
MANIFEST_DEPTH = 32  # the deepest honest nesting is 5 (results tables)
PATH_LIMIT = 1024  # bytes of UTF-8 in a listed path
PART_LIMIT = 255  # bytes in one of its components (the usual file-name limit)
_PATTERN_CHARS = set("*?[]\\{}")  # never in a listed path: paths are literal, never patterns


def data_file(config: str) -> str:
    return f"data/{config}/train-00000-of-00001.parquet"


def index_file(name: str) -> str:
    return f"index/{name}.faiss"


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class ConfigEntry:
    rows: int
    files: tuple[str, ...]


@dataclass(frozen=True)
class IndexEntry:
    path: str
    dimension: int
    rows: int
    sources: tuple[tuple[str, int], ...]  # (config, rows) in index order
    kind: str = INDEX_KIND
    metric: str = INDEX_METRIC


@dataclass(frozen=True)
class ModelInfo:
    id: str
    revision: str
    source: str
    num_layers: int
    hidden_size: int
    vocab_size: int
    family: str = "bert"  # ft_artifacts.families; artifacts written before families existed are BERT


@dataclass(frozen=True)
class Versions:
    """The package versions a build ran with (build_info.json's `versions`, keyed by distribution name);
    None for a package that was not installed. Names this list does not know are kept in `other`."""

    python: str | None = None
    ft_artifacts: str | None = None
    torch: str | None = None
    transformers: str | None = None
    datasets: str | None = None
    faiss_cpu: str | None = None
    numpy: str | None = None
    pyarrow: str | None = None
    huggingface_hub: str | None = None
    other: dict[str, str | None] = field(default_factory=dict)

    DISTRIBUTIONS = ("python", "ft-artifacts", "torch", "transformers", "datasets", "faiss-cpu", "numpy", "pyarrow",
                     "huggingface_hub")

    @staticmethod
    def _field(name: str) -> str:
        return name.replace("-", "_")

    def to_dict(self) -> dict[str, str | None]:
        return {**{name: getattr(self, self._field(name)) for name in self.DISTRIBUTIONS}, **self.other}

    @classmethod
    def from_dict(cls, data: dict, where: str = "versions") -> "Versions":
        if not all(isinstance(v, (str, type(None))) for v in data.values()):
            raise ArtifactError(f"{where}: every version must be a string or null")
        known = {cls._field(k): v for k, v in data.items() if k in cls.DISTRIBUTIONS}
        return cls(**known, other={k: v for k, v in data.items() if k not in cls.DISTRIBUTIONS})


@dataclass(frozen=True)
class Runtime:
    """How one build ran (build_info.json's `runtime`): processes, each one's peak memory in bytes ({"rss",
    "cuda"} by rank), the last sitting's wall time, the optimization time summed over every chunk's own
    timing (sittings and processes), how many chunks there are and how many were timed, and the machine
    (platform, cpu, cpus, torch_threads, device, gpu). None: not recorded. Other keys are kept in `other`."""

    processes: int | None = None
    peak_memory_bytes: list[dict[str, int]] | None = None
    wall_seconds: float | None = None
    optimize_seconds: float | None = None
    chunks: int | None = None
    chunks_timed: int | None = None
    machine: dict[str, Any] | None = None
    other: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        names = [f for f in self.__dataclass_fields__ if f != "other"]
        return {**{n: getattr(self, n) for n in names if getattr(self, n) is not None}, **self.other}

    @classmethod
    def from_dict(cls, data: dict, where: str = "runtime") -> "Runtime":
        names = [f for f in cls.__dataclass_fields__ if f != "other"]
        kinds = {"processes": int, "chunks": int, "chunks_timed": int, "wall_seconds": (int, float),
                 "optimize_seconds": (int, float), "peak_memory_bytes": list, "machine": dict}
        for name, kind in kinds.items():
            value = data.get(name)
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                raise ArtifactError(f"{where}.{name} has the wrong type ({type(value).__name__})")
        return cls(**{n: data[n] for n in names if n in data}, other={k: v for k, v in data.items() if k not in names})

    @property
    def recorded(self) -> bool:
        return self != Runtime()


@dataclass
class Manifest:
    """Everything build_info.json records. `files` covers every file of the artifact except
    build_info.json itself; `settings` is the builder's configuration (`settings.BuildConfig`)."""

    model: ModelInfo
    settings: BuildConfig
    words: list[str]
    nonpositive_max: int  # neurons with a_max <= 0: never selected by relative selection
    configs: dict[str, ConfigEntry]
    indexes: dict[str, IndexEntry]
    results: dict[str, Any]
    versions: Versions
    files: dict[str, FileEntry] = field(default_factory=dict)
    default_config: str = DEFAULT_CONFIG
    spaces: dict[str, str] = field(default_factory=lambda: {
        "vector": "embedding layer output after LayerNorm, at the optimized position (analysis space)",
        "pre_ln_vector": "x @ E alone: the optimized input times the word-embedding matrix, without the position "
                         "and token-type embeddings that are added to it before the embedding LayerNorm",
    })
    relative_policy: str = "neurons with a_max <= 0 are never selected by relative selection"
    runtime: Runtime = field(default_factory=Runtime)  # how this run went: processes, peak memory, wall time
    format_version: int = FORMAT_VERSION

    # --- derived ---------------------------------------------------------------------------------
    def index_of(self, config: str) -> tuple[str, int]:
        """(the name of the index holding `config`'s rows, the row where they start in it)."""
        for name, entry in self.indexes.items():
            offset = 0
            for source, rows in entry.sources:
                if source == config:
                    return name, offset
                offset += rows
        raise ArtifactError(f"{BUILD_INFO}: no index holds config {config!r}; rebuild or re-download the artifact")

    def payload_files(self) -> list[str]:
        """The files the configs and indexes consist of (each also in `files`)."""
        paths = [f for c in self.configs.values() for f in c.files]
        return paths + [i.path for i in self.indexes.values()]

    def published_files(self) -> list[str]:
        """Every file a push uploads, build_info.json last."""
        return sorted(self.files) + [BUILD_INFO]

    def build_id(self) -> str:
        """Names this exact build (the explorer's sites say which build they show): the first 12 hex digits
        of the sha256 of its canonical JSON."""
        import hashlib

        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @property
    def evaluation(self):
        """`results` as the typed `evaluation.Evaluation`; None for the older layout of results (keys
        `single_neurons` and `word_groups`), which `ft-artifacts report` recomputes from the rows."""
        from .evaluation import Evaluation

        return Evaluation.from_results(self.results, f"{BUILD_INFO} results")

    # --- (de)serialization -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        data["versions"], data["runtime"] = self.versions.to_dict(), self.runtime.to_dict()
        data["settings"] = self.settings.to_dict()
        data["configs"] = {n: {"rows": c.rows, "files": list(c.files)} for n, c in self.configs.items()}
        data["indexes"] = {n: dict(asdict(i), sources=[list(s) for s in i.sources]) for n, i in self.indexes.items()}
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str = BUILD_INFO) -> "Manifest":
        return _Reader(where).manifest(data)


def read_manifest(folder: str | Path) -> Manifest:
    """The validated manifest of an artifact folder; `ArtifactError` naming the problem otherwise."""
    path = Path(folder) / BUILD_INFO
    if not path.is_file():
        raise ArtifactError(f"{folder} is not an ft-artifacts artifact: {BUILD_INFO} is missing")
    with open(path, "rb") as handle:  # read once, within the limit, whatever the file grows to meanwhile
        text = handle.read(MANIFEST_LIMIT + 1)
    if len(text) > MANIFEST_LIMIT:
        raise ArtifactError(f"{path} is larger than {MANIFEST_LIMIT >> 20} MiB; it is not a build_info.json this "
                            "package wrote")
    try:
        data = loads(text, max_bytes=MANIFEST_LIMIT, max_depth=MANIFEST_DEPTH)
    except JSONLimitError as exc:
        raise ArtifactError(f"{path} is not a build_info.json this package wrote ({exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is corrupt ({exc}); rebuild or re-download the artifact") from exc
    return Manifest.from_dict(data, str(path))


def write_manifest(folder: str | Path, manifest: Manifest, tmp_dir: str | Path | None = None) -> None:
    Manifest.from_dict(manifest.to_dict())  # never write what could not be read back
    with atomic_path(Path(folder) / BUILD_INFO, tmp_dir=tmp_dir) as tmp:
        tmp.write_text(manifest.to_json(), encoding="utf-8")


def check_relative_path(path: Any, where: str = BUILD_INFO) -> str:
    """A POSIX path relative to the artifact folder and inside it, literal and plain: printable (no control
    characters), no pattern characters or backslashes, at most `PART_LIMIT` bytes per component and
    `PATH_LIMIT` in all. `ArtifactError` otherwise (the path shown escaped and cut short)."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        raise ArtifactError(f"{where}: invalid file path {path!r:.120}; rebuild or re-download the artifact")
    if not path.isprintable() or _PATTERN_CHARS & set(path):
        raise ArtifactError(f"{where}: file path {path!r:.120} holds control or pattern characters; rebuild or "
                            "re-download the artifact")
    encoded = path.encode("utf-8", "surrogatepass")
    if len(encoded) > PATH_LIMIT or any(len(part.encode("utf-8", "surrogatepass")) > PART_LIMIT for part in path.split("/")):
        raise ArtifactError(f"{where}: file path {path!r:.120} is longer than {PATH_LIMIT} bytes or has a component "
                            f"longer than {PART_LIMIT}; rebuild or re-download the artifact")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")) or path == BUILD_INFO:
        raise ArtifactError(f"{where}: file path {path!r} is not a plain path inside the artifact folder; "
                            "rebuild or re-download the artifact")
    return path


class _Reader:
    """Validates a parsed build_info.json field by field, naming the first problem."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, what: str) -> ArtifactError:
        return ArtifactError(f"{self.where}: {what}; rebuild or re-download the artifact")

    def get(self, data: dict, key: str, kind, ctx: str = ""):
        if key not in data:
            raise self.fail(f"{ctx}{key!r} is missing")
        value = data[key]
        ok = isinstance(value, kind) and not (kind in (int, (int,)) and isinstance(value, bool))
        if not ok:
            raise self.fail(f"{ctx}{key!r} has the wrong type ({type(value).__name__})")
        return value

    def count(self, data: dict, key: str, ctx: str = "") -> int:
        value = self.get(data, key, int, ctx)
        if value < 0:
            raise self.fail(f"{ctx}{key!r} is negative")
        return value

    def manifest(self, data: Any) -> Manifest:
        if not isinstance(data, dict):
            raise self.fail("the top level is not an object")
        written = data.get("format_version")
        data = self.migrate(data)
        version = data["format_version"]
        files = self.files(self.get(data, "files", dict))
        model = self.model(self.get(data, "model", dict))
        configs = self.configs(self.get(data, "configs", dict))
        indexes = self.indexes(self.get(data, "indexes", dict), configs, model, legacy=isinstance(written, int) and written <= 2)
        default = self.get(data, "default_config", str)
        if default not in configs:
            raise self.fail(f"default_config {default!r} is not a config")
        manifest = Manifest(
            model=model,
            settings=self.settings(self.get(data, "settings", dict)),
            words=self.strings(self.get(data, "words", list), "words"),
            nonpositive_max=self.count(data, "nonpositive_max"),
            configs=configs,
            indexes=indexes,
            results=self.get(data, "results", dict),
            versions=Versions.from_dict(self.get(data, "versions", dict), f"{self.where}: versions"),
            files=files,
            default_config=default,
            spaces=self.get(data, "spaces", dict),
            relative_policy=self.get(data, "relative_policy", str),
            runtime=Runtime.from_dict(self.get(data, "runtime", dict), f"{self.where}: runtime"),
            format_version=version,
        )
        unlisted = [p for p in manifest.payload_files() if p not in files]
        if unlisted:
            raise self.fail(f"{', '.join(unlisted)} {'is' if len(unlisted) == 1 else 'are'} not listed with a "
                            "checksum in 'files'")
        return manifest

    def migrate(self, data: dict) -> dict:
        """`data` brought to FORMAT_VERSION through MIGRATIONS; a format this package cannot read is one
        `ArtifactError` naming the ft-artifacts version that wrote it (build_info.json's `versions`)."""
        version = self.get(data, "format_version", int)
        oldest = next((v for v in range(FORMAT_VERSION, 0, -1) if v - 1 not in MIGRATIONS), FORMAT_VERSION)
        if oldest <= version <= FORMAT_VERSION:
            while version < FORMAT_VERSION:
                data = MIGRATIONS[version](dict(data))
                version += 1
                if data.get("format_version") != version:
                    raise self.fail(f"the migration to format {version} left format {data.get('format_version')!r}")
            return data
        versions = data.get("versions")
        writer = versions.get("ft-artifacts") if isinstance(versions, dict) else None
        by = f"ft-artifacts {writer}" if isinstance(writer, str) else "another ft-artifacts"
        readable = f"format {FORMAT_VERSION}" if oldest == FORMAT_VERSION else f"formats {oldest} to {FORMAT_VERSION}"
        if version > FORMAT_VERSION:
            fix = (f"upgrade: pip install 'ft-artifacts>={writer}'" if isinstance(writer, str)
                   else "upgrade ft-artifacts (pip install -U ft-artifacts)")
        else:
            fix = f"read it with {by}, or rebuild the artifact"
        raise ArtifactError(f"{self.where}: format {version}, written by {by}; this ft-artifacts "
                            f"{_package_version()} reads {readable}; {fix}")

    def settings(self, data: dict) -> BuildConfig:
        try:
            return BuildConfig.from_dict(data, "settings")
        except ArtifactError as exc:  # a newer writer's key says upgrade; anything else is a damaged file
            text = str(exc)
            raise (ArtifactError(f"{self.where}: {text}") if text.endswith("upgrade ft-artifacts") else self.fail(text)) from None

    def strings(self, values: list, ctx: str) -> list[str]:
        if not all(isinstance(v, str) for v in values):
            raise self.fail(f"{ctx!r} must be a list of strings")
        return values

    def files(self, data: dict) -> dict[str, FileEntry]:
        if not data:
            raise self.fail("'files' lists no files")
        out = {}
        for path, entry in data.items():
            check_relative_path(path, self.where)
            if not isinstance(entry, dict):
                raise self.fail(f"files[{path!r}] is not an object")
            sha = self.get(entry, "sha256", str, f"files[{path!r}].")
            if not _SHA256.match(sha):
                raise self.fail(f"files[{path!r}].sha256 is not 64 lowercase hex digits")
            out[path] = FileEntry(sha, self.count(entry, "size", f"files[{path!r}]."))
        return out

    def model(self, data: dict) -> ModelInfo:
        values = {k: self.get(data, k, str, "model.") for k in ("id", "revision", "source")}
        sizes = {k: self.count(data, k, "model.") for k in ("num_layers", "hidden_size", "vocab_size")}
        if not all(sizes.values()):
            raise self.fail("model sizes must be positive")
        family = self.get(data, "family", str, "model.") if "family" in data else "bert"
        return ModelInfo(**values, **sizes, family=family)

    def configs(self, data: dict) -> dict[str, ConfigEntry]:
        missing = [c for c in CONFIGS if c not in data]
        if missing or set(data) - set(CONFIGS) - set(OPTIONAL_CONFIGS):
            raise self.fail(f"'configs' must name exactly {', '.join(CONFIGS)} (and optionally "
                            f"{', '.join(OPTIONAL_CONFIGS)})")
        out = {}
        for name in CONFIGS + tuple(c for c in OPTIONAL_CONFIGS if c in data):
            entry = self.get(data, name, dict, "configs.")
            files = self.strings(self.get(entry, "files", list, f"configs.{name}."), f"configs.{name}.files")
            if not files:
                raise self.fail(f"configs.{name} lists no data files")
            for path in files:
                check_relative_path(path, self.where)
                if not path.startswith(f"data/{name}/") or not path.endswith(".parquet"):
                    raise self.fail(f"configs.{name} file {path!r} is not a parquet file under data/{name}/")
            out[name] = ConfigEntry(self.count(entry, "rows", f"configs.{name}."), tuple(files))
        return out

    def indexes(self, data: dict, configs: dict[str, ConfigEntry], model: ModelInfo,
                legacy: bool = False) -> dict[str, IndexEntry]:
        """Format 3: the vocabulary's index and one index per optimized config, named after it. An artifact
        written as format 2 (`legacy`) has the vocabulary's and one `optimized` index over both configs."""
        optimized = [c for c in OPTIMIZED_CONFIGS if c in configs]
        expected = {VOCAB_INDEX: ("vocabulary",), **({LEGACY_OPTIMIZED_INDEX: tuple(optimized)} if legacy else
                                                      {c: (c,) for c in optimized})}
        if "directions" in configs:  # an optional config's own index, listed exactly when the config is
            expected[DIRECTIONS_INDEX] = ("directions",)
        if set(data) != set(expected):
            raise self.fail(f"'indexes' must name exactly {', '.join(expected)}")
        out = {}
        for name, sources in expected.items():
            entry = self.get(data, name, dict, "indexes.")
            ctx = f"indexes.{name}."
            path = check_relative_path(self.get(entry, "path", str, ctx), self.where)
            if path != index_file(name):
                raise self.fail(f"{ctx}path must be {index_file(name)!r}")
            if self.get(entry, "kind", str, ctx) != INDEX_KIND:
                raise self.fail(f"{ctx}kind must be {INDEX_KIND}")
            dimension, rows = self.count(entry, "dimension", ctx), self.count(entry, "rows", ctx)
            listed = self.get(entry, "sources", list, ctx)
            want = [[c, configs[c].rows] for c in sources]
            if listed != want or rows != sum(configs[c].rows for c in sources) or dimension != model.hidden_size:
                raise self.fail(f"{ctx[:-1]} does not match the configs' rows or the model's hidden size")
            out[name] = IndexEntry(path, dimension, rows, tuple((c, n) for c, n in listed),
                                   metric=self.get(entry, "metric", str, ctx))
        return out


def _package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("ft-artifacts")
    except metadata.PackageNotFoundError:
        return "(source checkout)"


def unlisted_files(folder: str | Path, manifest: Manifest) -> list[str]:
    """Files under data/ and index/ that the manifest does not list (a loader refuses them: plain
    `load_dataset` or a later push could pick them up)."""
    root = Path(folder)
    found = []
    for top in DATA_DIRS:
        base = root / top
        if base.is_dir():
            found += [p.relative_to(root).as_posix() for p in base.rglob("*") if not p.is_dir()]
    return sorted(p for p in found if p not in manifest.files)


def _symlink_in(root: Path, rel: str, folders_only: bool = False) -> bool:
    path = root
    parts = rel.split("/")
    for part in parts[:-1] if folders_only else parts:
        path = path / part
        if path.is_symlink():
            return True
    return False


def linked_folders(root: Path) -> list[str]:
    """Symbolic links to folders under data/ and index/ (or those folders themselves): an artifact's
    folders are plain folders, so nothing unlisted can hide behind one."""
    found = []
    for top in DATA_DIRS:
        base = root / top
        if base.is_symlink():
            found.append(top)
        elif base.is_dir():
            found += [p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_symlink() and p.is_dir()]
    return sorted(found)


def check_files(folder: str | Path, manifest: Manifest, *, full: bool = False, for_upload: bool = False,
                cache=None, opened: dict | None = None) -> dict[str, str]:
    """Check every listed file against its size and sha256: {path: "ok" | "missing (rebuilt on use)"}.

    Raises `ArtifactError` for a missing data file, a changed file (`ChecksumError`), or a file under
    data/ or index/ that the manifest does not list. For an upload (`for_upload`), index files must be
    present too and no listed file may be a symbolic link; folders may never be. Unchanged files are not
    hashed again unless `full` (see files.VerifiedFiles). With `opened` (a dict), each file is checked
    through a handle opened for it, left open in `opened[path]`: reading that handle later reads
    exactly the bytes that were checked, whatever happens to the path meanwhile."""
    from .errors import ChecksumError
    from .files import VerifiedFiles

    root = Path(folder)
    linked = linked_folders(root)
    if linked:
        raise ArtifactError(f"{', '.join(linked[:3])} in {root} {'is a symbolic link' if len(linked) == 1 else 'are symbolic links'} "
                            "to a folder; an artifact's folders must be plain folders: copy the artifact into one")
    extra = unlisted_files(root, manifest)
    if extra:
        raise ArtifactError(f"{root} holds files its {BUILD_INFO} does not list: {', '.join(extra[:5])}"
                            f"{' ...' if len(extra) > 5 else ''}; remove them or re-download the artifact")
    cache = cache or VerifiedFiles()
    index_paths = {i.path for i in manifest.indexes.values()}
    status = {}
    try:
        for rel, expected in sorted(manifest.files.items()):
            path = root / rel
            if for_upload and _symlink_in(root, rel):
                raise ArtifactError(f"{rel} in {root} is a symbolic link; publishing follows no links: copy the "
                                    "artifact into a plain folder first")
            if _symlink_in(root, rel, folders_only=True):
                raise ArtifactError(f"a folder of {rel} in {root} is a symbolic link; an artifact's folders must be "
                                    "plain folders: copy the artifact into one")
            if not path.is_file():
                if rel in index_paths and not for_upload:
                    status[rel] = "missing (rebuilt on use)"
                    continue
                raise ArtifactError(f"{rel} is missing from {root}; re-download or rebuild the artifact")
            if opened is not None:
                handle = open(path, "rb")
                opened[rel] = handle
                same = (os.fstat(handle.fileno()).st_size == expected.size
                        and cache.matches_handle(handle, path, expected.sha256, full=full))
            else:
                same = path.stat().st_size == expected.size and cache.matches(path, expected.sha256, full=full)
            if not same:
                raise ChecksumError(f"{rel} does not match the sha256 in {BUILD_INFO}: the file is corrupt or was "
                                    "changed; re-download or rebuild the artifact")
            status[rel] = "ok"
    finally:
        cache.save()
    if for_upload and (root / BUILD_INFO).is_symlink():
        raise ArtifactError(f"{BUILD_INFO} in {root} is a symbolic link; copy the artifact into a plain folder first")
    return status


FIGURES = {  # the evaluation's figures (ft_artifacts.figures), by name: path in a report folder and in an artifact
    "activation_by_layer": "figures/activation_by_layer.png",  # paper Figures 2 and 3
    "closest_cosine_by_layer": "figures/closest_cosine_by_layer.png",  # paper Figure 4
    "pca": "figures/pca.png",  # paper Figure 5
    "group_top_k": "figures/group_top_k.png",  # paper Table 4, as a plot
}


FIGURE_FORMATS = ("png", "svg")  # each figure as PNG (linked from cards and report.md) and SVG beside it


def figure_files(name: str) -> list[str]:
    """The files of one figure of `FIGURES`: its PNG path, then the same path as SVG."""
    png = FIGURES[name]
    return [png[: -len(".png")] + f".{kind}" for kind in FIGURE_FORMATS]


def artifact_paths(directions: bool = False) -> list[str]:
    """Every path a pack writes into an artifact folder (the folder holds nothing else); with `directions`,
    the optional `directions` config's files too."""
    optional = [data_file("directions"), index_file(DIRECTIONS_INDEX)] if directions else []
    return ([data_file(c) for c in CONFIGS] + [index_file(n) for n in (VOCAB_INDEX, *OPTIMIZED_CONFIGS)]
            + [CARD, BUILD_INFO, *(f for name in FIGURES for f in figure_files(name))] + optional)
