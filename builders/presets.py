"""A preset name in, a BuildConfig out: which model, neurons, words, group configs and optimizer
settings make up an artifact. Config is data; `BuildConfig` and its defaults (each saying where it comes
from) live in ft_artifacts.settings, so that readers use it without the builders."""

from __future__ import annotations

from dataclasses import replace

from ft_artifacts.errors import ArtifactError
from ft_artifacts.settings import BuildConfig, OptimConfig  # noqa: F401 - BuildConfig re-exported (defined there)


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
