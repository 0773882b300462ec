"""An `Evaluation` and its `ReportData` in, the paper's figures out as PNG (200 dpi) and SVG files
(matplotlib's Agg canvas).

Fixed file names under `figures/`, so cards and report.md can link them. matplotlib is imported only when
drawing, and pyplot never (no global state, no display); the files carry no software-version or date
metadata and the SVG ids are salted with a constant, so the same inputs give the same bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .files import atomic_path
from .manifest import FIGURES, figure_files  # noqa: F401 - name -> path relative to the output folder (re-exported)
from .report_paper import PAPER, PAPER_MODEL

logger = logging.getLogger(__name__)

_DPI = 200
_POINTS, _MEANS, _FIT = "#8fb3d9", "#c0392b", "#2c3e50"


def _figure(*args, **kwargs):
    """(figure, axes) like `pyplot.subplots`, on an Agg canvas: no pyplot state, no display, no global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=kwargs.pop("figsize"))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(*args, **kwargs)


def _fit_label(stats) -> str:
    if stats.slope is None:
        return "OLS: undefined (fewer than 3 neurons or one layer)"
    p = "p < 0.001" if stats.p < 0.001 else f"p = {stats.p:.3f}"
    t = "–" if stats.t is None else f"{stats.t:.2f}"  # None: an exact fit (t infinite)
    return f"OLS: β = {stats.slope:.4g}, t({stats.df}) = {t}, {p}"


def _who(ev) -> str:
    return f"{ev.artifact.model}, {ev.by_layer['activation'].n} neurons"


