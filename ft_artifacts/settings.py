"""Settings as data, importable without torch: the optimizer's configuration, the build's configuration
(`BuildConfig`, build_info.json's `settings`) and the method's named choices. The CLI derives its options'
defaults and choices from these declarations."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import ArtifactError, ObjectiveError
from .records import Record, from_json, to_json

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
class OptimConfig(Record):
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


@dataclass
class BuildConfig:
    """What an artifact is built from: model, neurons, words, group configs and optimizer settings (the
    builders' presets, builders/presets.py, are instances). Recorded as build_info.json's `settings`.

    Reading a recorded one (`from_dict`): `model` and `optim` must be present; any other key missing from an
    older artifact takes the default declared here (and a key missing from `optim`, OptimConfig's). A key this
    ft-artifacts does not know (from a newer one) is refused in one line naming it."""

    model: str = DEFAULT_MODEL  # the paper's model (4.1)
    neuron_fraction: float = 0.1  # paper 4.1: a random 10% of each layer's neurons (77 of 768); 1.0: every neuron
    neurons_per_layer: int | None = None  # a count per layer instead of the fraction
    neuron_seed: int = 0  # seeds the neuron sample
    random_words: int = 80  # paper 5.1: 80 target words drawn at random from Latin-letter words
    curated_words: int = 20  # paper 5.1: 20 high-frequency words, from builders/curated_words.txt
    word_seed: int = 0  # seeds the word draw
    selections: tuple[str, ...] = SELECTIONS  # paper 3.3.2
    ks: tuple[int, ...] = (10, 100, 250, 450)  # paper Tables 3 and 4
    optim: OptimConfig = field(default_factory=OptimConfig)  # paper 4.1: SGD, lr 100, 5,000 steps
    precision: str | None = None  # the steps' mode (ft_artifacts.precision); None: the device's default, recorded at build
    nearest: int = DEFAULT_NEAREST  # nearest tokens stored per optimized row
    chunk_rows: int = 256  # rows optimized per batch; each finished chunk is saved (resume unit)
    scan_batch: int = 1024  # vocabulary items per forward in the scan
    # config `directions`: {file, layer, rows, width, sha256} per directions file (ft_artifacts.directions)
    directions: tuple[dict, ...] = ()

    REQUIRED = ("model", "optim")  # what a recorded one must hold: no default can stand in for them

    def to_dict(self) -> dict:
        """JSON-ready: tuples as lists, `optim` as a dict (what build_info.json's `settings` holds). `directions`
        is left out when there are none, so settings (and build ids) without directions stay as they were."""
        data = to_json(self)
        if not self.directions:
            del data["directions"]
        return data

    @classmethod
    def from_dict(cls, data, where: str = "settings") -> "BuildConfig":
        """A recorded BuildConfig (see the class docstring for missing and unknown keys); `ArtifactError`
        naming `where` and the key otherwise."""
        if not isinstance(data, dict):
            raise ArtifactError(f"{where} is not an object")
        missing = [k for k in cls.REQUIRED if k not in data]
        if missing:
            raise ArtifactError(f"{where} lacks {missing[0]!r}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ArtifactError(f"{where} has key(s) {', '.join(map(repr, unknown))} that this ft-artifacts does "
                                "not know (written by a newer one); upgrade ft-artifacts")
        return from_json(cls, data, where)
