"""A BuildConfig and an output folder in, a finished artifact folder out, resumable at every stage.

Stages, each saved under `<out>/.partial/` by atomic rename before the next starts:
1. plan: vocabulary scan, neuron and word samples, group selection (scan.npz, plan.json)
2. optimize: rows in chunks of `chunk_rows`; each finished chunk is one parquet file
3. pack: datasets, indexes, card and build_info.json (ft_artifacts.pack)
A killed build started again with the same settings skips finished work and ends with the same
artifact: every row's initial input depends only on (seed, objective), never on its batch.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from ft_artifacts.errors import ArtifactError
from ft_artifacts.files import atomic_path
from ft_artifacts.model import LoadedModel, load_model
from ft_artifacts.naming import parse_neuron
from ft_artifacts.optimize import optimize
from ft_artifacts.pack import BUILD_INFO, pack_artifact
from ft_artifacts.progress import Progress, stage
from ft_artifacts.scan import SELECTIONS
from ft_artifacts.schema import features
from ft_artifacts.textualize import describe

from .plan import Plan, make_plan
from .presets import BuildConfig
from .sampling import sample_neurons, sample_words

logger = logging.getLogger(__name__)

WORK = ".partial"


def build(
    config: BuildConfig,
    out: str | Path,
    *,
    device: str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    progress: Progress | None = None,
    keep_work: bool = False,
    repo_id: str | None = None,
) -> Path:
    """Build (or resume building) the artifact folder `out` and return its path. `repo_id` (where it
    will be published) only fills the card's usage snippet."""
    out = Path(out)
    work = out / WORK
    if Path(config.model).expanduser().exists():  # one identity for a local model, however it is spelled
        config = replace(config, model=str(Path(config.model).expanduser().resolve()))
    lm = load_model(config.model, device=device)
    validate(config, lm)
    if _finished(out, config, lm):
        logger.info("%s already holds this build; nothing to do", out)
        return out
    _claim(work, config, lm)
    plan = make_plan(lm, config, work, callback=stage(progress, "vocabulary scan"))
    chunks = {name: _optimize_config(lm, plan, config, name, work, autocast_dtype, progress) for name in plan.rows}
    pack_artifact(out, lm, config, plan, chunks, progress=stage(progress, "packing"), repo_id=repo_id)
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return out


def validate(config: BuildConfig, lm: LoadedModel) -> None:
    """Every setting checked against the model before any work or any file is written."""
    config.optim.validate()
    bad_k = [k for k in config.ks if not 1 <= k <= lm.num_neurons]
    if bad_k:
        raise ArtifactError(f"group sizes {bad_k} do not fit this model's {lm.num_neurons} neurons")
    unknown = set(config.selections) - set(SELECTIONS)
    if unknown:
        raise ArtifactError(f"unknown selections {sorted(unknown)}; choose from {', '.join(SELECTIONS)}")
    sample_neurons(lm.num_layers, lm.hidden_size, config.neuron_fraction, config.neuron_seed)
    sample_words(lm.tokens, config.random_words, config.curated_words, config.word_seed)
    if config.chunk_rows < 1 or config.scan_batch < 1 or config.nearest < 1:
        raise ArtifactError("chunk_rows, scan_batch and nearest must be positive")


def _identity(config: BuildConfig, lm: LoadedModel) -> dict:
    return {"build": config.to_dict(), "model_revision": lm.revision}


def _finished(out: Path, config: BuildConfig, lm: LoadedModel) -> bool:
    """True when `out` holds a finished artifact of exactly this build; an error when it holds another."""
    info_path = out / BUILD_INFO
    if not info_path.is_file():
        return False
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if {"build": info.get("build"), "model_revision": info.get("model", {}).get("revision")} != _identity(config, lm):
        raise ArtifactError(
            f"{out} holds a finished artifact with other settings; pass another --out, or delete the folder to rebuild"
        )
    return True


def _claim(work: Path, config: BuildConfig, lm: LoadedModel) -> None:
    """Record what this build is; refuse to resume a folder that holds a build with other settings."""
    identity = _identity(config, lm)
    marker = work / "build.json"
    if marker.exists():
        if json.loads(marker.read_text()) != identity:
            raise ArtifactError(
                f"{work.parent} holds an unfinished build with other settings; "
                "pass another --out, or delete the folder to start over"
            )
        return
    with atomic_path(marker) as tmp:
        tmp.write_text(json.dumps(identity, sort_keys=True))


def _optimize_config(lm, plan: Plan, config: BuildConfig, name: str, work: Path, autocast_dtype, progress):
    """Optimize one config's rows chunk by chunk; return the chunk files in order."""
    specs = plan.rows[name]
    size = config.chunk_rows
    files = [work / "chunks" / f"{name}-{i // size:05d}.parquet" for i in range(0, len(specs), size)]
    total_steps = config.optim.steps * len(files)
    report = stage(progress, f"optimizing {name} ({len(specs)} rows)")
    for number, path in enumerate(files):
        done = number * config.optim.steps
        if path.exists():
            logger.info("resuming: %s already optimized", path.name)
        else:
            chunk = specs[number * size:(number + 1) * size]
            step_report = (lambda s, _t, d=done: report(d + s, total_steps)) if report else None
            _write_chunk(lm, plan, config, chunk, path, autocast_dtype, step_report)
        if report:
            report(done + config.optim.steps, total_steps)
    return files


def _write_chunk(lm, plan: Plan, config: BuildConfig, specs: list[dict], path: Path, autocast_dtype, callback):
    import datasets

    objectives = [plan.objective(s) for s in specs]
    result = optimize(lm, objectives, config.optim, autocast_dtype=autocast_dtype, callback=callback)
    keys = torch.from_numpy(plan.analysis)
    most = [(s["most_activating_token_id"], s["most_activating_activation"]) for s in specs]
    rows = describe(lm, keys, result, objectives, most, config.nearest, [s.get("target_token_id") for s in specs])
    records = [_record(spec, row, config) for spec, row in zip(specs, rows)]
    name = specs[0]["config"]
    table = datasets.Dataset.from_list(records, features=features(name))
    with atomic_path(path) as tmp:
        table.to_parquet(str(tmp))


def _record(spec: dict, row: dict, config: BuildConfig) -> dict:
    """A describe() row plus its plan spec, in the schema's columns."""
    optim = config.optim
    record = {key: row[key] for key in (
        "vector", "pre_ln_vector", "norm", "activation", "most_activating_token", "most_activating_token_id",
        "most_activating_activation", "nearest", "activation_trace", "seed",
    )}
    record.update(steps=optim.steps, lr=optim.lr, init_std=optim.init_std, method=optim.method)
    if spec["config"] == "neurons":
        n = parse_neuron(spec["neurons"][0])
        record.update(neuron=str(n), layer=n.layer, index=n.index)
    else:
        record.update(
            group=spec["label"], word=spec["word"], selection=spec["selection"], k=spec["k"],
            neurons=spec["neurons"], target_token_id=spec["target_token_id"],
            target_rank=row["target_rank"], target_cosine=row["target_cosine"],
            target_activation=spec["target_activation"],
        )
    return record
