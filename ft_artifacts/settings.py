"""Settings as data, importable without torch: the optimizer's configuration and the method's
named choices. The CLI derives its options' defaults and choices from these declarations."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ObjectiveError

DEFAULT_MODEL = "bert-base-uncased"  # the paper's model
SELECTIONS = ("absolute", "relative")  # paper 3.3.2: largest a_{w,i}, or largest a_{w,i} / a_i^max
DEFAULT_SELECTION = "relative"  # recovers the target word best in the paper (Tables 3-4)
DEFAULT_GROUP_SIZE = 250  # relative, k = 250: the paper's best top-1 (67%)
DEFAULT_NEAREST = 10  # nearest tokens reported per optimized input
METHODS = ("preconditioned", "plain")


def check_selection(*selections: str, error: type = ObjectiveError) -> None:
    """The one check (and message) for a selection name: absolute or relative."""
    unknown = [s for s in selections if s not in SELECTIONS]
    if unknown:
        raise error(f"unknown selection {', '.join(map(repr, unknown))}; choose {' or '.join(SELECTIONS)}")


def check_length(length: int, limit: int, model_id: str, option: str = "--length", error: type = ObjectiveError,
                 decoder: bool = False) -> None:
    """The one check (and message) that `length` optimized tokens fit the model's frame (between [CLS] and
    [SEP] of an encoder, after BOS of a decoder) when it takes at most `limit` of them (`LoadedModel.max_length`)."""
    if length > limit:
        raise error(f"{option} {length} does not fit: {model_id} takes at most {limit} optimized tokens "
                    + ("after BOS" if decoder else "between [CLS] and [SEP]"))


@dataclass
class OptimConfig:
    steps: int = 5000  # paper 4.1: activations reliably converge within 5,000 steps
    lr: float = 100.0  # paper 4.1, footnote 1: smaller rates did not converge
    init_std: float = 1.0  # x ~ N(0, std^2) in R^V; on MiniLM std 0.01 left activations ~10x lower after 2,000 steps
    seed: int = 0  # each row's init derives from (seed, objective label), never from its batch
    length: int = 1  # l, optimized tokens between [CLS] and [SEP] (paper: 1)
    position: int = 1  # where activations are read: the optimized token (paper: position 1)
    method: str = "preconditioned"  # exact reformulation of plain SGD; "plain" updates x itself
    trace_every: int = 100  # activation trace resolution, in steps

    def validate(self) -> None:
        if self.steps < 0 or self.trace_every < 1:
            raise ObjectiveError("steps must be >= 0 and trace_every >= 1")
        if self.length < 1 or not 1 <= self.position <= self.length:
            raise ObjectiveError(f"position must lie in 1..length (got position {self.position}, length {self.length})")
        if self.method not in METHODS:
            raise ObjectiveError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if not (math.isfinite(self.lr) and self.lr > 0) or not (math.isfinite(self.init_std) and self.init_std >= 0):
            raise ObjectiveError(f"lr must be finite and > 0, init_std finite and >= 0 (got lr {self.lr}, "
                                 f"init_std {self.init_std})")


