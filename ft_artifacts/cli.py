"""Command line in, printed results out: the only module that prints. Each command is one library call."""

from __future__ import annotations

import errno
import functools
import json
import logging
import math
import re
import sys

import click

from .builders.presets import PRESETS
from .errors import FTError
from .precision import PRECISIONS
from .terminal import escape as _safe
from .settings import DEFAULT_GROUP_SIZE, DEFAULT_MODEL, DEFAULT_NEAREST, DEFAULT_SELECTION, SELECTIONS, OptimConfig

DEVICE_HELP = "cpu, cuda, cuda:1, ..., mps, or auto (cuda when available)"
PRECISION_HELP = ("Precision of the optimization steps: fp32, tf32 (TF32 matrix products on CUDA; exactly fp32 "
                  "on CPU) or bf16 (autocast). auto: the device's default, fp32 on CPU and, until measured on "
                  "a GPU, fp32 on CUDA. Final activations are always evaluated in float32.")


_VERBOSITY = {"level": 0}  # -1 quiet, 0 default, 1 verbose: set by the main group, read by _fail_cleanly
_LOG_HANDLER: list = []  # the one handler the CLI puts on ft_artifacts' logger


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _os_error(exc: OSError) -> str:
    """An OSError as "PATH: reason" (both paths for a rename or link)."""
    reason = exc.strerror or _one_line(exc) or type(exc).__name__
    fix = _OS_FIXES.get(exc.errno)
    if fix:
        reason = f"{reason}; {fix}"
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else _one_line(reason)


# What to do about the OS errors a long write meets, which often name no file.
_OS_FIXES = {
    errno.ENOSPC: "the disk is full: free space there, or write to another --out",
    errno.EDQUOT: "the disk quota is used up: free space there, or write to another --out",
    errno.EFBIG: "a file outgrew the file-size limit (ulimit -f): raise the limit, or write elsewhere",
}


