"""Command line in, printed results out: the only module that prints. Each command is one library call."""

from __future__ import annotations

import functools
import json
import logging
import re
import sys

import click

from .builders.presets import PRESETS
from .errors import FTError
from .precision import PRECISIONS
from .settings import DEFAULT_GROUP_SIZE, DEFAULT_MODEL, DEFAULT_NEAREST, DEFAULT_SELECTION, SELECTIONS, OptimConfig

DEVICE_HELP = "cpu, cuda, cuda:1, ..., mps, or auto (cuda when available)"
PRECISION_HELP = ("Precision of the optimization steps: fp32, tf32 (TF32 matrix products on CUDA; exactly fp32 "
                  "on CPU) or bf16 (autocast). auto: the device's default, fp32 on CPU and, until measured on "
                  "a GPU, fp32 on CUDA. Final activations are always evaluated in float32.")



def _fail_cleanly(func):
    """Turn library errors into one line on stderr and exit status 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FTError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


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


class _OneLineErrors(click.Group):
    """Usage errors as one line too (`Error: ... (see 'ft-artifacts query --help')`), exit status 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
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
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def main(verbose: bool) -> None:
    """Feature textualization for BERT-family models: optimize inputs that maximize neurons,
    build and publish them as Hugging Face datasets, and query them."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


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
@click.option("--steps", type=click.IntRange(min=0), default=_OPTIM.steps, show_default=True)
@click.option("--lr", type=float, default=_OPTIM.lr, show_default=True)
@click.option("--init-std", type=float, default=_OPTIM.init_std, show_default=True, help="x ~ N(0, std^2) in one-hot space.")
@click.option("--seed", type=int, default=_OPTIM.seed, show_default=True)
@click.option("--length", type=click.IntRange(min=1), default=_OPTIM.length, show_default=True,
              help="Optimized tokens between [CLS] and [SEP].")
@click.option("--nearest", type=click.IntRange(min=1), default=DEFAULT_NEAREST, show_default=True,
              help="Nearest tokens to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per objective (the artifact's row columns).")
@click.option("--direction", type=click.Path(dir_okay=False),
              help="Textualize directions in a layer's neuron space instead: a .npy or .safetensors file, one or many rows.")
@click.option("--layer", type=int, help="The layer (1..L) whose neuron space --direction's rows live in.")
@_fail_cleanly
def textualize(neurons, model, device, precision, word, selection, group_size, steps, lr, init_std, seed, length, nearest,
               as_json, direction, layer):
    """Textualize neurons (e.g. L3.N7 L6.N100) or a word's neuron group (--word crowd) on demand.

    Prints, per objective, the final activation, the most activating vocabulary token and its
    activation, and the nearest tokens by cosine in the analysis space (embedding output). Exits
    non-zero, naming them, when optimizations diverged (non-finite values). With --direction FILE
    --layer L, each row of FILE is a direction in layer L's neuron space (objective: sum_i d_i a_i).
    """
    from .rows import to_record
    from .session import textualize_direction_request, textualize_request

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
                                                precision=_precision(precision), nearest=nearest, progress=bars)
        else:
            rows = textualize_request(
                model, list(neurons), word, selection, group_size, config, device=device,
                precision=_precision(precision), nearest=nearest, progress=bars,
            )
    finally:
        bars.close()
    for row in rows:
        click.echo(json.dumps(to_record(row)) if as_json else _format_row(row))
    diverged = [row.label for row in rows if row.diverged]
    if diverged:
        raise FTError(f"the optimization diverged (non-finite values) for {', '.join(diverged)}; "
                      "lower --lr or --init-std")


def _format_row(row) -> str:
    if row.diverged:
        return f"{row.label}: diverged (activation {row.activation}); no nearest tokens"
    near = ", ".join(f"{n.token} ({n.cosine:.3f})" for n in row.nearest)
    lines = [
        f"{row.label}: activation {row.activation:.3f} | most activating token "
        f"{row.most_activating_token!r} ({row.most_activating_activation:.3f})",
        f"  nearest: {near}",
    ]
    if getattr(row, "target_rank", None) is not None:
        lines.append(f"  target {row.word!r}: rank {row.target_rank}, cosine {row.target_cosine:.3f}")
    return "\n".join(lines)


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
@_fail_cleanly
def build(preset_name, out, model, steps, chunk_rows, neurons, device, precision, push, repo_id, private, revision, dry_run):
    """Build the artifact folder of a preset: neurons, word_groups, vocabulary and neuron_stats
    datasets, FAISS indexes, dataset card and build_info.json. A killed build resumes where it stopped.
    Under torchrun, the processes share the work by chunks and rank 0 packs the same artifact."""
    from .builders.distributed import leave, world_from_env
    from .session import build_request

    if push and not repo_id:
        raise FTError("--push needs --repo-id ORG/NAME")
    world, device = world_from_env(_device(device))
    _quiet_transformers()
    bars = _Bars(enabled=world.main)
    try:
        path = build_request(preset_name, out, model=model, steps=steps, chunk_rows=chunk_rows, neurons=neurons,
                             device=device,
                             precision=_precision(precision), progress=bars,
                             repo_id=repo_id if push else None, world=world)
    finally:
        bars.close()
        leave(world)
    if not world.main:
        return
    click.echo(f"built {path}")
    if push:
        _publish(str(path), repo_id, private, revision, dry_run)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
@publish_options
@_fail_cleanly
def push(folder, repo_id, private, revision, dry_run):
    """Publish exactly the files an artifact's build_info.json lists (verified first, no symbolic
    links) to a Hub dataset repo in one commit, tagged with its build id; files already on the branch
    that it does not list are deleted in that commit. The token comes from
    huggingface_hub (HF_TOKEN or `hf auth login`) and is never printed."""
    if not repo_id:
        raise FTError("push needs --repo-id ORG/NAME")
    _publish(folder, repo_id, private, revision, dry_run)


def _publish(folder, repo_id, private, revision, dry_run):
    from .session import publish_request

    result = publish_request(folder, repo_id, private=private, revision=revision, dry_run=dry_run)
    if dry_run:
        click.echo(f"dry run: would upload {len(result['files'])} files to {repo_id}@{result['revision']}")
        for f in result["files"]:
            click.echo(f"  {f['path']}  {f['size']} bytes  sha256 {f['sha256']}")
    else:
        click.echo(f"published {repo_id}@{result['revision']}: {result['commit_url']}")
        if result["removed"]:
            count = len(result["removed"])
            click.echo(f"removed {count} file{'s' * (count != 1)} that build_info.json does not list: "
                       + ", ".join(result["removed"]))


@main.command()
@click.argument("artifacts")
@click.option("--neuron", help="A neuron name, e.g. L12.N225.")
@click.option("--group", "group_word", help="A target word whose neuron group to query (with --selection, --group-size).")
@group_options
@click.option("--word", help="A single vocabulary token.")
@click.option("-n", "--top", type=click.IntRange(min=1), default=DEFAULT_NEAREST, show_default=True,
              help="How many nearest tokens.")
@click.option("--revision", help="Hub revision (branch, tag or commit) when ARTIFACTS is a repo id.")
@click.option("--verify", "full_verify", is_flag=True, help="Hash every file, even those verified before and unchanged.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {token, cosine}.")
@_fail_cleanly
def query(artifacts, neuron, group_word, selection, group_size, word, top, revision, full_verify, as_json):
    """Nearest vocabulary tokens to a neuron's or group's optimized input, or to a word, from an
    artifact folder or Hub repo id (exact cosine search in the analysis space)."""
    from .loader import load
    from .naming import Group

    chosen = {k: v for k, v in (("neuron", neuron), ("group", group_word), ("word", word)) if v}
    if len(chosen) != 1:
        raise FTError("give exactly one of --neuron, --group or --word")
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
    hits = load(artifacts, revision=revision, full_verify=full_verify).nearest_words(k=top, **{kind: value})
    if as_json:
        click.echo(json.dumps([{"token": h["token"], "cosine": h["cosine"]} for h in hits]))
    else:
        click.echo(f"nearest tokens to {value}:")
        for h in hits:
            click.echo(f"  {h['token']:<20} {h['cosine']:.4f}")


@main.command()
@click.argument("artifacts")
@click.option("--revision", help="Hub revision when ARTIFACTS is a repo id.")
@click.option("--verify", "full_verify", is_flag=True, help="Hash every file, even those verified before and unchanged.")
@click.option("--json", "as_json", is_flag=True, help="Print build_info.json plus the checksum status.")
@_fail_cleanly
def info(artifacts, revision, full_verify, as_json):
    """What an artifact holds: model, subsets and row counts, build settings, results, checksum status."""
    from .loader import load

    art = load(artifacts, revision=revision, verify=False)
    status = art.verify(full=full_verify)
    manifest = art.manifest
    if as_json:
        click.echo(json.dumps(dict(manifest.to_dict(), checksums=status), indent=2))
        return
    model = manifest.model
    click.echo(f"{art.path}\nmodel: {model.id} ({model.revision}), {model.num_layers} layers x {model.hidden_size}")
    for name, config in manifest.configs.items():
        click.echo(f"  {name:<13} {config.rows:>7} rows")
    click.echo("settings: " + json.dumps(manifest.settings, sort_keys=True))
    results = manifest.results
    if results.get("single_neurons"):
        from .summary import markdown

        click.echo("\n" + markdown(results["single_neurons"], results.get("word_groups", [])) + "\n")
    bad = {k: v for k, v in status.items() if v != "ok"}
    click.echo(f"checksums: {len(status) - len(bad)}/{len(status)} ok" + "".join(f"\n  {k}: {v}" for k, v in bad.items()))


@main.command()
@click.argument("artifacts")
@click.option("--out", default="report", show_default=True, type=click.Path(file_okay=False),
              help="Folder to write report.md, report.json and figures/ into.")
@click.option("--revision", help="Hub revision when ARTIFACTS is a repo id.")
@_fail_cleanly
def report(artifacts, out, revision):
    """Regenerate the paper's evaluation from an artifact folder or Hub repo id: report.md, report.json
    and PNG figures (Tables 1-5, Figures 2-5, with the paper's numbers beside them). Needs no model."""
    from .report import write_report

    bars = _Bars()
    try:
        result = write_report(artifacts, out, progress=bars, revision=revision)
    finally:
        bars.close()
    click.echo(f"wrote {len(result['files'])} files to {out}: " + ", ".join(result["files"]))


if __name__ == "__main__":  # pragma: no cover
    main()
