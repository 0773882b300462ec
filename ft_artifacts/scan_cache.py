"""A loaded model in, its vocabulary scan out, computed once and then reused from the Hugging Face cache folder.

`textualize` needs the scan (every token alone through the model: about 40 of the 61 s a MiniLM run took here) for
a_max, the most activating token and a word's top neurons; it depends only on the model's weights (its
Hub commit, or the sha256 of a local folder's weights file), the dtype, the device type and the torch and
transformers versions. A scan is
stored as `.npy` arrays under `$HF_HOME/ft-artifacts/scans/<key>/` with a `meta.json` written last that
records the key's inputs and every array's sha256 and shape; each file is written atomically. Reading
checks meta.json's key and every array's sha256 and shape (no pickles) and rescans on any mismatch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from .files import atomic_path, sha256_file
from .model import LoadedModel
from .scan import VocabScan, scan_vocabulary

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when the scan's computation changes
ARRAYS = ("acts", "a_max", "argmax", "analysis")


def scan_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where scans live: `cache_dir`, else `$HF_HOME/ft-artifacts/scans` (huggingface_hub's HF_HOME)."""
    if cache_dir is not None:
        return Path(cache_dir)
    home = os.environ.get("HF_HOME")
    if not home:
        from huggingface_hub import constants

        home = constants.HF_HOME
    return Path(home).expanduser() / "ft-artifacts" / "scans"


def scan_key(lm: LoadedModel) -> dict:
    """What a scan depends on. `revision` is the Hub commit or the weights file's sha256 (model.load_model); the
    torch and transformers versions, because their kernels' rounding is part of the result."""
    import torch
    import transformers

    return {"format": FORMAT, "model_id": lm.model_id, "revision": lm.revision, "vocab_size": lm.vocab_size,
            "num_layers": lm.num_layers, "hidden_size": lm.hidden_size, "dtype": str(lm.dtype),
            "device": lm.device.type, "torch": torch.__version__, "transformers": transformers.__version__}


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def _read(folder: Path, key: dict) -> VocabScan | None:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("key") != key:
            raise ValueError("it was made for another model, revision, dtype or device")
        arrays = {}
        for name in ARRAYS:
            entry, path = meta["arrays"][name], folder / f"{name}.npy"
            if sha256_file(path) != entry["sha256"]:
                raise ValueError(f"{name}.npy does not match its sha256")
            arrays[name] = np.load(path, allow_pickle=False, mmap_mode="r" if name == "acts" else None)
            if list(arrays[name].shape) != entry["shape"]:
                raise ValueError(f"{name}.npy has shape {arrays[name].shape}, not {entry['shape']}")
        if arrays["acts"].shape != (key["vocab_size"], key["num_layers"] * key["hidden_size"]):
            raise ValueError("its shape does not fit the model")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring the cached vocabulary scan in %s (%s); scanning again", folder, exc)
        return None
    return VocabScan(acts=arrays["acts"], a_max=np.asarray(arrays["a_max"]), argmax=np.asarray(arrays["argmax"]),
                     analysis=np.asarray(arrays["analysis"]), hidden_size=key["hidden_size"])


def _write(folder: Path, key: dict, scan: VocabScan) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"key": key, "arrays": {}}
    for name in ARRAYS:
        array = np.ascontiguousarray(getattr(scan, name))
        with atomic_path(folder / f"{name}.npy") as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, array, allow_pickle=False)
        meta["arrays"][name] = {"sha256": sha256_file(folder / f"{name}.npy"), "shape": list(array.shape)}
    with atomic_path(folder / "meta.json") as tmp:  # last: a scan without it is never read
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def cached_scan(lm: LoadedModel, *, cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                callback: Callable[[int, int], None] | None = None) -> VocabScan:
    """The model's vocabulary scan: read from the cache when a verified one is there, else computed and stored.
    A cache folder that cannot be written only costs the reuse (logged)."""
    key = scan_key(lm)
    use_cache = use_cache and lm.revision not in ("", "unknown")  # weights we cannot name: never cached
    folder = scan_dir(cache_dir) / _digest(key)
    if use_cache:
        scan = _read(folder, key)
        if scan is not None:
            logger.info("reusing the vocabulary scan cached in %s", folder)
            return scan
    scan = scan_vocabulary(lm, callback=callback)
    if use_cache:
        try:
            _write(folder, key, scan)
        except OSError as exc:
            logger.warning("could not cache the vocabulary scan in %s (%s)", folder, exc)
    return scan