def _fail_cleanly(func):
    """Turn every error into one line on stderr and exit status 1: library errors as they are, an OSError as
    "PATH: reason", anything else as its type and message, ending "rerun with -v for the traceback".
    With -v the traceback is printed first."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # the reader of stdout went away (`| head`): nothing left to say to it
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as exc:  # noqa: BLE001 - every error ends as one line
            if _VERBOSITY["level"] > 0:
                import traceback

                click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
            if isinstance(exc, FTError):
                message = _one_line(exc)
            elif isinstance(exc, OSError):
                message = _os_error(exc)
            elif "out of memory" in str(exc).lower():  # CUDA (torch.cuda.OutOfMemoryError) or MPS
                message = (f"{_one_line(exc)[:200]}; lower --chunk-rows (rows per batch), or use --device cpu "
                           "(rerun with -v for the traceback)")
            else:
                message = f"unexpected {type(exc).__name__}: {_one_line(exc)[:300]}; rerun with -v for the traceback"
            raise click.ClickException(message) from None

    return wrapper


def _check_out(option: str, path) -> None:
    """An --out that can be a folder written here, checked before anything slow (model, download) starts."""
    from .files import folder_problem

    problem = folder_problem(path)
    if problem:
        raise FTError(f"{option} {problem}; pass a folder that can be written")


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")


def _device(name: str) -> str:
    """A device the optimizer can run on, checked before anything is loaded."""
    if not _DEVICE.match(name):
        raise FTError(f"--device {name!r} is not a device this tool runs on; use {DEVICE_HELP}")
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FTError(f"--device {name}: no CUDA device is available here; use --device cpu")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise FTError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          f"numbered from 0")
    if name == "mps" and not torch.backends.mps.is_available():
        raise FTError("--device mps: no Apple GPU is available here; use --device cpu")
    return name


def _precision(name: str) -> str | None:
    """The --precision choice for the library (None: the device's default)."""
    return None if name == "auto" else name


class _Bars:
    """Progress bars on stderr, one per stage; library code reports `stage`, then (done, total)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bars: list = []

    def __call__(self, stage: str):
        bar = None

        def update(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:  # created at the first report, so its clock starts with the stage
                from tqdm.auto import tqdm

                self.close()  # the previous stage is over
                bar = tqdm(desc=stage, total=total, file=sys.stderr, disable=not self.enabled, dynamic_ncols=True)
                self._bars.append(bar)
            bar.update(done - bar.n)

        return update

    def close(self) -> None:
        while self._bars:
            self._bars.pop().close()


def _quiet_transformers() -> None:
    """The CLI shows its own progress bars; the libraries' per-file bars would interleave with them."""
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()


_GLOBAL_FLAGS = {"-v": "--verbose", "--verbose": "--verbose", "-q": "--quiet", "--quiet": "--quiet"}


def _global_flags_first(args: list[str]) -> list[str]:
    """-v/-q are the main group's options, accepted after the subcommand too: moved to the front (up to a
    `--`, after which every word is an argument)."""
    end = args.index("--") if "--" in args else len(args)
    flags = [_GLOBAL_FLAGS[a] for a in args[:end] if a in _GLOBAL_FLAGS]
    return flags + [a for a in args[:end] if a not in _GLOBAL_FLAGS] + args[end:]


class _OneLineErrors(click.Group):
    """Usage errors as one line too (`Error: ... (see 'ft-artifacts query --help')`), exit status 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = _global_flags_first(list(sys.argv[1:] if args is None else args))
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"Error: {exc.format_message()}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_OneLineErrors)
@click.version_option(package_name="ft-artifacts")
@click.option("-v", "--verbose", is_flag=True, help="Log ft-artifacts' progress details, and show the traceback of an error.")
@click.option("-q", "--quiet", is_flag=True, help="Log errors only (no warnings).")
def main(verbose: bool, quiet: bool) -> None:
    """Feature textualization for BERT-family models: optimize inputs that maximize neurons,
    build and publish them as Hugging Face datasets, and query them."""
    if verbose and quiet:
        raise click.UsageError("-v and -q exclude each other")
    _VERBOSITY["level"] = 1 if verbose else -1 if quiet else 0
    _configure_logging(logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING)


def _configure_logging(level: int) -> None:
    """ft_artifacts' own loggers at `level`, on stderr; the root logger and other libraries' stay as they are."""
    logger = logging.getLogger("ft_artifacts")
    while _LOG_HANDLER:
        logger.removeHandler(_LOG_HANDLER.pop())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    _LOG_HANDLER.append(handler)
    logger.setLevel(level)


_OPTIM = OptimConfig()  # the optimizer's defaults, declared once in ft_artifacts.settings


def optim_options(func):
    """Options shared by every command that runs the optimizer."""
    options = [
        click.option("--model", default=DEFAULT_MODEL, show_default=True,
                     help="Hub id, local folder, or `minilm` (packaged all-MiniLM-L6-v2, offline)."),
        click.option("--device", default="auto", show_default=True, help=DEVICE_HELP),
        click.option("--precision", type=click.Choice(("auto",) + PRECISIONS), default="auto", show_default=True,
                     help=PRECISION_HELP),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def group_options(func):
    """A word's neuron group: --selection and --group-size."""
    options = [
        click.option("--selection", type=click.Choice(SELECTIONS), default=DEFAULT_SELECTION, show_default=True,
                     help="How the word's neurons are ranked: by activation, or by activation / a_max."),
        click.option("--group-size", "group_size", type=click.IntRange(min=1), default=DEFAULT_GROUP_SIZE,
                     show_default=True, help="Neurons in the word's group (the paper's k)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@click.argument("neurons", nargs=-1)
@optim_options
@click.option("--word", help="Also textualize this word's neuron group (with --selection, --group-size).")
@group_options
@click.option("--steps", type=click.IntRange(min=0), default=_OPTIM.steps, show_default=True,
              help="Gradient-ascent steps (the paper: 5,000). On MiniLM, 50-300 steps recover a group's target word "
                   "best; longer ascents raise neurons' activations (README, docs/results/minilm).")
@click.option("--lr", type=float, default=_OPTIM.lr, show_default=True, help="SGD learning rate (the paper: 100).")
@click.option("--init-std", type=float, default=_OPTIM.init_std, show_default=True, help="x ~ N(0, std^2) in one-hot space.")
@click.option("--seed", type=int, default=_OPTIM.seed, show_default=True,
              help="Seeds each row's starting input, from (seed, objective): the same row starts alike in any batch.")
@click.option("--keep", type=click.Choice(("final", "best")), default="final", show_default=True,
              help="Which input a row holds: the final step's (the paper's method) or its best traced step's "
                   "(reruns the batch to that step; the row's steps then says which).")
@click.option("--no-scan-cache", is_flag=True,
              help="Scan the vocabulary again instead of reusing the scan cached under $HF_HOME/ft-artifacts/scans.")
@click.option("--length", type=click.IntRange(min=1), default=_OPTIM.length, show_default=True,
              help="Optimized tokens between [CLS] and [SEP].")
@click.option("--nearest", type=click.IntRange(min=1), default=DEFAULT_NEAREST, show_default=True,
              help="Nearest tokens to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per objective (the artifact's row columns).")
@click.option("--direction", type=click.Path(dir_okay=False),
              help="Textualize directions in a layer's neuron space instead: a .npy or .safetensors file, one or many rows.")
@click.option("--layer", type=int, help="The layer (1..L) whose neuron space --direction's rows live in.")
@_fail_cleanly
def textualize(neurons, model, device, precision, word, selection, group_size, steps, lr, init_std, seed, keep,
               no_scan_cache, length, nearest, as_json, direction, layer):
    """Textualize neurons (L3.N7 L6.N100) or a word's neuron group (--word crowd) on demand.

    Prints, per objective, the final activation, the most activating vocabulary token and its
    activation, and the nearest tokens by cosine in the analysis space (embedding output). Warns when
    an ascent collapsed below half of its traced peak, or ended below what a single word reaches.
    Exits non-zero, naming them, when optimizations diverged (non-finite values). With --direction FILE
    --layer L, each row of FILE is a direction in layer L's neuron space (objective: sum_i d_i a_i).
    """
    from .rows import to_record
    from .commands import textualize_direction_request, textualize_request

    if (direction is None) != (layer is None):
        raise FTError("--direction and --layer go together: --direction FILE --layer L")
    if direction is not None and (neurons or word):
        raise FTError("--direction cannot be combined with neurons or --word; run them separately")
    if not neurons and not word and direction is None:
        raise FTError("name neurons (e.g. L3.N7) or a word's group (--word crowd)")
    config = OptimConfig(steps=steps, lr=lr, init_std=init_std, seed=seed, length=length)
    config.validate()
    device = _device(device)
    _quiet_transformers()
    bars = _Bars(enabled=not as_json or sys.stderr.isatty())
    try:
        if direction is not None:
            rows = textualize_direction_request(model, direction, layer, config, device=device,
                                                precision=_precision(precision), nearest=nearest,
                                                progress=_Estimate(bars, steps), scan_cache=not no_scan_cache)
        else:
            rows = textualize_request(
                model, list(neurons), word, selection, group_size, config, device=device,
                precision=_precision(precision), nearest=nearest, progress=_Estimate(bars, steps), keep=keep,
                scan_cache=not no_scan_cache,
            )
    finally:
        bars.close()
    from .commands import row_warnings

    for row in rows:
        click.echo(_json_line(to_record(row)) if as_json else _format_row(row))
        for warning in row_warnings(row):
            click.echo(f"warning: {warning}", err=True)
    diverged = [row.label for row in rows if row.diverged]
    if diverged:
        raise FTError(f"the optimization diverged (non-finite values) for {', '.join(diverged)}; "
                      "lower --lr or --init-std")


def _finite_json(value):
    """`value` with every non-finite float as None, so that the output is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


def _json_line(value, **kwargs) -> str:
    """Strict JSON (non-finite numbers as null; a diverged row says `diverged: true` itself)."""
    return json.dumps(_finite_json(value), allow_nan=False, **kwargs)


class _Estimate:
    """Progress that, a few optimizer steps in, states on stderr how long the whole run will take when that is
    more than a minute (measured on this machine, these rows)."""

    AFTER_S, LONG_S = 3.0, 60.0

    def __init__(self, progress, steps: int):
        self.progress, self.steps = progress, steps

    def __call__(self, stage: str):
        inner = self.progress(stage)
        if not stage.startswith("optimizing"):
            return inner
        import time

        start, said = time.perf_counter(), False

        def update(done: int, total: int) -> None:
            nonlocal said
            inner(done, total)
            elapsed = time.perf_counter() - start
            if not said and done and elapsed >= self.AFTER_S:
                said = True
                left = elapsed / done * (total - done)
                if left + elapsed >= self.LONG_S:
                    click.echo(f"textualize: {total:,} steps will take about {_duration(left + elapsed)} here "
                               f"({_duration(left)} left); --steps 300 would take about "
                               f"{_duration(elapsed / done * 300)} (see the README for what each step count gives)",
                               err=True)

        return update

    def close(self) -> None:
        self.progress.close()


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _format_row(row) -> str:
    if row.diverged:
        return f"{_safe(row.label)}: diverged (activation {row.activation}); no nearest tokens"
    near = ", ".join(f"{_safe(n.token)} ({n.cosine:.3f})" for n in row.nearest)
    lines = [
        f"{_safe(row.label)}: activation {row.activation:.3f} | most activating token "
        f"{row.most_activating_token!r} ({row.most_activating_activation:.3f})",
        f"  nearest: {near}",
    ]
    if getattr(row, "target_rank", None) is not None:
        lines.append(f"  target {row.word!r}: rank {row.target_rank}, cosine {row.target_cosine:.3f}")
    return "\n".join(lines)


def hub_options(func):
    """Options for reading an artifact from the Hub, as `hf download` has them."""
    options = [
        click.option("--token", help="Hub token for a private or gated repo (default: HF_TOKEN or `hf auth login`); "
                                     "used for this command only, never printed or stored."),
        click.option("--cache-dir", type=click.Path(file_okay=False),
                     help="Hugging Face cache folder to download into (default: HF_HUB_CACHE)."),
        click.option("--force-download", is_flag=True,
                     help="Download the artifact's files again, replacing a cached copy (a corrupt one, say)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load_artifact(artifacts, revision, token, cache_dir, force_download, **kwargs):
    """`load` with the hub options; the token reaches huggingface_hub through its own HF_TOKEN, in this process only."""
    import os

    from .loader import load

    if token:
        os.environ["HF_TOKEN"] = token
    return load(artifacts, revision=revision, cache_dir=cache_dir, force_download=force_download, **kwargs)


def publish_options(func):
    """Options shared by `build --push` and `push`."""
    options = [
        click.option("--repo-id", help="Hub dataset repo to publish to, e.g. ORG/NAME."),
        click.option("--private", is_flag=True, help="Create the repo as private."),
        click.option("--revision", help="Branch to commit to (created if needed); default main."),
        click.option("--dry-run", is_flag=True, help="Print what would be uploaded (paths, sizes, sha256); touch nothing."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@click.option("--preset", "preset_name", type=click.Choice(list(PRESETS)), default="demo", show_default=True,
              help="demo: packaged MiniLM, minutes on CPU. paper: the paper's settings on bert-base-uncased (GPU).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Artifact folder to write (resumes if unfinished).")
@click.option("--model", default=None, help="Override the preset's model (Hub id, local folder, or minilm).")
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Override the preset's optimization steps.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=None,
              help="Override the preset's rows per batch: the unit of resume and of torchrun's work sharing.")
@click.option("--neurons", default=None,
              help="Override the neuron sample: all (every neuron, an atlas), a percentage of each layer (25%), "
                   "or a count per layer (77).")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP + "; under torchrun, one GPU per process")
@click.option("--precision", type=click.Choice(("auto",) + PRECISIONS), default="auto", show_default=True,
              help=PRECISION_HELP)
@click.option("--push", is_flag=True, help="Publish the finished artifact (needs --repo-id).")
@publish_options
@click.option("--space", metavar="ORG/NAME", help="With --push: also publish its explorer to this static Space.")
@click.option("--directions", "directions_files", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Also optimize every row of this .npy or .safetensors file as a direction in the neuron space of "
                   "--directions-layer: the optional config `directions`. Repeatable.")
@click.option("--directions-layer", "directions_layers", multiple=True, type=int, metavar="L",
              help="The layer (1..L) of the --directions rows: one for every file, or one per file in order.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object ({\"built\": folder, ...}).")
@_fail_cleanly
def build(preset_name, out, model, steps, chunk_rows, neurons, device, precision, push, repo_id, private, revision, dry_run,
          space, directions_files, directions_layers, as_json):
    """Build the artifact folder of a preset: neurons, word_groups, vocabulary and neuron_stats
    datasets (and directions, with --directions), FAISS indexes, dataset card and build_info.json.
    A killed build resumes where it stopped.
    Under torchrun, the processes share the work by chunks and rank 0 packs the same artifact."""
    from .builders.distributed import leave, world_from_env
    from .commands import build_request

    if push and not repo_id:
        raise FTError("--push needs --repo-id ORG/NAME")
    if space and not push:
        raise FTError("--space publishes the explorer beside a push: add --push --repo-id ORG/NAME")
    if space:
        from .card import check_space_id

        check_space_id(space)
    _check_out("--out", out)
    from .directions import direction_sources

    if directions_files and not directions_layers:
        raise FTError("--directions needs --directions-layer L: the layer whose neuron space its rows live in")
    sources = direction_sources(directions_files, directions_layers)  # each file read and checked before the model loads
    world, device = world_from_env(_device(device))
    _quiet_transformers()
    bars = _Bars(enabled=world.main)
    try:
        path = build_request(preset_name, out, model=model, steps=steps, chunk_rows=chunk_rows, neurons=neurons,
                             device=device,
                             precision=_precision(precision), progress=bars,
                             repo_id=repo_id if push else None, world=world, space_id=space if push else None,
                             directions=sources)
    finally:
        bars.close()
        leave(world)
    if not world.main:
        return
    if as_json:
        published = _publish_result(str(path), repo_id, private, revision, dry_run) if push else None
    else:
        click.echo(f"built {_safe(path)}")
        if push:
            _publish(str(path), repo_id, private, revision, dry_run)
    explorer = None
    if push and space and not dry_run:
        import tempfile

        from .explore import explore as write_explorer

        with tempfile.TemporaryDirectory(prefix="ft-explorer-") as tmp:
            explorer = write_explorer(str(path), f"{tmp}/site", push_space_id=space, private=private,
                                      dataset=repo_id)["space"]
        if not as_json:
            click.echo(_safe(f"published its explorer to the Space {explorer['repo_id']}: {explorer['commit_url']}"))
    if as_json:
        click.echo(_json_line({"built": str(path), "published": published,
                               "space": {k: explorer[k] for k in ("repo_id", "commit_url")} if explorer else None}))


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
@publish_options
@click.option("--json", "as_json", is_flag=True, help="Print the result (revision, files, commit URL, removed files) as JSON.")
@_fail_cleanly
def push(folder, repo_id, private, revision, dry_run, as_json):
    """Publish exactly the files an artifact's build_info.json lists (verified first, no symbolic
    links) to a Hub dataset repo in one commit, tagged with its build id; files already on the branch
    that it does not list are deleted in that commit. The token comes from
    huggingface_hub (HF_TOKEN or `hf auth login`) and is never printed."""
    if not repo_id:
        raise FTError("push needs --repo-id ORG/NAME")
    if as_json:
        click.echo(_json_line(_publish_result(folder, repo_id, private, revision, dry_run)))
        return
    _publish(folder, repo_id, private, revision, dry_run)


def _publish_result(folder, repo_id, private, revision, dry_run) -> dict:
    from .commands import publish_request

    return publish_request(folder, repo_id, private=private, revision=revision, dry_run=dry_run)


def _publish(folder, repo_id, private, revision, dry_run):
    result = _publish_result(folder, repo_id, private, revision, dry_run)
    if dry_run:
        click.echo(f"dry run: would upload {len(result['files'])} files to {repo_id}@{result['revision']}")
        for f in result["files"]:
            click.echo(f"  {_safe(f['path'])}  {f['size']} bytes  sha256 {f['sha256']}")
    else:
        click.echo(_safe(f"published {repo_id}@{result['revision']}: {result['commit_url']}"))
        if result["removed"]:
            count = len(result["removed"])
            click.echo(f"removed {count} file{'s' * (count != 1)} that build_info.json does not list: "
                       + ", ".join(map(_safe, result["removed"])))


@main.command()
@click.argument("artifacts")
@click.option("--neuron", help="A neuron name, e.g. L12.N225.")
@click.option("--group", "group_word", help="A target word whose neuron group to query (with --selection, --group-size).")
@group_options
@click.option("--word", help="A single vocabulary token.")
@click.option("--direction", help="A direction of the artifact's optional directions config, e.g. 'L3.probe[0]'.")
@click.option("-n", "--top", type=click.IntRange(min=1), default=DEFAULT_NEAREST, show_default=True,
              help="How many nearest tokens.")
@click.option("--revision", help="Hub revision (branch, tag or commit) when ARTIFACTS is a repo id.")
@click.option("--verify", "full_verify", is_flag=True, help="Hash every file, even those verified before and unchanged.")
@hub_options
@click.option("--skip-special", is_flag=True,
              help="Leave bracketed tokens ([CLS], [PAD], [unused7], ...) out of the list. Default: every token, as "
                   "the artifact's stored nearest columns and the paper's method have them.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {token, cosine}.")
@_fail_cleanly
def query(artifacts, neuron, group_word, selection, group_size, word, direction, top, revision, full_verify, token,
          cache_dir, force_download, skip_special, as_json):
    """Nearest vocabulary tokens to a neuron's or group's optimized input, or to a word, from an
    artifact folder or Hub repo id (exact cosine search in the analysis space)."""
    from .naming import Group

    chosen = {k: v for k, v in (("neuron", neuron), ("group", group_word), ("word", word), ("direction", direction))
              if v}
    if len(chosen) != 1:
        raise FTError("give exactly one of --neuron, --group, --word or --direction")
    if group_word:
        chosen["group"] = Group(group_word, selection, group_size)
    (kind, value), = chosen.items()
    if kind == "neuron":
        from .naming import parse_neuron

        try:
            parse_neuron(value)
        except FTError:
            raise FTError(f"--neuron takes a neuron name like L12.N225 (got {value!r}); for a word use --word, "
                          "for a word's group --group") from None
    hits = _load_artifact(artifacts, revision, token, cache_dir, force_download, full_verify=full_verify).nearest_words(k=top, skip_special=skip_special, **{kind: value})
    if as_json:
        click.echo(_json_line([{"token": h["token"], "cosine": h["cosine"]} for h in hits]))
    else:
        click.echo(f"nearest tokens to {_safe(value)}:")
        for h in hits:
            click.echo(f"  {_safe(h['token']):<20} {h['cosine']:.4f}")


@main.command()
@click.argument("artifacts")
@click.option("--revision", help="Hub revision when ARTIFACTS is a repo id.")
@click.option("--verify", "full_verify", is_flag=True, help="Hash every file, even those verified before and unchanged.")
@click.option("--json", "as_json", is_flag=True, help="Print build_info.json plus the checksum status.")
@hub_options
@click.option("--neurons", "list_neurons", is_flag=True,
              help="List the sampled neurons (what `query --neuron` takes), one line per layer.")
@click.option("--words", "list_words", is_flag=True,
              help="List the group words and their selections and k (what `query --group` takes).")
@click.option("--directions", "list_directions", is_flag=True,
              help="List the directions of the optional directions config (what `query --direction` takes).")
@_fail_cleanly
def info(artifacts, revision, full_verify, as_json, token, cache_dir, force_download, list_neurons, list_words,
         list_directions):
    """What an artifact holds: model, subsets and row counts, build settings, results, checksum status."""
    art = _load_artifact(artifacts, revision, token, cache_dir, force_download, verify=False)
    if list_directions:
        _list_directions(art, as_json)
        return
    if list_neurons or list_words:
        _list_contents(art, list_neurons, list_words, as_json)
        return
    status = art.verify(full=full_verify)
    manifest = art.manifest
    if as_json:
        click.echo(_json_line(dict(manifest.to_dict(), checksums=status), indent=2))
        return
    model = manifest.model
    click.echo(f"{_safe(art.path)}\nmodel: {_safe(model.id)} ({_safe(model.revision)}), {model.num_layers} layers x "
               f"{model.hidden_size}")
    for name, config in manifest.configs.items():
        click.echo(f"  {name:<13} {config.rows:>7} rows")
    click.echo("settings: " + json.dumps(manifest.settings.to_dict(), sort_keys=True))
    evaluation = manifest.evaluation
    if evaluation is not None:
        from .report_markdown import card_section

        click.echo("\n" + _safe(card_section(evaluation, []), keep_newlines=True) + "\n")
    elif manifest.results:
        click.echo("results: stored in an older layout; `ft-artifacts report` recomputes the evaluation from the rows")
    bad = {k: v for k, v in status.items() if v != "ok"}
    click.echo(f"checksums: {len(status) - len(bad)}/{len(status)} ok" + "".join(f"\n  {_safe(k)}: {_safe(v)}" for k, v in bad.items()))


def _list_directions(art, as_json: bool) -> None:
    """`info --directions`: every direction with its file, layer and row (what `query --direction` takes)."""
    from .loader import direction_contents

    listed = direction_contents(art)
    if as_json:
        click.echo(_json_line({"directions": listed}, indent=2))
        return
    click.echo(f"{len(listed)} directions:")
    for d in listed:
        click.echo(_safe(f"  {d['direction']:<24} {d['file']} row {d['row']}, layer {d['layer']}"
                         + (" (diverged)" if d["diverged"] else "")))


def _list_contents(art, list_neurons: bool, list_words: bool, as_json: bool) -> None:
    """`info --neurons` / `--words`: what the artifact's queries accept."""
    from .loader import artifact_contents

    contents = artifact_contents(art)
    shown = {key: contents[key] for key, wanted in (("neurons", list_neurons), ("words", list_words),
                                                    ("groups", list_words)) if wanted}
    if as_json:
        click.echo(_json_line(shown, indent=2))
        return
    if list_neurons:
        by_layer: dict[str, list[str]] = {}
        for name in contents["neurons"]:
            by_layer.setdefault(name.partition(".")[0], []).append(name)
        click.echo(f"{len(contents['neurons'])} neurons:")
        for layer, names in by_layer.items():
            click.echo(f"  {layer}: " + " ".join(names))
    if list_words:
        click.echo(f"{len(contents['words'])} group words: " + " ".join(contents["words"]))
        for selection, ks in contents["groups"].items():
            click.echo(f"  --selection {selection} --group-size " + "|".join(str(k) for k in ks))


@main.command()
@click.argument("artifacts")
@click.option("--out", default="report", show_default=True, type=click.Path(file_okay=False),
              help="Folder to write report.md, report.json and figures/ into.")
@click.option("--revision", help="Hub revision when ARTIFACTS is a repo id.")
@hub_options
@click.option("--json", "as_json", is_flag=True, help="Print {\"out\": folder, \"files\": [...]} as JSON (report.json holds the numbers).")
@_fail_cleanly
def report(artifacts, out, revision, token, cache_dir, force_download, as_json):
    """Regenerate the paper's evaluation from an artifact folder or Hub repo id: report.md, report.json
    and PNG figures (Tables 1-5, Figures 2-5, with the paper's numbers beside them). Needs no model."""
    from .report import write_report

    _check_out("--out", out)
    bars = _Bars()
    try:
        result = write_report(_load_artifact(artifacts, revision, token, cache_dir, force_download), out, progress=bars)
    finally:
        bars.close()
    if as_json:
        click.echo(_json_line({"out": str(out), "files": result["files"]}))
        return
    click.echo(_safe(f"wrote {len(result['files'])} files to {out}: " + ", ".join(result["files"])))


@main.command()
@click.argument("artifact")
@click.option("--out", default="explorer", show_default=True, type=click.Path(file_okay=False),
              help="Folder to write the site into (an earlier site there is replaced).")
@click.option("--revision", help="Hub revision when ARTIFACT is a repo id.")
@click.option("--serve", is_flag=True, help="Then serve the site on 127.0.0.1 (standard library) until Ctrl-C.")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="--serve's port (0: any free one).")
@click.option("--push-space", "push_space", metavar="ORG/NAME", help="Publish the site to this static Hugging Face Space.")
@click.option("--dataset", metavar="ORG/NAME", help="The artifact's dataset repo, linked from the site and the Space.")
@click.option("--private", is_flag=True, help="Create the Space private.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as one JSON object ({\"out\": folder, \"files\": [...], ...}).")
@_fail_cleanly
def explore(artifact, out, revision, serve, port, push_space, dataset, private, as_json):
    """Write a static, offline explorer of an artifact folder or Hub repo id: index.html, its script,
    style and data files (overview, layers, neurons, groups, words). Opens from file:// or any static host;
    needs no model."""
    from .explore import explore as write_explorer

    result = write_explorer(artifact, out, revision=revision, push_space_id=push_space, private=private,
                            dataset=dataset, serve=serve, port=port)
    if as_json:
        click.echo(_json_line({"out": str(result["out"]), "files": [f["path"] for f in result["files"]],
                               "bytes": result["bytes"], "url": result.get("url"),
                               "space": {k: result["space"][k] for k in ("repo_id", "commit_url")}
                               if result.get("space") else None}))
    else:
        click.echo(_safe(f"wrote the explorer to {result['out']} ({len(result['files']) + 1} files, "
                         f"{result['bytes']:,} bytes); open {result['out'].resolve() / 'index.html'}"))
        if result.get("space"):
            click.echo(_safe(f"published {len(result['space']['files'])} files to the Space "
                             f"{result['space']['repo_id']}: {result['space']['commit_url']}"))
    if result.get("server"):
        click.echo(f"serving at {result['url']} (Ctrl-C stops)", err=as_json)
        try:
            result["server"].serve_forever()
        finally:
            result["server"].server_close()


def _summary(command: click.Command) -> str:
    """A command's first sentence, whole: `--help` lists it untruncated."""
    paragraph = " ".join((command.help or "").split("\n\n")[0].split())
    return re.split(r"(?<=[.!?])\s+(?=[A-Z])", paragraph, maxsplit=1)[0]


for _command in main.commands.values():
    _command.short_help = _command.short_help or _summary(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
