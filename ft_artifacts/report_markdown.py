"""An `Evaluation` (ft_artifacts.evaluation) and figure paths in, markdown out: report.md, the dataset
card's results section and `ft-artifacts info`'s, each table beside the paper's bert-base-uncased figures,
labelled as such. Means and shares carry their 95% intervals in brackets."""

from __future__ import annotations

from pathlib import Path

from .card import md_cell
from .evaluation import Evaluation
from .report_paper import PAPER, PAPER_MODEL, paper_group

PAPER_LABEL = f"paper ({PAPER_MODEL})"
_TABLE1_ROWS = (("activation", "activation of the optimized input"),
                ("most_activating", "activation of the most activating token"),
                ("closest_cosine", "cosine of the optimized input to its closest token"))
_LAYER_ROWS = (("activation", "activation, optimized input (Fig. 2/3)"),
               ("most_activating", "activation, most activating token (Fig. 2/3)"),
               ("closest_cosine", "cosine to the closest token (Fig. 4)"))


def _f(value, digits: int | None = 3) -> str:
    return "–" if value is None else f"{value:g}" if digits is None else f"{value:.{digits}f}"


def _ms(mean, sd, digits: int = 3, ci=None) -> str:
    return _f(mean, digits) + ("" if sd is None else f" ({_f(sd, digits)})") + _ci(ci, digits)


def _ci(ci, digits: int = 3) -> str:
    """A 95% interval as ` [low, high]`; nothing where there is none."""
    return "" if ci is None else f" [{_f(ci[0], digits)}, {_f(ci[1], digits)}]"


def as_evaluation(report) -> Evaluation:
    """An `Evaluation`, or one read back from report.json's dict (its `paper` and `build` sections aside)."""
    if isinstance(report, Evaluation):
        return report
    return Evaluation.from_dict({k: v for k, v in report.items() if k not in ("paper", "build")}, "report")


def _p(p) -> str:
    return "–" if p is None else "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _fit(s, digits: int = 4) -> str:
    if isinstance(s, dict):  # the paper's, which gives bounds on p only
        return f"β = {_f(s['slope'], digits)}, t({s['df']}) = {_f(s['t'], 2)}, p < {s['p_below']}"
    return f"β = {_f(s.slope, digits)}, t({s.df}) = {_f(s.t, 2)}, {_p(s.p)}"


def _paper(value, sd=None) -> str:
    """A paper figure as printed there (no added digits)."""
    return "–" if value is None else f"{value:g}" + ("" if sd is None else f" ({sd:g})")


_cell = md_cell  # one escaper for every table cell (card.py's): a `|` or `*` token must not change the table


def _tokens(nearest: list, digits: int = 2) -> str:
    return ", ".join(f"{_cell(_get(n, 'token'))} ({_f(_get(n, 'cosine'), digits)})" for n in nearest)


def _get(item, key: str):
    """A field of a record, or of one of the paper's dicts."""
    return item[key] if isinstance(item, dict) else getattr(item, key)


def _image(paths: list[str], stem: str, alt: str) -> list[str]:
    found = [p for p in paths if Path(p).stem == stem]
    return [f"![{alt}]({Path(found[0]).as_posix()})", ""] if found else []


def _table1(ev: Evaluation) -> list[str]:
    t1, p1 = ev.table1, PAPER["table1"]
    lines = [f"| single neurons | this artifact: mean (sd) [95% interval] | {PAPER_LABEL}, Table 1 |", "|---|---|---|"]
    for key, label in _TABLE1_ROWS:
        cell = _ms(getattr(t1, f"{key}_mean"), getattr(t1, f"{key}_sd"), ci=getattr(t1, f"{key}_ci"))
        lines.append(f"| {label} | {cell} | {_paper(p1[f'{key}_mean'], p1[f'{key}_sd'])} |")
    lines += [f"| mean norm, optimized inputs | {_f(t1.norm_optimized_mean, 2)}{_ci(t1.norm_optimized_ci, 2)} "
              f"| {_paper(p1['norm_optimized_mean'])} |",
              f"| mean norm, vocabulary vectors | {_f(t1.norm_vocabulary_mean, 2)} | {_paper(p1['norm_vocabulary_mean'])} |",
              f"| share whose closest token is the most activating token | {_f(t1.closest_is_most_activating_share)}"
              f"{_ci(t1.closest_is_most_activating_ci)} | {_paper(p1['closest_is_most_activating_share'])} (section 4.2) |",
              "", "Intervals: 95%, a bootstrap over the neurons (fixed seed) for means, exact binomial for shares; "
              "the vocabulary's norm is over the whole vocabulary.", ""]
    return lines


