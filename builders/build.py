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
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ft_artifacts.errors import ArtifactError, DeviceMemoryError, FTError
from ft_artifacts.files import atomic_path
from ft_artifacts.manifest import BUILD_INFO, ModelInfo, artifact_paths, read_manifest
from ft_artifacts.model import LoadedModel, load_model
from ft_artifacts.naming import Neuron
from ft_artifacts.optimize import optimize
from ft_artifacts.precision import check as check_precision
from ft_artifacts.precision import default_precision, deterministic, tf32_flags
from ft_artifacts.pack import pack_artifact
from ft_artifacts.progress import Progress, stage
from ft_artifacts.rows import to_record
from ft_artifacts.settings import check_length, check_selection
from ft_artifacts.schema import features
from ft_artifacts.textualize import make_rows

from . import resume
from .distributed import RankError, World
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
    space_id: str | None = None,
) -> Path:
    """Build (or resume building) the artifact folder `out` and return its path. `repo_id` (where it
    will be published) only fills the card's usage snippet, and `space_id` (the explorer's Space) its link. Under torchrun (`world`), every process
    calls this: rank 0 plans and packs, and each rank optimizes its share of the chunks. A rank that
    fails stops every rank with its message (builders.distributed). On CUDA the whole build runs with
    torch's deterministic algorithms (ft_artifacts.precision.deterministic)."""
    world = world or World()
    try:  # IEEE float32 outside the steps of a tf32 run: the scan, statistics and final values
        with _stop_on_sigterm(), _watch_parent(world), deterministic(device), tf32_flags(False, device):
            return _build(config, Path(out), device=device, precision=precision, progress=progress,
                          keep_work=keep_work, repo_id=repo_id, world=world, space_id=space_id)
    except RankError:
        raise
    except Exception as exc:
        world.fail(str(exc) if isinstance(exc, FTError) else f"{type(exc).__name__}: {exc}")
        raise


def _build(config: BuildConfig, out: Path, *, device, precision, progress, keep_work, repo_id, world: World,
           space_id=None) -> Path:
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
        world.barrier()  # every chunk is written
        peaks = _gather_peaks(lm, world)
        if world.main:
            def runtime() -> dict:  # read as packing ends: rank 0's peak includes packing
                peaks[0] = _own_peak(lm)
                logger.info("peak memory per process: %s", peaks)
                return {"processes": world.size, "peak_memory_bytes": peaks,
                        "wall_seconds": round(time.monotonic() - started, 1), **_chunk_seconds(chunks),
                        "machine": _machine(lm)}

            pack_artifact(out, tables=_tables(lm, plan, chunks, config), model=model_info(lm), settings=config,
                          settings_table=settings_table(config, lm), words=plan.words,
                          nonpositive_max=plan.nonpositive_max, tmp_dir=tmp, progress=stage(progress, "packing"),
                          repo_id=repo_id, runtime=runtime, space_id=space_id)
        world.barrier()
    if world.main and not keep_work:
        resume.clear(work)  # only the files a build writes; anything else stays, and so does its folder
    return out


