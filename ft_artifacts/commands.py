"""A model spec and a request in, textualized rows (or a built or published artifact) out: the one library call
behind each CLI command. (Importable as ft_artifacts.session too, its former name.)"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from typing import Sequence


from .errors import ObjectiveError
from .model import load_model
from .optimize import OptimConfig
from .precision import check as check_precision
from .progress import Progress, stage
from .rows import GroupRow, NeuronRow
from .settings import DEFAULT_NEAREST, check_selection
from .settings import check_length as _check_length
from .textualize import group_objective, neuron_objectives, textualize

logger = logging.getLogger(__name__)



def textualize_request(
    model: str,
    neurons: Sequence[str],
    word: str | None,
    selection: str,
    k: int,
    config: OptimConfig,
    *,
    device: str = "cpu",
    precision: str | None = None,
    nearest: int = DEFAULT_NEAREST,
    progress: Progress | None = None,
    keep: str = "final",
    scan_cache: bool = True,
) -> list[NeuronRow | GroupRow]:
    """Load the model, scan its vocabulary (or reuse its cached scan, ft_artifacts.scan_cache), and textualize
    the named neurons and/or word group. `keep="best"` returns, per row, the input of its best traced step
    (the paper keeps the final step's: `keep="final"`, the default); see `keep_best`."""
    if keep not in KEEP:
        raise ObjectiveError(f"keep must be one of {', '.join(KEEP)} (got {keep!r})")
    _check_request(config, precision, nearest)  # every cheap check runs before the model load and the scan
    if word:
        check_selection(selection)
    lm = load_model(model, device=device)
    check_length(lm, config.length)
    objectives = neuron_objectives(lm, neurons)
    groups: list[tuple[str, str, int] | None] = [None] * len(objectives)
    if word:
        lm.token_id(word)
        if not 1 <= k <= lm.num_neurons:
            raise ObjectiveError(f"--group-size must lie in 1..{lm.num_neurons} for this model (got {k})")
    logger.info("scanning %d vocabulary items", lm.vocab_size)
    from .scan_cache import cached_scan

    scan = cached_scan(lm, use_cache=scan_cache, callback=stage(progress, "vocabulary scan"))
    if word:
        objectives.append(group_objective(lm, scan, word, selection, k))
        groups.append((word, selection, k))
    run = functools.partial(textualize, lm, scan, objectives, groups=groups, nearest=min(nearest, lm.vocab_size),
                            precision=precision)
    rows = run(config, callback=stage(progress, "optimizing"))
    return keep_best(rows, run, config, progress) if keep == "best" else rows


KEEP = ("final", "best")


def _check_request(config: OptimConfig, precision: str | None, nearest: int) -> None:
    """The checks every textualize request makes before it loads a model: the optimizer settings, the precision
    mode and the nearest count."""
    config.validate()
    if precision is not None:
        check_precision(precision)
    if nearest < 1:
        raise ObjectiveError(f"--nearest must be at least 1 (got {nearest})")


def keep_best(rows: list, run, config: OptimConfig, progress: Progress | None = None) -> list:
    """Rows whose traced peak beats their final activation, replaced by the same batch run for exactly the peak's
    number of steps (a chunk's rows are bit-identical whatever the step count, so row j after s steps is the
    input the trace recorded). Each such row then says so itself: its `steps` is the step kept."""
    wanted: dict[int, list[int]] = {}
    for j, row in enumerate(rows):
        trace = row.activation_trace
        if row.diverged or not trace or not all(map(math.isfinite, trace)):
            continue
        i = max(range(len(trace)), key=trace.__getitem__)
        if trace[i] > row.activation:
            wanted.setdefault(i * config.trace_every, []).append(j)
    out = list(rows)
    for steps, members in sorted(wanted.items()):
        logger.info("keep best: rerunning %d step(s) for %s", steps, ", ".join(rows[j].label for j in members))
        again = run(dataclasses.replace(config, steps=steps), callback=stage(progress, f"best step {steps}"))
        for j in members:
            out[j] = again[j]
    return out


def textualize_direction_request(
    model: str,
    path: str,
    layer: int,
    config: OptimConfig,
    *,
    device: str = "cpu",
    precision: str | None = None,
    nearest: int = DEFAULT_NEAREST,
    progress: Progress | None = None,
    scan_cache: bool = True,
):
    """Read the direction file (checked before the model loads), load the model, scan its vocabulary (or reuse
    its cached scan, as `textualize_request` does), and textualize every direction of the file in layer
    `layer`'s neuron space."""
    from .directions import check_directions, direction_labels, read_directions, textualize_directions

    _check_request(config, precision, nearest)
    directions = read_directions(path)
    lm = load_model(model, device=device)
    check_length(lm, config.length)
    check_directions(directions, layer, lm.num_layers, lm.hidden_size, path)
    logger.info("scanning %d vocabulary items", lm.vocab_size)
    from .scan_cache import cached_scan

    scan = cached_scan(lm, use_cache=scan_cache, callback=stage(progress, "vocabulary scan"))
    return textualize_directions(lm, scan, directions, layer, config, labels=direction_labels(path, layer, len(directions)),
                                 nearest=min(nearest, lm.vocab_size), precision=precision,
                                 callback=stage(progress, "optimizing"))


def check_length(lm, length: int) -> None:
    """The optimized tokens plus [CLS] and [SEP] must fit the model's position embeddings."""
    _check_length(length, lm.max_length, lm.model_id, decoder=lm.family.decoder)


def build_request(
    preset_name: str,
    out: str,
    *,
    model: str | None = None,
    steps: int | None = None,
    chunk_rows: int | None = None,
    neurons: str | None = None,
    device: str = "cpu",
    precision: str | None = None,
    progress: Progress | None = None,
    repo_id: str | None = None,
    world=None,
    space_id: str | None = None,
    directions: tuple = (),
):
    """Build (or resume) the artifact of a preset, with optional model/steps/neuron-sample overrides.
    `world` is this process's place in a torchrun job (builders.distributed). `directions`: the settings
    entries of ft_artifacts.directions.direction_sources (the optional config `directions`)."""
    from .builders.build import build
    from .builders.presets import parse_neurons, preset

    sample = parse_neurons(neurons) if neurons is not None else {}
    if directions:
        sample["directions"] = tuple(directions)
    return build(preset(preset_name, model=model, steps=steps, chunk_rows=chunk_rows, **sample), out, device=device,
                 precision=precision, progress=progress, repo_id=repo_id, world=world, space_id=space_id)


def publish_request(folder: str, repo_id: str, *, private: bool = False, revision: str | None = None,
                    dry_run: bool = False) -> dict:
    """Push exactly the files an artifact's build_info.json lists, verified first, in one commit tagged
    with its build id; or only list them (dry run). Nothing reaches the Hub unless every file checks out."""
    from .publish import plan_upload, push_folder

    plan = plan_upload(folder)  # reads the manifest and verifies every listed file: raises before any request
    if dry_run:
        return {"repo_id": repo_id, "revision": revision or "main", "dry_run": True, "files": plan}
    tag = build_tag(folder)
    return push_folder(folder, repo_id, private=private, revision=revision, tag=tag,
                       commit_message=f"ft-artifacts build {tag}", plan=plan)


def build_tag(folder: str) -> str:
    """A tag naming this exact build: `build-` + the first 12 hex digits of build_info.json's sha256."""
    from .files import sha256_file
    from .manifest import BUILD_INFO

    return "build-" + sha256_file(f"{folder}/{BUILD_INFO}")[:12]


def row_warnings(row) -> list[str]:
    """What a textualized row's numbers say against trusting it, one line each: an ascent that ended below
    half of its traced peak, or below what a single word reaches (a neuron's most activating word; a group's
    target word)."""
    if row.diverged:
        return []
    out = []
    trace = [a for a in row.activation_trace if math.isfinite(a)]
    peak = max(trace, default=None)
    if peak is not None and peak > 0 and row.activation < 0.5 * peak:
        out.append(f"{row.label}: the ascent collapsed: it ended at {row.activation:.3f}, below half of its traced "
                   f"peak {peak:.3f}; try fewer --steps, a lower --lr, or --keep best")
    target = getattr(row, "target_activation", None)
    if target is not None:
        if row.activation < target:
            out.append(f"{row.label}: the optimized input activates the group less than the word {row.word!r} "
                       f"itself ({row.activation:.3f} < {target:.3f}); its nearest tokens say little about the word")
    elif row.activation < row.most_activating_activation:
        out.append(f"{row.label}: the optimized input activates the neuron less than its most activating word "
                   f"{row.most_activating_token!r} ({row.activation:.3f} < {row.most_activating_activation:.3f})")
    return out