def outlier_limits(values: np.ndarray) -> tuple[float, float] | None:
    """y-limits that keep the bulk of `values` readable when a few lie far out (beyond 3 interquartile
    ranges of the quartiles, at most 5% of the points), or None when no such outliers exist."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 8:
        return None
    q1, q3 = np.percentile(values, [25, 75])
    spread = max(q3 - q1, 1e-12)
    low, high = q1 - 3 * spread, q3 + 3 * spread
    out = (values < low) | (values > high)
    if not out.any() or out.sum() > 0.05 * len(values):
        return None
    inside = values[~out]
    pad = 0.08 * max(inside.max() - inside.min(), 1e-12)
    return float(inside.min() - pad), float(inside.max() + pad)


def _by_layer_panel(ax, layers: np.ndarray, values: np.ndarray, stats, ylabel: str, title: str) -> None:
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, len(layers))  # fixed seed: same file every run
    ax.scatter(layers + jitter, values, s=9, alpha=0.5, color=_POINTS, linewidths=0, label="one neuron")
    means = [(row.layer, row.mean) for row in stats.layers]
    ax.plot(*zip(*means), "o-", color=_MEANS, markersize=5, label="layer mean")
    if stats.slope is not None:
        x = np.array([layers.min(), layers.max()], dtype=float)
        ax.plot(x, stats.intercept + stats.slope * x, "--", color=_FIT, label=_fit_label(stats))
    else:
        ax.plot([], [], " ", label=_fit_label(stats))
    limits = outlier_limits(values)
    if limits is not None:  # a far outlier would squeeze the rest: clip the axis, mark what lies beyond
        ax.set_ylim(*limits)
        for side, beyond, y, marker in (("above", values > limits[1], limits[1], "^"),
                                        ("below", values < limits[0], limits[0], "v")):
            if beyond.any():
                ax.scatter(layers[beyond] + jitter[beyond], np.full(int(beyond.sum()), y), marker=marker, s=30,
                           color=_MEANS, clip_on=False, zorder=3,
                           label=f"{int(beyond.sum())} {side} the axis (extreme {values[beyond].max() if side == 'above' else values[beyond].min():.4g})")
    ax.set_xticks(sorted({int(v) for v in layers}))
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)


def _activation_by_layer(ev, data) -> object:
    n = data.neurons
    fig, axes = _figure(1, 2, figsize=(11, 4.4))
    for ax, key, what in zip(axes, ("activation", "most_activating"), ("optimized input", "most activating token")):
        paper = PAPER["by_layer"][key]
        _by_layer_panel(ax, n["layer"], n[key], ev.by_layer[key], "activation",
                        f"Activation of the {what}\n{PAPER_MODEL} (paper): β = {paper['slope']}, "
                        f"t({paper['df']}) = {paper['t']}")
    fig.suptitle(f"Neuron activation by layer (paper Figures 2 and 3): {_who(ev)}", fontsize=11)
    fig.tight_layout()
    return fig


def _closest_cosine_by_layer(ev, data) -> object:
    paper = PAPER["by_layer"]["closest_cosine"]
    fig, ax = _figure(figsize=(7, 4.6))
    _by_layer_panel(ax, data.neurons["layer"], data.neurons["closest_cosine"], ev.by_layer["closest_cosine"],
                    "cosine to the closest vocabulary token",
                    f"Closest-token cosine by layer (paper Figure 4)\n{_who(ev)}\n"
                    f"{PAPER_MODEL} (paper): β = {paper['slope']}, t({paper['df']}) = {paper['t']}")
    fig.tight_layout()
    return fig


def _pca(ev, data) -> object:
    pca = data.pca
    fig, ax = _figure(figsize=(7, 5.8))
    styles = {"vocabulary": dict(s=2, alpha=0.25, color="#95a5a6", label="vocabulary token"),
              "neurons": dict(s=10, alpha=0.8, color="#2980b9", label="optimized input, single neuron"),
              "word_groups": dict(s=14, alpha=0.8, color="#e67e22", marker="^", label="optimized input, neuron group")}
    for kind, style in styles.items():
        coords = pca["coords"][kind]
        ax.scatter(coords[:, 0], coords[:, 1], linewidths=0, **dict(style, label=f"{style['label']} ({len(coords)})"))
    ratio = pca["explained_variance_ratio"]
    ax.set_xlabel(f"PC1 ({ratio[0]:.1%} of variance)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.1%} of variance)")
    ax.set_title(f"PCA of optimized inputs and vocabulary vectors (paper Figure 5)\n{ev.artifact.model}, "
                 "analysis space (embedding output)", fontsize=10)
    legend = ax.legend(fontsize=8, markerscale=2.5, loc="best")
    for handle in legend.legend_handles:
        handle.set_alpha(1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _group_top_k(ev, data) -> object:
    selections = sorted({g.selection for g in ev.groups})
    fig, axes = _figure(1, len(selections), figsize=(5.2 * len(selections), 4.6), squeeze=False, sharey=True)
    for ax, selection in zip(axes[0], selections):
        ours = [g for g in ev.groups if g.selection == selection]
        paper = [g for g in PAPER["groups"] if g["selection"] == selection]
        for key, label, color, shift in (("top1", "top-1", "#c0392b", -0.012), ("top20", "top-20", "#2980b9", 0.012)):
            ks, shares = [g.k for g in ours], [getattr(g, f"{key}_share") for g in ours]
            cis = [getattr(g, f"{key}_ci") or (s, s) for g, s in zip(ours, shares)]
            error = np.array([[s - lo for (lo, _), s in zip(cis, shares)], [hi - s for (_, hi), s in zip(cis, shares)]])
            # offset a little along k (log-free, relative to the k range) so the two intervals do not overlap
            width = (max(ks) - min(ks)) or 1
            ax.errorbar([k + shift * width for k in ks], shares, yerr=error, fmt="o-", color=color, capsize=3,
                        label=f"{label}, this artifact (95% interval)")
            if paper:
                ax.plot([g["k"] for g in paper], [g[f"{key}_share"] for g in paper], "s--", color=color, alpha=0.45,
                        label=f"{label}, {PAPER_MODEL} (paper)")
        ax.set_xticks(sorted({g.k for g in ours} | {g["k"] for g in paper}))
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("k (neurons in the group)")
        words = "/".join(str(w) for w in sorted({g.words for g in ours}))
        ax.set_title(f"{selection} selection, {words} words per k", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share of target words")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(f"Target word is the closest token (top-1) or among the 20 closest (top-20), paper Table 4\n"
                 f"{ev.artifact.model}", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))  # room for the shared legend below
    return fig


_DRAW = {"activation_by_layer": _activation_by_layer, "closest_cosine_by_layer": _closest_cosine_by_layer,
         "pca": _pca, "group_top_k": _group_top_k}


_METADATA = {"png": {"Software": None}, "svg": {"Creator": None, "Date": None, "Format": None}}


def write_figures(evaluation, data, out_dir, progress=None, tmp_dir=None) -> list[str]:
    """Draw every figure of `FIGURES` into `out_dir` as PNG and SVG, each file moved into place whole
    (temporary files in `tmp_dir`, or beside it); returns their paths relative to `out_dir`, each PNG
    followed by its SVG. `evaluation` is the `Evaluation` (or report.json's dict) and `data` the
    `report.ReportData` it was computed from (per-neuron points, PCA coordinates); `progress` is a
    (done, total) callback over the figures."""
    import matplotlib

    from .report_markdown import as_evaluation

    ev = as_evaluation(evaluation)
    out, written = Path(out_dir), []
    if progress:
        progress(0, len(FIGURES))
    for i, name in enumerate(FIGURES):
        with matplotlib.rc_context({"svg.hashsalt": "ft-artifacts", "svg.fonttype": "path"}):
            fig = _DRAW[name](ev, data)
            for rel in figure_files(name):
                kind = Path(rel).suffix[1:]
                with atomic_path(out / rel, tmp_dir=tmp_dir) as tmp:
                    fig.savefig(tmp, format=kind, dpi=_DPI, metadata=_METADATA[kind])
                written.append(rel)
                logger.info("wrote %s", rel)
        if progress:
            progress(i + 1, len(FIGURES))
    return written