@contextmanager
def _stop_on_sigterm():
    """SIGTERM stops a build as Ctrl-C does (KeyboardInterrupt: finished chunks kept, temporary files
    left only in `.partial/tmp/`). Only the main thread can set a handler; elsewhere nothing changes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


ORPHAN_POLL_SECONDS = 1.0
ORPHAN_GRACE_SECONDS = 10.0


@contextmanager
def _watch_parent(world: World):
    """Under torchrun, stop this worker when its agent (the parent process) is gone: a worker reparented
    to another process sends itself SIGTERM, and exits outright if it is still running (stuck in a
    collective) after a grace period. So the folder's lock is freed within seconds, not minutes."""
    import os
    import signal
    import threading

    if world.size <= 1:
        yield
        return
    parent, done = os.getppid(), threading.Event()

    def watch():
        while not done.wait(ORPHAN_POLL_SECONDS):
            if os.getppid() != parent:
                logger.error("rank %d: the torchrun agent (pid %d) is gone; stopping", world.rank, parent)
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(ORPHAN_GRACE_SECONDS)  # still here: stuck in a collective, or in leaving the group
                os._exit(1)

    thread = threading.Thread(target=watch, name="ft-artifacts-parent-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


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
    check_selection(*config.selections, error=ArtifactError)
    sample_neurons(lm.num_layers, lm.hidden_size, config.neuron_fraction, config.neuron_seed,
                             config.neurons_per_layer)
    sample_words(lm.tokens, config.random_words, config.curated_words, config.word_seed)
    if config.chunk_rows < 1 or config.scan_batch < 1 or config.nearest < 1:
        raise ArtifactError("chunk_rows, scan_batch and nearest must be positive")
    check_length(config.optim.length, lm.max_length, lm.model_id, option="length", error=ArtifactError,
                 decoder=lm.family.decoder)
    if config.directions:
        from ft_artifacts.directions import check_sources

        check_sources(config.directions, lm.num_layers, lm.hidden_size)


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
        **({"directions": "; ".join(f"{Path(d['file']).name}: {d['rows']} rows in layer {d['layer']} (sha256 "
                                    f"{d['sha256'][:12]}...)" for d in config.directions)} if config.directions else {}),
    }


def check_out(out: Path) -> None:
    """Refuse, touching nothing, an `out` that holds files this package's builds do not write."""
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"--out {out} is a file; pass a folder")
    _check_writable(out)
    if not out.is_dir():
        return
    check_work(out)
    ours = set(artifact_paths(directions=True))
    foreign = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if not p.is_dir() and p.relative_to(out).parts[0] != WORK and p.relative_to(out).as_posix() not in ours)
    if foreign:
        raise ArtifactError(f"--out {out} holds files a build does not write ({', '.join(foreign[:3])}"
                            f"{' ...' if len(foreign) > 3 else ''}); pass an empty or new folder")


def _check_writable(out: Path) -> None:
    """Before any model loads: the folder, or the nearest folder above it that exists, must be writable
    (an OSError naming it otherwise, which the CLI shows as one line)."""
    import errno
    import os

    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"cannot write into this folder, so --out {out} cannot be built",
                              str(existing))
    if existing.exists() and not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"not a folder, so --out {out} cannot be created", str(existing))


def check_work(out: Path) -> None:
    """Refuse, touching nothing, a `.partial/` that is a symbolic link or holds what a build does not write
    (a build deletes only its own files; it follows no links)."""
    work = out / WORK
    if work.is_symlink():
        raise ArtifactError(f"{work} is a symbolic link; a build writes only into a folder of its own: remove the "
                            "link, or pass another --out")
    if work.exists() and not work.is_dir():
        raise ArtifactError(f"{work} is not a folder; remove it, or pass another --out")
    foreign = resume.foreign_entries(work) if work.is_dir() else []
    if foreign:
        raise ArtifactError(f"{work} holds what a build does not write ({', '.join(foreign[:3])}"
                            f"{' ...' if len(foreign) > 3 else ''}); move it away, or pass another --out")


def _identity(config: BuildConfig, lm: LoadedModel) -> dict:
    return {"build": config.to_dict(), "model_revision": lm.revision}


def _finished(out: Path, config: BuildConfig, lm: LoadedModel) -> bool:
    """True when `out` holds a finished artifact of exactly this build; an error when it holds another."""
    if not (out / BUILD_INFO).is_file():
        return False
    manifest = read_manifest(out)
    if {"build": manifest.settings.to_dict(), "model_revision": manifest.model.revision} != _identity(config, lm):
        _refuse_changed_directions(manifest.settings.to_dict(), config)
        raise ArtifactError(
            f"{out} holds a finished artifact with other settings; pass another --out, or delete the folder to rebuild"
        )
    return True


