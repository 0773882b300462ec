"""A BuildConfig and an output folder in, a finished artifact folder out, resumable at every stage.

Stages, each saved under `<out>/.partial/` by atomic rename before the next starts:
1. plan: vocabulary scan, neuron and word samples, group selection (scan.npz, plan.json)
2. optimize: rows in chunks of `chunk_rows`; each finished chunk is one parquet file
3. pack: datasets, indexes, card and build_info.json (ft_artifacts.pack)
A killed build started again with the same settings skips finished work and ends with the same
artifact: a chunk always holds the same rows in the same order, so it computes the same bits.
Temporary files live in `.partial/tmp/`, so a killed build leaves none in the artifact's folders.
A build writes only its own files: an `--out` holding anything else is refused, untouched.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ft_artifacts.errors import ArtifactError
from ft_artifacts.files import atomic_path
from ft_artifacts.manifest import BUILD_INFO, ModelInfo, artifact_paths, read_manifest
from ft_artifacts.model import LoadedModel, load_model
from ft_artifacts.naming import Neuron
from ft_artifacts.optimize import optimize
from ft_artifacts.precision import check as check_precision
from ft_artifacts.precision import default_precision
from ft_artifacts.pack import pack_artifact
from ft_artifacts.progress import Progress, stage
from ft_artifacts.rows import to_record
from ft_artifacts.scan import SELECTIONS
from ft_artifacts.schema import features
from ft_artifacts.textualize import make_rows

from .distributed import World
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
    precision: str | None = None,
    progress: Progress | None = None,
    keep_work: bool = False,
    repo_id: str | None = None,
    world: World | None = None,
) -> Path:
    """Build (or resume building) the artifact folder `out` and return its path. `repo_id` (where it
    will be published) only fills the card's usage snippet. Under torchrun (`world`), every process
    calls this: rank 0 plans and packs, and each rank optimizes its share of the chunks."""
    world = world or World()
    out = Path(out)
    work = out / WORK
    started = time.monotonic()
    if Path(config.model).expanduser().exists():  # one identity for a local model, however it is spelled
        config = replace(config, model=str(Path(config.model).expanduser().resolve()))
    check_out(out)
    # The steps' precision changes the rows, so it is a setting: recorded, and part of the resume check.
    config = replace(config, precision=check_precision(precision or default_precision(device)))
    lm = load_model(config.model, device=device)
    validate(config, lm)
    if _finished(out, config, lm):
        logger.info("%s already holds this build; nothing to do", out)
        return out
    with _exclusive(out, world):
        tmp = _claim(out, config, lm) if world.main else work / "tmp"
        world.barrier()
        plan = make_plan(lm, config, work, callback=stage(progress, "vocabulary scan"), tmp_dir=tmp) if world.main else None
        world.barrier()
        if plan is None:
            plan = make_plan(lm, config, work, tmp_dir=tmp)  # rank 0's saved plan, read back
        chunks = _optimize(lm, plan, config, work, progress, world)
        peaks = _gather_peaks(lm, world)
        world.barrier()  # every chunk is written
        if world.main:
            def runtime() -> dict:  # read as packing ends: rank 0's peak includes packing
                peaks[0] = _own_peak(lm)
                logger.info("peak memory per process: %s", peaks)
                return {"processes": world.size, "peak_memory_bytes": peaks,
                        "wall_seconds": round(time.monotonic() - started, 1), **_chunk_seconds(chunks),
                        "machine": _machine(lm)}

            pack_artifact(out, tables=_tables(lm, plan, chunks), model=model_info(lm), settings=config.to_dict(),
                          settings_table=settings_table(config, lm), words=plan.words,
                          nonpositive_max=plan.nonpositive_max, tmp_dir=tmp, progress=stage(progress, "packing"),
                          repo_id=repo_id, runtime=runtime)
        world.barrier()
    if world.main and not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return out


@contextmanager
def _exclusive(out: Path, world: World):
    """Hold `<out>/.partial/lock` for the whole build (rank 0 of a torchrun job), so a second build on
    the same folder refuses at once instead of interleaving its files."""
    if not world.main:
        yield
        return
    import fcntl

    lock = out / WORK / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArtifactError(f"another build is writing to {out}; wait for it to finish, or pass another --out") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _own_peak(lm: LoadedModel) -> dict:
    """This process's peak memory so far: resident set size, and GPU memory on CUDA."""
    import resource

    peak = {"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}  # Linux reports KiB
    if lm.device.type == "cuda":
        peak["cuda"] = int(torch.cuda.max_memory_allocated(lm.device))
    return peak


def _machine(lm: LoadedModel) -> dict:
    """Where rank 0 ran: OS, CPU model and count, torch's threads, the device (and GPU name)."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    machine = {"platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "device": str(lm.device)}
    if lm.device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(lm.device)
    return machine


def _gather_peaks(lm: LoadedModel, world: World) -> list[dict]:
    """Every process's peak memory so far, by rank."""
    peak = _own_peak(lm)
    if world.size == 1:
        return [peak]
    import torch.distributed as dist

    peaks: list = [None] * world.size
    dist.all_gather_object(peaks, peak)
    return peaks


def validate(config: BuildConfig, lm: LoadedModel) -> None:
    """Every setting checked against the model before any work or any file is written."""
    config.optim.validate()
    bad_k = [k for k in config.ks if not 1 <= k <= lm.num_neurons]
    if bad_k:
        raise ArtifactError(f"group sizes {bad_k} do not fit this model's {lm.num_neurons} neurons")
    unknown = set(config.selections) - set(SELECTIONS)
    if unknown:
        raise ArtifactError(f"unknown selections {sorted(unknown)}; choose from {', '.join(SELECTIONS)}")
    sample_neurons(lm.num_layers, lm.hidden_size, config.neuron_fraction, config.neuron_seed,
                             config.neurons_per_layer)
    sample_words(lm.tokens, config.random_words, config.curated_words, config.word_seed)
    if config.chunk_rows < 1 or config.scan_batch < 1 or config.nearest < 1:
        raise ArtifactError("chunk_rows, scan_batch and nearest must be positive")
    limit = lm.max_length
    if config.optim.length > limit:
        raise ArtifactError(f"length {config.optim.length} does not fit: {lm.model_id} takes at most {limit} "
                            + ("optimized tokens after BOS" if lm.family.decoder else
                               "optimized tokens between [CLS] and [SEP]"))


def model_info(lm: LoadedModel) -> ModelInfo:
    return ModelInfo(id=lm.model_id, revision=lm.revision, source=lm.source, num_layers=lm.num_layers,
                     hidden_size=lm.hidden_size, vocab_size=lm.vocab_size, family=lm.family.name)


def settings_table(config: BuildConfig, lm: LoadedModel) -> dict[str, str]:
    """The build settings as the card shows them."""
    return {
        "model": f"{lm.model_id} ({lm.revision})",
        "neurons": (f"{config.neurons_per_layer} per layer" if config.neurons_per_layer else
                    f"{config.neuron_fraction:.0%} of each layer") + f", seed {config.neuron_seed}",
        "target words": f"{config.random_words} random (seed {config.word_seed}) + {config.curated_words} curated",
        "group configs": f"{', '.join(config.selections)} × k ∈ {{{', '.join(map(str, config.ks))}}}",
        **{f"optimizer: {k}": str(v) for k, v in config.optim.__dict__.items()},
    }


def check_out(out: Path) -> None:
    """Refuse, touching nothing, an `out` that holds files this package's builds do not write."""
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"--out {out} is a file; pass a folder")
    if not out.is_dir():
        return
    ours = set(artifact_paths())
    foreign = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if not p.is_dir() and p.relative_to(out).parts[0] != WORK and p.relative_to(out).as_posix() not in ours)
    if foreign:
        raise ArtifactError(f"--out {out} holds files a build does not write ({', '.join(foreign[:3])}"
                            f"{' ...' if len(foreign) > 3 else ''}); pass an empty or new folder")


