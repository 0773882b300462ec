"""An artifact folder or Hub repo id in, its subsets as `datasets.Dataset`s and exact cosine lookups out.

    import ft_artifacts
    art = ft_artifacts.load("ORG/NAME")           # or a local folder
    art.neurons                                   # datasets.Dataset
    art.nearest_words("L12.N225", k=10)           # [{"token", "cosine", "token_id"}, ...]
    art.neurons_near("crowd", k=5)                # [{"name", "config", "cosine"}, ...]
"""

from __future__ import annotations

import json
import logging
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, ChecksumError
from .index import build_index, read_index, search
from .files import sha256_file
from .naming import parse_neuron
from .pack import BUILD_INFO, OPTIMIZED_INDEX, VOCAB_INDEX
from .schema import CONFIGS, read_parquet

logger = logging.getLogger(__name__)

_NEURON = re.compile(r"^L\d+\.N\d+$")


def load(path_or_repo_id: str | Path, revision: str | None = None, *, verify: bool = True,
         cache_dir: str | None = None) -> "Artifact":
    """Open a local artifact folder, or download a Hub dataset repo (cached; honours HF_HUB_OFFLINE)."""
    path = Path(path_or_repo_id).expanduser()
    if not path.exists():
        text = str(path_or_repo_id)
        if text.startswith((".", "/", "~")) or text.count("/") != 1:
            raise ArtifactError(f"{text}: no such artifact folder (a Hub repo id looks like ORG/NAME)")
        from .publish import download_artifact

        path = download_artifact(text, revision=revision, cache_dir=cache_dir)
    artifact = Artifact(path)
    if verify:
        artifact.verify()
    return artifact


