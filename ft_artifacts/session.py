"""A model spec and a request in, textualized rows out: the glue the CLI calls in one line."""

from __future__ import annotations

import logging
from typing import Sequence


from .errors import ObjectiveError
from .model import load_model
from .optimize import OptimConfig
from .precision import check as check_precision
from .progress import Progress, stage
from .rows import GroupRow, NeuronRow
from .scan import SELECTIONS, scan_vocabulary
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
    nearest: int = 10,
    progress: Progress | None = None,
) -> list[NeuronRow | GroupRow]:
    """Load the model, scan its vocabulary, and textualize the named neurons and/or word group."""
    config.validate()  # every cheap check runs before the model load and the vocabulary scan
    if precision is not None:
        check_precision(precision)
    if nearest < 1:
        raise ObjectiveError(f"--nearest must be at least 1 (got {nearest})")
    if word and selection not in SELECTIONS:
        raise ObjectiveError(f"unknown selection {selection!r}; choose one of {', '.join(SELECTIONS)}")
    lm = load_model(model, device=device)
    check_length(lm, config.length)
    objectives = neuron_objectives(lm, neurons)
    groups: list[tuple[str, str, int] | None] = [None] * len(objectives)
    if word:
        lm.token_id(word)
        if not 1 <= k <= lm.num_neurons:
            raise ObjectiveError(f"--group-size must lie in 1..{lm.num_neurons} for this model (got {k})")
    logger.info("scanning %d vocabulary items", lm.vocab_size)
    scan = scan_vocabulary(lm, callback=stage(progress, "vocabulary scan"))
    if word:
        objectives.append(group_objective(lm, scan, word, selection, k))
        groups.append((word, selection, k))
    return textualize(lm, scan, objectives, config, groups=groups, nearest=min(nearest, lm.vocab_size),
                      precision=precision, callback=stage(progress, "optimizing"))


def textualize_direction_request(
    model: str,
    path: str,
    layer: int,
    config: OptimConfig,
    *,
    device: str = "cpu",
    precision: str | None = None,
    nearest: int = 10,
    progress: Progress | None = None,
):
    """Read the direction file (checked before the model loads), load the model, scan its vocabulary,
    and textualize every direction of the file in layer `layer`'s neuron space."""
    from .directions import check_directions, direction_labels, read_directions, textualize_directions

    config.validate()
    if precision is not None:
        check_precision(precision)
    if nearest < 1:
        raise ObjectiveError(f"--nearest must be at least 1 (got {nearest})")
    directions = read_directions(path)
    lm = load_model(model, device=device)
    check_length(lm, config.length)
    check_directions(directions, layer, lm.num_layers, lm.hidden_size, path)
    logger.info("scanning %d vocabulary items", lm.vocab_size)
    scan = scan_vocabulary(lm, callback=stage(progress, "vocabulary scan"))
    return textualize_directions(lm, scan, directions, layer, config, labels=direction_labels(path, layer, len(directions)),
                                 nearest=min(nearest, lm.vocab_size), precision=precision,
                                 callback=stage(progress, "optimizing"))


def check_length(lm, length: int) -> None:
    """The optimized tokens plus [CLS] and [SEP] must fit the model's position embeddings."""
    limit = lm.max_length
    if length > limit:
        raise ObjectiveError(f"--length {length} does not fit: {lm.model_id} takes at most {limit} optimized tokens "
                             + ("after BOS" if lm.family.decoder else "between [CLS] and [SEP]"))


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
):
    """Build (or resume) the artifact of a preset, with optional model/steps/neuron-sample overrides.
    `world` is this process's place in a torchrun job (builders.distributed)."""
    from .builders.build import build
    from .builders.presets import parse_neurons, preset

    sample = parse_neurons(neurons) if neurons is not None else {}
    return build(preset(preset_name, model=model, steps=steps, chunk_rows=chunk_rows, **sample), out, device=device,
                 precision=precision, progress=progress, repo_id=repo_id, world=world)


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
