"""The paper's evaluation of one artifact as typed records: computed once (`report.evaluate`), stored in
build_info.json's `results`, written as report.json, and rendered by `ft-artifacts info`, the card,
report.md and the figures.

Conventions: sd is the sample standard deviation (n - 1); shares are fractions in [0, 1]; every `*_ci` is a
95% interval [low, high]: for a share, the exact (Clopper-Pearson) binomial interval; for a mean, a
percentile bootstrap over the rows (neurons or words) with a fixed seed, so the same rows give the same
interval. None where a value is undefined (no rows, one row for an sd or an interval).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .records import Record

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def mean_ci(values, seed: int = BOOTSTRAP_SEED, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of the mean of `values` (resampled rows; fixed seed). None for
    fewer than 2 values."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def share_ci(hits: int, total: int) -> tuple[float, float] | None:
    """Exact (Clopper-Pearson) 95% interval of a share of `hits` in `total`; None for no trials."""
    from scipy.stats import beta

    if total <= 0:
        return None
    alpha = 1 - CONFIDENCE
    low = 0.0 if hits == 0 else float(beta.ppf(alpha / 2, hits, total - hits + 1))
    high = 1.0 if hits == total else float(beta.ppf(1 - alpha / 2, hits + 1, total - hits))
    return low, high


@dataclass(frozen=True)
class Rows(Record):
    """What was evaluated: the model, the optimization steps, rows per table, rows left out as diverged."""

    model: str
    steps: int
    rows: dict[str, int]
    diverged: dict[str, int]


@dataclass(frozen=True)
class Table1(Record):
    """Paper Table 1 (single neurons), over the neurons that did not diverge. The vocabulary's mean norm is
    over the whole vocabulary (no sample, no interval)."""

    activation_mean: float | None
    activation_sd: float | None
    most_activating_mean: float | None
    most_activating_sd: float | None
    closest_cosine_mean: float | None
    closest_cosine_sd: float | None
    norm_optimized_mean: float | None
    norm_vocabulary_mean: float | None
    closest_is_most_activating_share: float | None
    activation_ci: tuple[float, float] | None = None
    most_activating_ci: tuple[float, float] | None = None
    closest_cosine_ci: tuple[float, float] | None = None
    norm_optimized_ci: tuple[float, float] | None = None
    closest_is_most_activating_ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class LayerMean(Record):
    layer: int
    n: int
    mean: float | None
    sd: float | None


@dataclass(frozen=True)
class LayerFit(Record):
    """OLS of a per-neuron value on the layer (paper Figures 2-4): p two-sided with df = n - 2; None where
    undefined (fewer than 3 neurons, one layer); t None for an exact fit."""

    slope: float | None
    intercept: float | None
    t: float | None
    df: int
    p: float | None
    n: int
    layers: list[LayerMean] = field(default_factory=list)


@dataclass(frozen=True)
class Token(Record):
    token: str
    cosine: float | None


@dataclass(frozen=True)
class NeuronTokens(Record):
    """Paper Table 2: a neuron's closest tokens."""

    neuron: str
    layer: int
    nearest: list[Token]


@dataclass(frozen=True)
class Pca(Record):
    """Paper Figure 5: a 2-D PCA of the vocabulary vectors and all optimized inputs together."""

    explained_variance_ratio: list[float | None]
    centroids: dict[str, list[float | None]]
    points: dict[str, int]


@dataclass(frozen=True)
class GroupStats(Record):
    """Paper Tables 3 and 4 for one (selection, k): means over the words whose optimization did not
    diverge; shares over all `words`, a diverged one counting as a miss."""

    selection: str
    k: int
    words: int
    diverged: int
    cosine_target_mean: float | None
    cosine_target_sd: float | None
    activation_mean: float | None
    activation_sd: float | None
    target_activation_mean: float | None
    target_activation_sd: float | None
    top1_share: float
    top20_share: float
    cosine_target_ci: tuple[float, float] | None = None
    activation_ci: tuple[float, float] | None = None
    target_activation_ci: tuple[float, float] | None = None
    top1_ci: tuple[float, float] | None = None
    top20_ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class GroupTokens(Record):
    """Paper Table 5: a group's target word, its rank and cosine, and the closest tokens."""

    word: str
    target_rank: int | None
    target_cosine: float | None
    nearest: list[Token]


@dataclass(frozen=True)
class Table5(Record):
    selection: str | None
    k: int | None
    examples: list[GroupTokens]


@dataclass(frozen=True)
class TraceEnd(Record):
    row: str
    peak: float | None
    final: float | None


@dataclass(frozen=True)
class Traces(Record):
    """How the ascents ended (not in the paper): rows whose final activation is below half their traced
    peak, rows that never rose above 0, and the largest falls."""

    rows: int
    ended_below_half_peak: int
    never_above_zero: int
    examples: list[TraceEnd]


@dataclass(frozen=True)
class Evaluation(Record):
    """The paper's evaluation of one artifact (report.json without its `paper` and `build` sections)."""

    artifact: Rows
    table1: Table1
    by_layer: dict[str, LayerFit]
    table2: list[NeuronTokens]
    pca: Pca | None
    groups: list[GroupStats]
    table5: Table5
    traces: dict[str, Traces]

    def group(self, selection: str, k: int) -> GroupStats | None:
        return next((g for g in self.groups if (g.selection, g.k) == (selection, k)), None)

    @classmethod
    def from_results(cls, results: dict, where: str = "results") -> "Evaluation | None":
        """The evaluation stored in build_info.json's `results`; None for results in the layout of
        ft-artifacts 0.1.0's first format-2 builds (`single_neurons`, `word_groups`), which
        `ft-artifacts report` recomputes from the rows."""
        if "table1" not in results:
            return None
        return cls.from_dict(results, where)