class Artifact:
    """A built artifact: subsets, build settings, and exact nearest-neighbour queries."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        info = self.path / BUILD_INFO
        if not info.is_file():
            raise ArtifactError(f"{self.path} is not an ft-artifacts artifact: {BUILD_INFO} is missing")
        try:
            self.build_info: dict = json.loads(info.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{info} is corrupt ({exc}); rebuild or re-download the artifact") from exc
        missing = [key for key in ("model", "configs", "files") if not isinstance(self.build_info, dict)
                   or not isinstance(self.build_info.get(key), dict)]
        if missing:
            raise ArtifactError(f"{info} is corrupt (no {', '.join(missing)} section); rebuild or re-download "
                                "the artifact")
        self._subsets: dict[str, Any] = {}

    def __repr__(self) -> str:
        rows = ", ".join(f"{n}={c['rows']}" for n, c in self.build_info["configs"].items())
        return f"Artifact({str(self.path)!r}, model={self.build_info['model']['id']!r}, {rows})"

    # --- integrity -------------------------------------------------------------------------------
    def verify(self) -> dict[str, str]:
        """Check every recorded file's size and sha256: {path: "ok" | "missing (rebuilt on use)"}.
        A data file that is missing or differs raises; a missing index file is rebuilt when used."""
        status = {}
        for rel, expected in self.build_info.get("files", {}).items():
            path = self.path / rel
            if not path.is_file():
                if rel.startswith("index/"):
                    status[rel] = "missing (rebuilt on use)"
                    continue
                raise ArtifactError(f"{rel} is missing from {self.path}; re-download or rebuild the artifact")
            if path.stat().st_size != expected["size"] or sha256_file(path) != expected["sha256"]:
                raise ChecksumError(f"{rel} does not match the sha256 in {BUILD_INFO}: the file is corrupt or was "
                                    "changed; re-download or rebuild the artifact")
            status[rel] = "ok"
        return status

    # --- subsets ---------------------------------------------------------------------------------
    def subset(self, name: str):
        """One config as a `datasets.Dataset` (read from parquet, in memory, no cache written)."""
        if name not in CONFIGS:
            raise ArtifactError(f"unknown config {name!r}; this artifact has {', '.join(CONFIGS)}")
        if name not in self._subsets:
            files = [self.path / f for f in self.build_info["configs"].get(name, {}).get("files", [])]
            if not files or not all(f.is_file() for f in files):
                raise ArtifactError(f"config {name!r} is missing from {self.path}; re-download or rebuild the artifact")
            try:
                self._subsets[name] = read_parquet(files, name)
            except Exception as exc:  # pyarrow and datasets raise several types for a damaged file
                raise ArtifactError(f"cannot read the parquet files of config {name!r} ({exc}); re-download or rebuild "
                                    "the artifact") from exc
        return self._subsets[name]

    neurons = property(lambda self: self.subset("neurons"))
    word_groups = property(lambda self: self.subset("word_groups"))
    vocabulary = property(lambda self: self.subset("vocabulary"))
    neuron_stats = property(lambda self: self.subset("neuron_stats"))

    @property
    def hidden_size(self) -> int:
        return int(self.build_info["model"]["hidden_size"])

    # --- indexes ---------------------------------------------------------------------------------
    @cached_property
    def vocab_index(self):
        return self._index(VOCAB_INDEX, lambda: self._vectors("vocabulary"))

    @cached_property
    def optimized_index(self):
        return self._index(OPTIMIZED_INDEX, lambda: np.concatenate([self._vectors("neurons"), self._vectors("word_groups")]))

    def _index(self, rel: str, vectors):
        path = self.path / rel
        if path.is_file():
            return read_index(path)
        logger.warning("%s is missing; rebuilding it from the artifact's vectors", rel)
        return build_index(vectors())

    def _vectors(self, name: str) -> np.ndarray:
        data = self.subset(name).with_format("numpy")["vector"]
        return np.asarray(data, dtype=np.float32).reshape(len(self.subset(name)), self.hidden_size)

    @cached_property
    def _tokens(self) -> list[str]:
        return self.vocabulary["token"]

    @cached_property
    def _rows(self) -> dict[str, dict[str, int]]:
        return {"neurons": {n: i for i, n in enumerate(self.neurons["neuron"])},
                "word_groups": {g: i for i, g in enumerate(self.word_groups["group"])},
                "vocabulary": {t: i for i, t in enumerate(self._tokens)}}

    # --- queries ---------------------------------------------------------------------------------
    def vector(self, query) -> np.ndarray:
        """The analysis-space vector(s) [n, h] of a neuron name, group key, (word, selection, k),
        a vocabulary word, or raw vectors ([h] or [n, h])."""
        if isinstance(query, tuple) and len(query) == 3:
            query = "/".join(map(str, query))
        if not isinstance(query, str):
            try:
                vectors = np.asarray(query, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise ArtifactError(f"cannot use {query!r:.80} as a query: give a neuron name, a group key, a word, "
                                    f"or vectors of shape [{self.hidden_size}] or [n, {self.hidden_size}]") from exc
            vectors = vectors.reshape(1, -1) if vectors.ndim == 1 else vectors
            if vectors.ndim != 2 or vectors.shape[1] != self.hidden_size:
                raise ArtifactError(f"query vectors must have shape [{self.hidden_size}] or [n, {self.hidden_size}], "
                                    f"got {tuple(np.shape(query))}")
            if not np.isfinite(vectors).all():
                raise ArtifactError("query vectors contain NaN or infinite values")
            return vectors
        name, row = self._row(query)
        return np.asarray(self.subset(name)[row]["vector"], dtype=np.float32).reshape(1, -1)

    def _row(self, query: str) -> tuple[str, int]:
        if _NEURON.match(query):
            model = self.build_info["model"]
            parse_neuron(query, model["num_layers"], model["hidden_size"])
            return "neurons", self._lookup("neurons", query, "neuron is not in this artifact's sample; "
                                           "`ft-artifacts info` lists the sampled neurons")
        if "/" in query and (query in self._rows["word_groups"] or query not in self._rows["vocabulary"]):
            return "word_groups", self._lookup("word_groups", query, "group is not in this artifact; groups are "
                                               "WORD/SELECTION/K with words " + ", ".join(self.build_info["words"][:8]))
        return "vocabulary", self._lookup("vocabulary", query, "word is not a token of this model's vocabulary")

    def _lookup(self, name: str, key: str, why: str) -> int:
        row = self._rows[name].get(key)
        if row is None:
            raise ArtifactError(f"{key!r}: {why}")
        return row

    def nearest_words(self, query, k: int = 10):
        """Nearest vocabulary tokens by cosine in the analysis space: a list of {"token", "cosine",
        "token_id"} for one query, or one such list per row for a batch of vectors."""
        vectors = self.vector(query)
        cosines, ids = search(self.vocab_index, vectors, _check_k(k))
        results = [[{"token": self._tokens[int(i)], "cosine": float(c), "token_id": int(i)}
                    for c, i in zip(cs, row)] for cs, row in zip(cosines, ids)]
        return results if _is_batch(query) else results[0]

    def neurons_near(self, query, k: int = 10):
        """Neurons and groups whose optimized inputs lie nearest (cosine) to a word, name or vectors:
        a list of {"name", "config", "cosine"} (one list per row for a batch of vectors)."""
        vectors = self.vector(query)
        cosines, ids = search(self.optimized_index, vectors, _check_k(k))
        n_neurons = self.build_info["configs"]["neurons"]["rows"]
        names = {"neurons": self.neurons["neuron"], "word_groups": self.word_groups["group"]}
        results = []
        for cs, row in zip(cosines, ids):
            hits = []
            for c, i in zip(cs, row):
                config, j = ("neurons", int(i)) if i < n_neurons else ("word_groups", int(i) - n_neurons)
                hits.append({"name": names[config][j], "config": config, "cosine": float(c)})
            results.append(hits)
        return results if _is_batch(query) else results[0]


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ArtifactError(f"k must be a positive integer (got {k!r})")
    return int(k)


def _is_batch(query) -> bool:
    return not isinstance(query, (str, tuple)) and np.ndim(query) == 2
