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
from pathlib import Path
from typing import Callable

import torch

from ft_artifacts.errors import ArtifactError
from ft_artifacts.files import atomic_path
from ft_artifacts.model import LoadedModel, load_model
from ft_artifacts.naming import parse_neuron
from ft_artifacts.optimize import optimize
from ft_artifacts.pack import pack_artifact
from ft_artifacts.schema import features
from ft_artifacts.textualize import describe, target_stats

from .plan import Plan, make_plan
from .presets import BuildConfig

logger = logging.getLogger(__name__)

Progress = Callable[[str], Callable[[int, int], None]]
WORK = ".partial"


def build(
    config: BuildConfig,
    out: str | Path,
    *,
    device: str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    progress: Progress | None = None,
    keep_work: bool = False,
) -> Path:
    """Build (or resume building) the artifact folder `out` and return its path."""
    out = Path(out)
    work = out / WORK
    lm = load_model(config.model, device=device)
    _claim(work, config, lm)
    plan = make_plan(lm, config, work, callback=_stage(progress, "vocabulary scan"))
    chunks = {name: _optimize_config(lm, plan, config, name, work, autocast_dtype, progress) for name in plan.rows}
    pack_artifact(out, lm, config, plan, chunks, progress=_stage(progress, "packing"))
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _stage(progress: Progress | None, name: str):
    return progress(name) if progress else None


def _claim(work: Path, config: BuildConfig, lm: LoadedModel) -> None:
    """Record what this build is; refuse to resume a folder that holds a build with other settings."""
    identity = {"build": config.to_dict(), "model_revision": lm.revision}
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
    report = _stage(progress, f"optimizing {name} ({len(specs)} rows)")
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
    rows = describe(lm, keys, result, objectives, most, config.nearest)
    if specs[0]["config"] == "word_groups":
        vectors = result.analysis[:, config.optim.position - 1]
        for row, extra in zip(rows, target_stats(keys, vectors, [s["target_token_id"] for s in specs])):
            row.update(extra)
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