def _layer_fits(ev: Evaluation) -> list[str]:
    lines = [f"| by layer, OLS over neurons | this artifact | {PAPER_LABEL}, section 4.2 |", "|---|---|---|"]
    lines += [f"| {label} | {_fit(ev.by_layer[key])} | {_fit(PAPER['by_layer'][key], None)} |" for key, label in _LAYER_ROWS]
    return lines + [""]


def _groups_table(ev: Evaluation) -> list[str]:
    lines = ["| selection | k | words | cos(target) | paper | activation | paper | target's activation | paper "
             "| top-1 | paper | top-20 | paper |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for g in ev.groups:
        p = paper_group(g.selection, g.k) or {}
        cells = [g.selection, str(g.k), str(g.words)]
        for key in ("cosine_target", "activation", "target_activation"):
            cells += [_ms(getattr(g, f"{key}_mean"), getattr(g, f"{key}_sd"), ci=getattr(g, f"{key}_ci")),
                      _paper(p.get(f"{key}_mean"), p.get(f"{key}_sd"))]
        for key in ("top1", "top20"):
            cells += [_f(getattr(g, f"{key}_share"), 2) + _ci(getattr(g, f"{key}_ci"), 2), _paper(p.get(f"{key}_share"))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", f"The `paper` columns are {PAPER_LABEL} (Tables 3 and 4; means with sd in parentheses). "
                    "top-1: share of words whose target is the closest token; top-20: among the 20 closest; "
                    "a group whose optimization diverged counts as a miss. Brackets: 95% intervals (bootstrap over "
                    "the words for means, exact binomial for shares).", ""]


def _beside(headers: list[str], ours: list[list[str]], paper: list[list[str]], source: str) -> list[str]:
    """One table: this artifact's rows on the left, the paper's on the right (blank cells where one is shorter)."""
    cells = [*headers, *[f"paper: {h}" for h in headers]]
    lines = [f"Left: this artifact. Right (`paper`): {PAPER_LABEL}, {source}.", "",
             "| " + " | ".join(cells) + " |", "|" + "---|" * len(cells)]
    for i in range(max(len(ours), len(paper))):
        row = (ours[i] if i < len(ours) else [""] * len(headers)) + (paper[i] if i < len(paper) else [""] * len(headers))
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def _header(ev: Evaluation) -> list[str]:
    a = ev.artifact
    diverged = ", ".join(f"{n} {name}" for name, n in a.diverged.items())
    kept = a.rows.get("neurons", 0) - a.diverged.get("neurons", 0)
    return [f"Model `{a.model}`, {a.steps} optimization steps. Rows: "
            + ", ".join(f"{n} {name}" for name, n in a.rows.items()) + f"; diverged and left out: {diverged} "
            f"(Table 1 averages {kept} neurons).",
            f"Columns marked `paper` hold the paper's {PAPER_MODEL} figures (Baeumel et al.), not this artifact's. "
            "sd is the sample standard deviation; shares are fractions.", ""]


def _flat(value, prefix: str = "") -> list[tuple[str, str]]:
    """A nested dict as (dotted key, text) pairs; lists of scalars joined by commas."""
    if isinstance(value, dict):
        return [pair for key, v in value.items() for pair in _flat(v, f"{prefix}{key}.")]
    if isinstance(value, list) and not any(isinstance(v, (dict, list)) for v in value):
        value = ", ".join(map(str, value))
    return [(prefix.rstrip("."), _cell(value))]


def _duration(seconds) -> str:
    return "–" if seconds is None else f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def _traces_section(traces: dict) -> list[str]:  # {config: Traces}
    """How the ascents ended (not in the paper): late collapses and rows that never rose above 0."""
    lines = ["## How the optimizations ended (not in the paper)", "",
             "Each row holds the input of the final step, as in the paper. From each row's activation trace: "
             "rows whose final activation is below half of the highest their trace recorded (the ascent "
             "collapsed late), and rows that never rose above 0.", "",
             "| rows | optimized | ended below half of their peak | never above 0 | largest falls: row (peak → final) |",
             "|---|---|---|---|---|"]
    for name, t in traces.items():
        falls = ", ".join(f"{_cell(e.row)} ({_f(e.peak, 2)} → {_f(e.final, 2)})" for e in t.examples) or "–"
        lines.append(f"| {name} | {t.rows} | {t.ended_below_half_peak} | {t.never_above_zero} | {falls} |")
    return lines + [""]


def _build_section(build: dict) -> list[str]:
    """How the artifact was built, as its build_info.json records it (`settings`, `versions`, `runtime`)."""
    from .manifest import Runtime, Versions

    run = Runtime.from_dict(build.get("runtime") or {})
    lines = ["## How this artifact was built", "", "As recorded in the artifact's build_info.json.", ""]
    if run.recorded:
        facts = [("processes", "–" if run.processes is None else run.processes),
                 ("wall time of the build's last sitting", _duration(run.wall_seconds))]
        if run.optimize_seconds is not None:
            facts.append(("optimization time, every chunk's own, summed over sittings and processes",
                          f"{_duration(run.optimize_seconds)}, {_f(run.chunks_timed, None)} of "
                          f"{_f(run.chunks, None)} chunks timed"))
        facts += [(f"peak memory, process {rank}", ", ".join(f"{kind} {value / 2**30:.2f} GiB" for kind, value in peak.items()))
                  for rank, peak in enumerate(run.peak_memory_bytes or [])]
        facts += _flat({"machine": run.machine} if run.machine else {}) + _flat(run.other)
        lines += ["| run | |", "|---|---|", *(f"| {key} | {value} |" for key, value in facts), ""]
    else:
        lines += ["The artifact records no run (processes, times, memory).", ""]
    lines += ["| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in _flat(build.get("settings") or {})), ""]
    versions = Versions.from_dict(build.get("versions") or {}).to_dict()
    if any(versions.values()):
        lines += ["Versions: " + ", ".join(f"{name} {_cell(v or '–')}" for name, v in sorted(versions.items())) + ".", ""]
    return lines


def markdown(evaluation, figure_paths: list[str], build: dict | None = None) -> str:
    """report.md: every table beside the paper's figures, the figures (paths as given, relative to report.md),
    and how the artifact was built (`build`: settings, versions, runtime as build_info.json records them)."""
    ev = as_evaluation(evaluation)
    if build is None and isinstance(evaluation, dict):
        build = evaluation.get("build")
    lines = [f"# Feature textualization report: {ev.artifact.model}", "", *_header(ev),
             "## Single neurons (paper Table 1)", "", *_table1(ev),
             "## By layer (paper Figures 2-4)", "", *_layer_fits(ev),
             "| layer | neurons | activation | most activating token | closest-token cosine |", "|---|---|---|---|---|"]
    per_layer = zip(*(ev.by_layer[key].layers for key, _ in _LAYER_ROWS))
    lines += [f"| {a.layer} | {a.n} | {_ms(a.mean, a.sd)} | {_ms(m.mean, m.sd)} | {_ms(c.mean, c.sd)} |"
              for a, m, c in per_layer]
    lines += ["", f"Means (sd) per layer. {PAPER_LABEL}: the closest-token cosine is "
              f"{PAPER['by_layer']['closest_cosine']['last_layer_mean']} (0.02) in the last layer (section 4.2).", ""]
    lines += _image(figure_paths, "activation_by_layer", "activation by layer") + _image(
        figure_paths, "closest_cosine_by_layer", "closest-token cosine by layer")
    lines += ["## Closest tokens of single neurons (paper Table 2)", "",
              *_beside(["neuron", "closest tokens (cosine)"],
                       [[r.neuron, _tokens(r.nearest, 3)] for r in ev.table2],
                       [[r["neuron"], _tokens(r["nearest"])] for r in PAPER["table2"]], "Table 2")]
    if ev.pca is not None:
        pca, ratio = ev.pca, [_f(r) if r is None else f"{r:.1%}" for r in ev.pca.explained_variance_ratio]
        lines += ["## PCA of optimized inputs and vocabulary vectors (paper Figure 5)", "",
                  f"PC1 and PC2 explain {ratio[0]} and {ratio[1]} of the variance of all points. Centroids (PC1, PC2): "
                  + "; ".join(f"{kind} ({pca.points[kind]} points) ({_f(c[0], 2)}, {_f(c[1], 2)})"
                              for kind, c in pca.centroids.items()) + f". {PAPER_LABEL}: {PAPER['pca']}.", ""]
        lines += _image(figure_paths, "pca", "PCA of optimized inputs and vocabulary vectors")
    lines += ["## Neuron groups (paper Tables 3 and 4)", "", *_groups_table(ev)]
    lines += _image(figure_paths, "group_top_k", "top-1 and top-20 shares against k")
    t5 = ev.table5
    lines += ["## Closest tokens of neuron groups (paper Table 5)", "",
              f"This artifact: {t5.selection}, k = {t5.k}, the groups whose optimized input lies closest to its "
              "target word, then the farthest (target rank and cosine in brackets). The paper's examples are "
              "hand-picked, k = 250.", "",
              *_beside(["target word", "closest tokens (cosine)"],
                       [[f"{_cell(e.word)} [{e.target_rank}, {_f(e.target_cosine)}]", _tokens(e.nearest)]
                        for e in t5.examples],
                       [[e["word"], _tokens(e["nearest"])] for e in PAPER["table5"]["examples"]], "Table 5")]
    lines += _traces_section(ev.traces)
    if build is not None:
        lines += _build_section(build)
    return "\n".join(lines)


def card_section(evaluation, figure_paths: list[str]) -> str:
    """The dataset card's results section (under its "## Results"), and `ft-artifacts info`'s (no figures):
    the summary tables beside the paper's, and the figures by relative path. Tables 2 and 5 and the
    per-layer means stay in report.md."""
    ev = as_evaluation(evaluation)
    lines = [*_header(ev), "### Single neurons (paper Table 1)", "", *_table1(ev),
             "### By layer (paper Figures 2-4)", "", *_layer_fits(ev)]
    lines += _image(figure_paths, "activation_by_layer", "activation by layer")
    lines += _image(figure_paths, "closest_cosine_by_layer", "closest-token cosine by layer")
    lines += _image(figure_paths, "pca", "PCA of optimized inputs and vocabulary vectors")
    lines += ["### Neuron groups (paper Tables 3 and 4)", "", *_groups_table(ev)]
    lines += _image(figure_paths, "group_top_k", "top-1 and top-20 shares against k")
    lines += ["`ft-artifacts report` on this artifact writes the whole evaluation: these tables, per-layer means, "
              "the closest tokens of single neurons and of groups (paper Tables 2 and 5), report.json and the figures."]
    return "\n".join(lines)


def directions_markdown(summary: dict, level: int = 3) -> list[str]:
    """The section's lines (a heading of `level`, one table row per file and layer)."""
    lines = [f"{'#' * level} Directions (config `directions`)", "",
             f"{summary['rows']} directions, {summary['diverged']} diverged.", "",
             "| file | layer | rows | diverged | activation | most activating token's | above it |",
             "|---|---|---|---|---|---|---|"]
    for s in summary["sources"]:
        above = _f(s["above_most_activating"], 2)
        lines.append(f"| {s['file']} | {s['layer']} | {s['rows']} | {s['diverged']} | "
                     f"{_ms(s['activation_mean'], s['activation_sd'])} | "
                     f"{_ms(s['most_activating_mean'], s['most_activating_sd'])} | {above} |")
    return lines + ["", "Means (sd) over the rows that did not diverge: the objective sum_i d_i a_i at the optimized "
                    "input and at the vocabulary's most activating token; `above it`: the share of rows whose optimized "
                    "input exceeds that token.", ""]