def _identity(config: BuildConfig, lm: LoadedModel) -> dict:
    return {"build": config.to_dict(), "model_revision": lm.revision}


def _finished(out: Path, config: BuildConfig, lm: LoadedModel) -> bool:
    """True when `out` holds a finished artifact of exactly this build; an error when it holds another."""
    if not (out / BUILD_INFO).is_file():
        return False
    manifest = read_manifest(out)
    if {"build": manifest.settings, "model_revision": manifest.model.revision} != _identity(config, lm):
        raise ArtifactError(
            f"{out} holds a finished artifact with other settings; pass another --out, or delete the folder to rebuild"
        )
    return True


def _claim(out: Path, config: BuildConfig, lm: LoadedModel) -> Path:
    """Record what this build is; refuse to resume a folder that holds a build with other settings, or
    artifact files that no unfinished build of ours left there. Returns the temporary-file folder,
    emptied of whatever a killed run left in it."""
    work = out / WORK
    identity = _identity(config, lm)
    marker = work / "build.json"
    if marker.exists():
        try:
            same = json.loads(marker.read_text()) == identity
        except ValueError:
            same = False
        if not same:
            raise ArtifactError(
                f"{out} holds an unfinished build with other settings; pass another --out, or delete the folder to start over"
            )
    else:
        present = [p for p in artifact_paths() if (out / p).exists()]
        if present:
            raise ArtifactError(f"--out {out} holds artifact files ({', '.join(present[:3])}) but no build of its own; "
                                "pass an empty or new folder")
    tmp = work / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        with atomic_path(marker, tmp_dir=tmp) as path:
            path.write_text(json.dumps(identity, sort_keys=True))
    return tmp


