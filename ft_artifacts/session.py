"""A model spec and a request in, textualized rows out: the glue the CLI calls in one line."""

from __future__ import annotations

import logging
from typing import Sequence

import torch

from .errors import ObjectiveError
from .model import load_model
from .optimize import OptimConfig
from .progress import Progress, stage
from .scan import scan_vocabulary
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
    autocast_dtype: torch.dtype | None = None,
    nearest: int = 10,
    progress: Progress | None = None,
) -> list[dict]:
    """Load the model, scan its vocabulary, and textualize the named neurons and/or word group."""
    config.validate()  # every cheap check runs before the vocabulary scan's cost
    lm = load_model(model, device=device)
    objectives = neuron_objectives(lm, neurons)
    words: list[str | None] = [None] * len(objectives)
    if word:
        lm.token_id(word)
        if not 1 <= k <= lm.num_neurons:
            raise ObjectiveError(f"--k must lie in 1..{lm.num_neurons} for this model (got {k})")
    logger.info("scanning %d vocabulary items", lm.vocab_size)
    scan = scan_vocabulary(lm, callback=stage(progress, "vocabulary scan"))
    if word:
        objectives.append(group_objective(lm, scan, word, selection, k))
        words.append(word)
    return textualize(lm, scan, objectives, config, words=words, nearest=nearest,
                      autocast_dtype=autocast_dtype, callback=stage(progress, "optimizing"))


def build_request(
    preset_name: str,
    out: str,
    *,
    model: str | None = None,
    steps: int | None = None,
    device: str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    progress: Progress | None = None,
    repo_id: str | None = None,
):
    """Build (or resume) the artifact of a preset, with optional model/steps overrides."""
    from .builders.build import build
    from .builders.presets import preset

    return build(preset(preset_name, model=model, steps=steps), out, device=device,
                 autocast_dtype=autocast_dtype, progress=progress, repo_id=repo_id)


def publish_request(folder: str, repo_id: str, *, private: bool = False, revision: str | None = None,
                    dry_run: bool = False) -> dict:
    """Push an artifact folder in one commit tagged with its build id, or only plan it (dry run)."""
    from .loader import Artifact
    from .publish import plan_upload, push_folder

    Artifact(folder).verify()  # never publish a damaged or unfinished artifact
    if dry_run:
        return {"repo_id": repo_id, "revision": revision or "main", "dry_run": True, "files": plan_upload(folder)}
    return push_folder(folder, repo_id, private=private, revision=revision, tag=build_tag(folder),
                       commit_message=f"ft-artifacts build {build_tag(folder)}")


def build_tag(folder: str) -> str:
    """A tag naming this exact build: `build-` + the first 12 hex digits of build_info.json's sha256."""
    from .files import sha256_file
    from .pack import BUILD_INFO

    return "build-" + sha256_file(f"{folder}/{BUILD_INFO}")[:12]
