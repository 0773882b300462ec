"""A model's shape and vocabulary in, the paper's seeded samples out: neurons per layer and target words."""

from __future__ import annotations

import re
from importlib import resources

import numpy as np

from ft_artifacts.errors import ArtifactError
from ft_artifacts.naming import Neuron

_LATIN_WORD = re.compile(r"^[A-Za-z]+$")  # whole words of Latin letters: no ##, [unused], digits or symbols


def sample_neurons(num_layers: int, hidden_size: int, fraction: float, seed: int,
                   per_layer: int | None = None) -> list[Neuron]:
    """`per_layer` (or round(fraction * H)) neurons from each layer, drawn without replacement; sorted.
    Every neuron of the model (an atlas) when that is H."""
    if per_layer is None:
        if not 0 < fraction <= 1:
            raise ArtifactError(f"the neuron sample must be a fraction in (0, 1] of each layer (got {fraction})")
        per_layer = int(round(fraction * hidden_size))
    if not 1 <= per_layer <= hidden_size:
        raise ArtifactError(f"the neuron sample selects {per_layer} neurons per layer; this model has {hidden_size} "
                            "per layer")
    rng = np.random.default_rng(seed)
    return [
        Neuron(layer, int(i))
        for layer in range(1, num_layers + 1)
        for i in np.sort(rng.choice(hidden_size, size=per_layer, replace=False))
    ]


def curated_words() -> list[str]:
    text = resources.files("ft_artifacts.builders").joinpath("curated_words.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def eligible_word(token: str) -> bool:
    """A whole-word vocabulary token made only of Latin letters."""
    return bool(_LATIN_WORD.match(token))


def sample_words(tokens: list[str], random_count: int, curated_count: int, seed: int) -> list[str]:
    """`random_count` seeded draws from eligible tokens, then the first `curated_count` curated words
    present in the vocabulary (never drawn twice)."""
    if random_count < 0 or curated_count < 0 or random_count + curated_count < 1:
        raise ArtifactError(f"a build needs at least one target word (got random_words={random_count}, "
                            f"curated_words={curated_count}); every config of the artifact must have rows")
    curated = [w for w in curated_words() if w in set(tokens)][:curated_count]
    if len(curated) < curated_count:
        raise ArtifactError(f"only {len(curated)} of the curated words are tokens of this vocabulary")
    pool = sorted({t for t in tokens if eligible_word(t)} - set(curated))
    if random_count > len(pool):
        raise ArtifactError(f"asked for {random_count} random words; the vocabulary has {len(pool)} eligible ones")
    rng = np.random.default_rng(seed)
    drawn = [pool[i] for i in rng.choice(len(pool), size=random_count, replace=False)]
    return drawn + curated