def _optimize(lm, plan: Plan, config: BuildConfig, work: Path, progress, world: World):
    """Optimize every config's rows chunk by chunk (this process's share of the chunks under torchrun);
    return every config's chunk files in order."""
    size = config.chunk_rows
    files: dict[str, list[Path]] = {}
    jobs = []
    for name, targets in plan.rows.items():
        files[name] = [work / "chunks" / f"{name}-{i // size:05d}.parquet" for i in range(0, len(targets), size)]
        jobs += [(name, number, path, targets[number * size:(number + 1) * size])
                 for number, path in enumerate(files[name])]
    mine = [job for i, job in enumerate(jobs) if world.mine(i)]
    steps = config.optim.steps
    rows = sum(len(job[3]) for job in mine)
    report = stage(progress, f"optimizing {rows} rows" + (f" (rank {world.rank} of {world.size})" if world.size > 1 else ""))
    for done, (name, _number, path, chunk) in enumerate(mine):
        if _chunk_ok(path, name, len(chunk)):
            logger.info("resuming: %s already optimized", path.name)
        else:
            step_report = (lambda s, _t, d=done * steps: report(d + s, steps * len(mine))) if report else None
            _write_chunk(lm, plan, config, name, chunk, path, step_report, work / "tmp")
        if report:
            report((done + 1) * steps, steps * len(mine))
    return files


def _chunk_ok(path: Path, name: str, rows: int) -> bool:
    """A finished chunk: readable, with this config's columns and the chunk's row count. A damaged
    chunk (a disk error, a truncated copy) is logged and optimized again."""
    if not path.exists():
        return False
    import pyarrow.parquet as pq

    try:
        ok = pq.read_metadata(path).num_rows == rows and pq.read_schema(path).names == list(features(name))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        logger.warning("chunk %s is unreadable (%s); optimizing it again", path.name, exc)
        return False
    if not ok:
        logger.warning("chunk %s does not hold this chunk's rows; optimizing it again", path.name)
    return ok


def _write_chunk(lm, plan: Plan, config: BuildConfig, name: str, targets, path: Path, callback, tmp_dir: Path):
    """Optimize one chunk and write its rows; then its timing beside it (`<chunk>.json`), so a build
    resumed over several sittings still knows what its optimization cost."""
    import datasets

    started = time.monotonic()
    result = optimize(lm, [t.objective for t in targets], config.optim, precision=config.precision, callback=callback)
    rows = make_rows(lm.tokens, torch.from_numpy(plan.analysis), result, targets, config.nearest)
    table = datasets.Dataset.from_list([to_record(r) for r in rows], features=features(name))
    with atomic_path(path, tmp_dir=tmp_dir) as tmp:
        table.to_parquet(str(tmp))
    with atomic_path(path.with_suffix(".json"), tmp_dir=tmp_dir) as tmp:
        tmp.write_text(json.dumps({"seconds": round(time.monotonic() - started, 3), "rows": len(targets),
                                   "device": str(lm.device)}))


def _chunk_seconds(chunks: dict[str, list[Path]]) -> dict:
    """The optimization's cost over every sitting and process: the sum of the chunks' own timings, and
    how many chunks had one (a chunk written by a build killed before its timing was saved has none)."""
    timings = []
    for path in (p for files in chunks.values() for p in files):
        try:
            timings.append(float(json.loads(path.with_suffix(".json").read_text())["seconds"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return {"optimize_seconds": round(sum(timings), 1), "chunks": sum(map(len, chunks.values())),
            "chunks_timed": len(timings)}


def _tables(lm: LoadedModel, plan: Plan, chunks: dict[str, list[Path]]) -> dict:
    """The four configs' tables: the optimized chunks, then the vocabulary and every neuron's stats."""
    import datasets

    from ft_artifacts.schema import read_parquet

    tables = {name: read_parquet(files, name) for name, files in chunks.items()}
    emb = lm.embedding_matrix.detach().float().cpu().numpy()
    tables["vocabulary"] = datasets.Dataset.from_dict({
        "token_id": np.arange(lm.vocab_size, dtype=np.int32),
        "token": lm.tokens,
        "vector": list(plan.analysis),
        "pre_ln_vector": list(emb),
    }, features=features("vocabulary"))
    names = [Neuron.from_flat(i, lm.hidden_size) for i in range(lm.num_neurons)]
    sampled = set(plan.sampled)
    tables["neuron_stats"] = datasets.Dataset.from_dict({
        "neuron": [str(n) for n in names],
        "layer": [n.layer for n in names],
        "index": [n.index for n in names],
        "a_max": plan.a_max,
        "most_activating_token": [lm.tokens[int(t)] for t in plan.argmax],
        "most_activating_token_id": plan.argmax.astype(np.int32),
        "sampled": [str(n) in sampled for n in names],
    }, features=features("neuron_stats"))
    return tables
