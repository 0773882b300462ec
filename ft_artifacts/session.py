"""A model spec and a request in, textualized rows out: the glue the CLI calls in one line."""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import torch

from .model import load_model
from .optimize import OptimConfig
from .scan import scan_vocabulary
from .textualize import group_objective, neuron_objectives, textualize

logger = logging.getLogger(__name__)

Callback = Callable[[int, int], None]  # (done, total)
Progress = Callable[[str], Callback]  # stage name -> that stage's callback


def stage(progress: Progress | None, name: str) -> Callback | None:
    return progress(name) if progress else None


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
    lm = load_model(model, device=device)
    objectives = neuron_objectives(lm, neurons)  # validates names before the scan's cost
    words: list[str | None] = [None] * len(objectives)
    if word:
        lm.token_id(word)
    logger.info("scanning %d vocabulary items", lm.vocab_size)
    scan = scan_vocabulary(lm, callback=stage(progress, "vocabulary scan"))
    if word:
        objectives.append(group_objective(lm, scan, word, selection, k))
        words.append(word)
    return textualize(lm, scan, objectives, config, words=words, nearest=nearest,
                      autocast_dtype=autocast_dtype, callback=stage(progress, "optimizing"))
