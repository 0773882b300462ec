"""Command line in, printed results out: the only module that prints. Each command is one library call."""

from __future__ import annotations

import functools
import json
import logging
import sys

import click

from .errors import FTError
from .precision import PRECISIONS

DEVICE_HELP = "cpu, cuda, cuda:1, ... or auto (cuda when available)"
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


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FTError(f"--device {name}: no CUDA device is available here; use --device cpu")
    return name


def _precision(name: str):
    """The --precision choice as a scope for the library's optimizer (auto: the device's default)."""
    from .precision import preferred

    return preferred(None if name == "auto" else name)


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


@click.group()
@click.version_option(package_name="ft-artifacts")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def main(verbose: bool) -> None:
    """Feature textualization for BERT-family models: optimize inputs that maximize neurons,
    build and publish them as Hugging Face datasets, and query them."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def optim_options(func):
    """Options shared by every command that runs the optimizer."""
    options = [
        click.option("--model", default="bert-base-uncased", show_default=True,
                     help="Hub id, local folder, or `minilm` (packaged all-MiniLM-L6-v2, offline)."),
        click.option("--device", default="auto", show_default=True, help=DEVICE_HELP),
        click.option("--precision", type=click.Choice(("auto",) + PRECISIONS), default="auto", show_default=True,
                     help=PRECISION_HELP),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@click.argument("neurons", nargs=-1)
@optim_options
@click.option("--word", help="Textualize this word's neuron group instead of single neurons.")
@click.option("--selection", type=click.Choice(["absolute", "relative"]), default="relative", show_default=True)
@click.option("--k", "k", type=int, default=250, show_default=True, help="Neurons in the word's group.")
@click.option("--steps", type=int, default=5000, show_default=True)
@click.option("--lr", type=float, default=100.0, show_default=True)
@click.option("--init-std", type=float, default=1.0, show_default=True, help="x ~ N(0, std^2) in one-hot space.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--length", type=int, default=1, show_default=True, help="Optimized tokens between [CLS] and [SEP].")
@click.option("--nearest", type=int, default=10, show_default=True, help="Nearest tokens to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per objective.")
@_fail_cleanly
def textualize(neurons, model, device, precision, word, selection, k, steps, lr, init_std, seed, length, nearest, as_json):
    """Textualize neurons (e.g. L3.N7 L6.N100) or a word's neuron group (--word crowd) on demand.

    Prints, per objective, the final activation, the most activating vocabulary token and its
    activation, and the nearest tokens by cosine in the analysis space (embedding output).
    """
    from .optimize import OptimConfig
    from .session import textualize_request

    _quiet_transformers()
    if not neurons and not word:
        raise FTError("name neurons (e.g. L3.N7) or a word's group (--word crowd)")
    config = OptimConfig(steps=steps, lr=lr, init_std=init_std, seed=seed, length=length)
    bars = _Bars(enabled=not as_json or sys.stderr.isatty())
    try:
        with _precision(precision):
            rows = textualize_request(
                model, list(neurons), word, selection, k, config, device=_device(device),
                nearest=nearest, progress=bars,
            )
    finally:
        bars.close()
    for row in rows:
        click.echo(json.dumps(row) if as_json else _format_row(row))


def _format_row(row: dict) -> str:
    near = ", ".join(f"{n['token']} ({n['cosine']:.3f})" for n in row["nearest"])
    lines = [
        f"{row['objective']}: activation {row['activation']:.3f} | most activating token "
        f"{row['most_activating_token']!r} ({row['most_activating_activation']:.3f})",
        f"  nearest: {near}",
    ]
    if "target_rank" in row:
        lines.append(f"  target {row['target_word']!r}: rank {row['target_rank']}, cosine {row['target_cosine']:.3f}")
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
@click.option("--preset", "preset_name", type=click.Choice(["demo", "paper"]), default="demo", show_default=True,
              help="demo: packaged MiniLM, minutes on CPU. paper: the paper's settings on bert-base-uncased (GPU).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Artifact folder to write (resumes if unfinished).")
@click.option("--model", default=None, help="Override the preset's model (Hub id, local folder, or minilm).")
@click.option("--steps", type=int, default=None, help="Override the preset's optimization steps.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--precision", type=click.Choice(("auto",) + PRECISIONS), default="auto", show_default=True,
              help=PRECISION_HELP)
@click.option("--push", is_flag=True, help="Publish the finished artifact (needs --repo-id).")
@publish_options
@_fail_cleanly
def build(preset_name, out, model, steps, device, precision, push, repo_id, private, revision, dry_run):
    """Build the artifact folder of a preset: neurons, word_groups, vocabulary and neuron_stats
    datasets, FAISS indexes, dataset card and build_info.json. A killed build resumes where it stopped."""
    from .session import build_request

    if push and not repo_id:
        raise FTError("--push needs --repo-id ORG/NAME")
    _quiet_transformers()
    bars = _Bars()
    try:
        with _precision(precision):
            path = build_request(preset_name, out, model=model, steps=steps, device=_device(device),
                                 progress=bars, repo_id=repo_id if push else None)
    finally:
        bars.close()
    click.echo(f"built {path}")
    if push:
        _publish(str(path), repo_id, private, revision, dry_run)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
@publish_options
@_fail_cleanly
def push(folder, repo_id, private, revision, dry_run):
    """Publish an artifact folder to a Hub dataset repo in one commit, tagged with its build id.
    The token comes from huggingface_hub (HF_TOKEN or `hf auth login`) and is never printed."""
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


@main.command()
@click.argument("artifacts")
@click.option("--neuron", help="A neuron name, e.g. L12.N225.")
@click.option("--group", "word_group", help="A target word whose neuron group to query (with --selection, --k).")
@click.option("--selection", type=click.Choice(["absolute", "relative"]), default="relative", show_default=True)
@click.option("--k", "group_k", type=int, default=250, show_default=True, help="Group size for --group.")
@click.option("--word", help="A vocabulary word.")
@click.option("-k", "top", type=int, default=10, show_default=True, help="How many nearest tokens.")
@click.option("--revision", help="Hub revision (branch, tag or commit) when ARTIFACTS is a repo id.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {token, cosine}.")
@_fail_cleanly
def query(artifacts, neuron, word_group, selection, group_k, word, top, revision, as_json):
    """Nearest vocabulary tokens to a neuron's or group's optimized input, or to a word, from an
    artifact folder or Hub repo id (exact cosine search in the analysis space)."""
    from .loader import load

    chosen = [q for q in (neuron, word_group, word) if q]
    if len(chosen) != 1:
        raise FTError("give exactly one of --neuron, --group or --word")
    key = f"{word_group}/{selection}/{group_k}" if word_group else chosen[0]
    hits = load(artifacts, revision=revision).nearest_words(key, k=top)
    if as_json:
        click.echo(json.dumps([{"token": h["token"], "cosine": h["cosine"]} for h in hits]))
    else:
        click.echo(f"nearest tokens to {key}:")
        for h in hits:
            click.echo(f"  {h['token']:<20} {h['cosine']:.4f}")


@main.command()
@click.argument("artifacts")
@click.option("--revision", help="Hub revision when ARTIFACTS is a repo id.")
@click.option("--json", "as_json", is_flag=True, help="Print build_info.json plus the checksum status.")
@_fail_cleanly
def info(artifacts, revision, as_json):
    """What an artifact holds: model, subsets and row counts, build settings, checksum status."""
    from .loader import load

    art = load(artifacts, revision=revision, verify=False)
    status = art.verify()
    if as_json:
        click.echo(json.dumps(dict(art.build_info, checksums=status), indent=2))
        return
    model, build_cfg = art.build_info["model"], art.build_info["build"]
    click.echo(f"{art.path}\nmodel: {model['id']} ({model['revision']}), {model['num_layers']} layers x {model['hidden_size']}")
    for name, config in art.build_info["configs"].items():
        click.echo(f"  {name:<13} {config['rows']:>7} rows")
    click.echo("settings: " + json.dumps(build_cfg, sort_keys=True))
    results = art.build_info.get("results", {})
    if results.get("single_neurons"):
        from .summary import markdown

        click.echo("\n" + markdown(results["single_neurons"], results.get("word_groups", [])) + "\n")
    bad = {k: v for k, v in status.items() if v != "ok"}
    click.echo(f"checksums: {len(status) - len(bad)}/{len(status)} ok" + "".join(f"\n  {k}: {v}" for k, v in bad.items()))


if __name__ == "__main__":  # pragma: no cover
    main()