def _refuse_changed_directions(recorded: dict, config: BuildConfig) -> None:
    """One line naming a directions file whose content changed since the recorded build (else nothing)."""
    from ft_artifacts.directions import changed_source

    message = changed_source(recorded.get("directions", ()), config.to_dict().get("directions", ()))
    if message:
        raise ArtifactError(message)


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
            try:
                _refuse_changed_directions(json.loads(marker.read_text())["build"], config)
            except (ValueError, KeyError, TypeError):
                pass
            raise ArtifactError(
                f"{out} holds an unfinished build with other settings; pass another --out, or delete the folder to start over"
            )
    else:
        present = [p for p in artifact_paths(directions=True) if (out / p).exists()]
        if present:
            raise ArtifactError(f"--out {out} holds artifact files ({', '.join(present[:3])}) but no build of its own; "
                                "pass an empty or new folder")
    tmp = work / "tmp"
    resume.clear(work, only="tmp/")  # a killed run's temporary files, and nothing else
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
    owner = resume.identity(_identity(config, lm))
    mine = [job for i, job in enumerate(jobs) if world.mine(i)]
    steps = config.optim.steps
    rows = sum(len(job[3]) for job in mine)
    report = stage(progress, f"optimizing {rows} rows" + (f" (rank {world.rank} of {world.size})" if world.size > 1 else ""))
    for done, (name, _number, path, chunk) in enumerate(mine):
        world.check(force=True)
        which = chunk_identity(owner, path, chunk)
        if _chunk_ok(path, name, len(chunk), which):
            logger.info("resuming: %s already optimized", path.name)
        else:
            def step_report(s, _t, d=done * steps):
                world.check()  # another rank's failure stops this one within a second or a step
                if report:
                    report(d + s, steps * len(mine))

            _write_chunk(lm, plan, config, name, chunk, path, step_report, work / "tmp", which)
        if report:
            report((done + 1) * steps, steps * len(mine))
    return files


def chunk_identity(owner: str, path: Path, targets) -> str:
    """What a chunk must hold: this build's (settings, model), its file name, and its rows in order."""
    return resume.identity({"build": owner, "chunk": path.name, "rows": [t.to_dict() for t in targets]})


def _chunk_record(path: Path, rows: int, which: str) -> dict:
    """The chunk's record (its timing file), vouching for exactly this chunk; `resume.Damaged` otherwise."""
    record = resume.read_record(path.with_suffix(".json"))
    if record.get("identity") != which or record.get("rows") != rows:
        raise resume.Damaged(f"{path.with_suffix('.json').name} records another chunk's rows (swapped, or left by "
                             "another build)")
    return record


def _chunk_bytes(path: Path, rows: int, which: str) -> bytes:
    """A finished chunk's bytes, checked against the sha256 its record holds."""
    record = _chunk_record(path, rows, which)
    return resume.check_entry(path.name, resume.read_bytes(path, resume.PLAN_LIMIT), record)


def _chunk_ok(path: Path, name: str, rows: int, which: str) -> bool:
    """A finished chunk: its record vouches for this chunk's rows, and its bytes match the sha256 recorded
    when it was written. Anything else (a disk error, a truncated copy, a flipped byte, a swapped or
    edited chunk) is named in one log line and optimized again."""
    if not path.exists() and not path.with_suffix(".json").exists():
        return False
    try:
        _chunk_bytes(path, rows, which)
    except resume.Damaged as exc:
        logger.warning("chunk %s is unreadable or changed (%s); optimizing it again", path.name, exc)
        return False
    return True


