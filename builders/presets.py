"""A preset name in, a BuildConfig out: which model, neurons, words, group configs and optimizer
settings make up an artifact. Config is data; every default says where it comes from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ft_artifacts.errors import ArtifactError
from ft_artifacts.settings import DEFAULT_MODEL, DEFAULT_NEAREST, SELECTIONS, OptimConfig


@dataclass
class BuildConfig:
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
    directions: tuple[dict, ...] = ()  # config `directions`: files of a layer's directions (ft_artifacts.directions)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["selections"], data["ks"] = list(self.selections), list(self.ks)
        if self.directions:  # absent when none: settings (and build ids) without directions stay as they were
            data["directions"] = [dict(d) for d in self.directions]
        else:
            del data["directions"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "BuildConfig":
        data = dict(data)
        data["optim"] = OptimConfig(**data.get("optim", {}))
        data["selections"], data["ks"] = tuple(data["selections"]), tuple(data["ks"])
        data["directions"] = tuple(dict(d) for d in data.get("directions", ()))
        return cls(**data)


PRESETS: dict[str, BuildConfig] = {
    # The paper's settings: 924 neurons and 800 groups on bert-base-uncased (a GPU job).
    # chunk_rows 1024: each config is one batch on a GPU (924 neurons, 800 groups); resume unit = one config.
    "paper": BuildConfig(chunk_rows=1024),
    # Every config of the paper on the packaged MiniLM (228 neurons, all selections and ks), with
    # 6 random + 4 curated words (80 groups) and 300 steps: a few minutes on 2 CPU cores, offline.
    "demo": BuildConfig(
        model="minilm",
        random_words=6,
        curated_words=4,
        optim=OptimConfig(steps=300),
        chunk_rows=128,
    ),
}


def parse_neurons(text: str) -> dict:
    """`--neurons`: `all` (every neuron, an atlas), `P%` of each layer, or `N` neurons per layer,
    as BuildConfig fields."""
    text = text.strip()
    try:
        if text == "all":
            return {"neuron_fraction": 1.0, "neurons_per_layer": None}
        if text.endswith("%"):
            return {"neuron_fraction": float(text[:-1]) / 100, "neurons_per_layer": None}
        return {"neurons_per_layer": int(text)}
    except ValueError:
        raise ArtifactError(f"--neurons {text!r}: give all, a percentage of each layer (25%), or a count per "
                            "layer (77)") from None


def preset(name: str, **overrides) -> BuildConfig:
    """A named preset with optional overrides (model=..., steps=... maps to optim.steps)."""
    if name not in PRESETS:
        raise ArtifactError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    optim = {k: overrides.pop(k) for k in list(overrides) if k in OptimConfig.__dataclass_fields__}
    base = PRESETS[name]
    return replace(base, optim=replace(base.optim, **optim), **overrides)
