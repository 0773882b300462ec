"""build_info.json in and out: the typed manifest that says exactly what an artifact holds.

Written once by the packer, read (and validated) by the loader, the CLI, the publisher and the
builder's resume check. Nothing else reads build_info.json. Reading validates everything: types,
every path relative and inside the folder, every data and index file of every config listed with
its checksum, index shapes consistent with the configs. Anything else is one `ArtifactError`.
This module imports neither torch nor datasets.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import ArtifactError
from .files import atomic_path

FORMAT_VERSION = 2
BUILD_INFO = "build_info.json"
CARD = "README.md"
CONFIGS = ("neurons", "word_groups", "vocabulary", "neuron_stats")
DEFAULT_CONFIG = "neurons"
OPTIMIZED_CONFIGS = ("neurons", "word_groups")  # rows with an optimized input, in optimized-index order
VOCAB_INDEX = "vocab"
OPTIMIZED_INDEX = "optimized"
INDEX_KIND = "IndexFlatIP"
INDEX_METRIC = "cosine (IndexFlatIP over L2-normalized float32 vectors)"
DATA_DIRS = ("data", "index")  # folders whose every file must be listed

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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


@dataclass
class Manifest:
    """Everything build_info.json records. `files` covers every file of the artifact except
    build_info.json itself; `settings` is the builder's configuration, recorded as given."""

    model: ModelInfo
    settings: dict[str, Any]
    words: list[str]
    nonpositive_max: int  # neurons with a_max <= 0: never selected by relative selection
    configs: dict[str, ConfigEntry]
    indexes: dict[str, IndexEntry]
    results: dict[str, Any]
    versions: dict[str, str | None]
    files: dict[str, FileEntry] = field(default_factory=dict)
    default_config: str = DEFAULT_CONFIG
    spaces: dict[str, str] = field(default_factory=lambda: {
        "vector": "embedding layer output after LayerNorm, at the optimized position (analysis space)",
        "pre_ln_vector": "x @ E: the token part of the embedding, before position/type embeddings and LayerNorm",
    })
    relative_policy: str = "neurons with a_max <= 0 are never selected by relative selection"
    runtime: dict[str, Any] = field(default_factory=dict)  # how this run went: processes, peak memory, wall time
    format_version: int = FORMAT_VERSION

    # --- derived ---------------------------------------------------------------------------------
    def payload_files(self) -> list[str]:
        """The files the configs and indexes consist of (each also in `files`)."""
        paths = [f for c in self.configs.values() for f in c.files]
        return paths + [i.path for i in self.indexes.values()]

    def published_files(self) -> list[str]:
        """Every file a push uploads, build_info.json last."""
        return sorted(self.files) + [BUILD_INFO]

    def build_id(self) -> str:
        """Names this exact build: the first 12 hex digits of the sha256 of its canonical JSON."""
        import hashlib

        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    # --- (de)serialization -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
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
    if path.stat().st_size > 64 << 20:
        raise ArtifactError(f"{path} is larger than 64 MiB; it is not a build_info.json this package wrote")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is corrupt ({exc}); rebuild or re-download the artifact") from exc
    return Manifest.from_dict(data, str(path))


def write_manifest(folder: str | Path, manifest: Manifest, tmp_dir: str | Path | None = None) -> None:
    Manifest.from_dict(manifest.to_dict())  # never write what could not be read back
    with atomic_path(Path(folder) / BUILD_INFO, tmp_dir=tmp_dir) as tmp:
        tmp.write_text(manifest.to_json(), encoding="utf-8")


def check_relative_path(path: Any, where: str = BUILD_INFO) -> str:
    """A POSIX path relative to the artifact folder and inside it; `ArtifactError` otherwise."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        raise ArtifactError(f"{where}: invalid file path {path!r}; rebuild or re-download the artifact")
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
        version = self.get(data, "format_version", int)
        if version != FORMAT_VERSION:
            raise ArtifactError(f"{self.where}: format version {version}, but this ft-artifacts reads version "
                                f"{FORMAT_VERSION}; rebuild the artifact or use a matching ft-artifacts")
        files = self.files(self.get(data, "files", dict))
        model = self.model(self.get(data, "model", dict))
        configs = self.configs(self.get(data, "configs", dict))
        indexes = self.indexes(self.get(data, "indexes", dict), configs, model)
        default = self.get(data, "default_config", str)
        if default not in configs:
            raise self.fail(f"default_config {default!r} is not a config")
        manifest = Manifest(
            model=model,
            settings=self.get(data, "settings", dict),
            words=self.strings(self.get(data, "words", list), "words"),
            nonpositive_max=self.count(data, "nonpositive_max"),
            configs=configs,
            indexes=indexes,
            results=self.get(data, "results", dict),
            versions=self.get(data, "versions", dict),
            files=files,
            default_config=default,
            spaces=self.get(data, "spaces", dict),
            relative_policy=self.get(data, "relative_policy", str),
            runtime=self.get(data, "runtime", dict),
            format_version=version,
        )
        unlisted = [p for p in manifest.payload_files() if p not in files]
        if unlisted:
            raise self.fail(f"{', '.join(unlisted)} {'is' if len(unlisted) == 1 else 'are'} not listed with a "
                            "checksum in 'files'")
        return manifest

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
        if missing or set(data) - set(CONFIGS):
            raise self.fail(f"'configs' must name exactly {', '.join(CONFIGS)}")
        out = {}
        for name in CONFIGS:
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

    def indexes(self, data: dict, configs: dict[str, ConfigEntry], model: ModelInfo) -> dict[str, IndexEntry]:
        expected = {VOCAB_INDEX: ("vocabulary",), OPTIMIZED_INDEX: OPTIMIZED_CONFIGS}
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


def _symlink_in(root: Path, rel: str) -> bool:
    path = root
    for part in rel.split("/"):
        path = path / part
        if path.is_symlink():
            return True
    return False


def check_files(folder: str | Path, manifest: Manifest, *, full: bool = False, for_upload: bool = False,
                cache=None) -> dict[str, str]:
    """Check every listed file against its size and sha256: {path: "ok" | "missing (rebuilt on use)"}.

    Raises `ArtifactError` for a missing data file, a changed file (`ChecksumError`), or a file under
    data/ or index/ that the manifest does not list. For an upload (`for_upload`), index files must be
    present too and no listed file may be a symbolic link. Unchanged files are not hashed again
    unless `full` (see files.VerifiedFiles)."""
    from .errors import ChecksumError
    from .files import VerifiedFiles

    root = Path(folder)
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
            if not path.is_file():
                if rel in index_paths and not for_upload:
                    status[rel] = "missing (rebuilt on use)"
                    continue
                raise ArtifactError(f"{rel} is missing from {root}; re-download or rebuild the artifact")
            if path.stat().st_size != expected.size or not cache.matches(path, expected.sha256, full=full):
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


def artifact_paths() -> list[str]:
    """Every path a pack writes into an artifact folder (the folder holds nothing else)."""
    return [data_file(c) for c in CONFIGS] + [index_file(VOCAB_INDEX), index_file(OPTIMIZED_INDEX), CARD, BUILD_INFO,
                                              *FIGURES.values()]