def _write_chunk(lm, plan: Plan, config: BuildConfig, name: str, targets, path: Path, callback, tmp_dir: Path,
                 which: str):
    """Optimize one chunk and write its rows; then its record beside it (`<chunk>.json`): its sha256,
    what it holds, and its timing, so a build resumed over several sittings still knows what its
    optimization cost."""
    import datasets

    started = time.monotonic()
    try:
        result = optimize(lm, [t.objective for t in targets], config.optim, precision=config.precision,
                          callback=callback)
    except torch.OutOfMemoryError:
        raise _out_of_memory(lm, path, len(targets), config.chunk_rows) from None
    if name == "directions":
        from ft_artifacts.directions import direction_rows

        rows = direction_rows(lm.tokens, torch.from_numpy(plan.analysis), result, targets, config.nearest,
                              config.directions)
    else:
        rows = make_rows(lm.tokens, torch.from_numpy(plan.analysis), result, targets, config.nearest)
    table = datasets.Dataset.from_list([to_record(r) for r in rows], features=features(name))
    path.with_suffix(".json").unlink(missing_ok=True)  # no record vouches for a chunk being rewritten
    with atomic_path(path, tmp_dir=tmp_dir) as tmp:
        table.to_parquet(str(tmp))
        entry = resume.file_entry(tmp.read_bytes())
    resume.write_record(path.with_suffix(".json"), {"seconds": round(time.monotonic() - started, 3),
                                                    "rows": len(targets), "device": str(lm.device),
                                                    "identity": which, **entry}, tmp_dir)


def _out_of_memory(lm, path: Path, rows: int, chunk_rows: int) -> DeviceMemoryError:
    """The one-line error of a chunk that did not fit; the chunks already written stay for a resume."""
    if lm.device.type == "cuda":
        torch.cuda.empty_cache()
    kept = len(list(path.parent.glob("*.parquet")))
    return DeviceMemoryError(
        f"{lm.device} ran out of memory optimizing {path.stem} ({rows} rows); the {kept} finished chunk(s) are "
        f"kept in {path.parent}: free the device's memory and run the same command again to resume, or build "
        f"with a smaller --chunk-rows (e.g. --chunk-rows {max(1, chunk_rows // 2)}) into a new --out")


def _chunk_seconds(chunks: dict[str, list[Path]]) -> dict:
    """The optimization's cost over every sitting and process: the sum of the chunks' own timings, and
    how many chunks had one (a chunk written by a build killed before its timing was saved has none)."""
    timings = []
    for path in (p for files in chunks.values() for p in files):
        try:
            timings.append(float(resume.read_record(path.with_suffix(".json"))["seconds"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return {"optimize_seconds": round(sum(timings), 1), "chunks": sum(map(len, chunks.values())),
            "chunks_timed": len(timings)}


def _read_chunks(files: list[Path], name: str, targets, owner: str, size: int):
    """A config's chunks as one in-memory `datasets.Dataset`, decoded from the bytes checked against
    their records (a chunk changed since it was optimized stops the build: run it again to redo it)."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.table import InMemoryTable

    parts = []
    for number, path in enumerate(files):
        chunk = targets[number * size:(number + 1) * size]
        try:
            data = _chunk_bytes(path, len(chunk), chunk_identity(owner, path, chunk))
        except resume.Damaged as exc:
            raise ArtifactError(f"chunk {path} changed after it was optimized ({exc}); run the build again to "
                                "optimize it again") from None
        parts.append(pq.read_table(pa.BufferReader(data)))
    dataset = datasets.Dataset(InMemoryTable(pa.concat_tables(parts)))
    return dataset if dataset.features == features(name) else dataset.cast(features(name))


def _tables(lm: LoadedModel, plan: Plan, chunks: dict[str, list[Path]], config: BuildConfig) -> dict:
    """The four configs' tables: the optimized chunks, then the vocabulary and every neuron's stats."""
    import datasets

    owner = resume.identity(_identity(config, lm))
    tables = {name: _read_chunks(files, name, plan.rows[name], owner, config.chunk_rows)
              for name, files in chunks.items()}
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
        "top_tokens": [None] * len(names) if plan.top_ids is None else [[lm.tokens[int(t)] for t in col] for col in plan.top_ids.T],
        "top_activations": [None] * len(names) if plan.top_acts is None else list(plan.top_acts.T.astype(np.float32)),
    }, features=features("neuron_stats"))
    return tables
