"""An artifact's neurons, word_groups and vocabulary tables in; the paper's evaluation out (Tables 1-5 and
the statistics of Figures 2-5) as one typed `Evaluation` (ft_artifacts.evaluation), rendered as report.json,
report.md, the figures, the dataset card's results section and build_info.json's `results`.

    evaluation = compute_evaluation(art.neurons, art.word_groups, art.vocabulary, model="minilm", steps=5000)
    write_report(art_or_path, "report/")     # report.json, report.md, figures/*.png

Every number comes from the artifact's own rows; nothing loads the model. Rows that diverged (a true
`diverged` column, or a non-finite optimized vector or activation: `diverged_rows`, the one rule) are left
out of every mean, sd, interval and fit, and counted in `evaluation.artifact.diverged`; in Tables 3 and 4 a diverged group still counts as one of
the words, and as a miss in the top-1/top-20 shares. sd is the sample standard deviation (n - 1); shares are
fractions in [0, 1]; every `*_ci` is a 95% interval (ft_artifacts.evaluation). Paper figures (bert-base-uncased) sit beside each table, labelled as such.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import ArtifactError
from .evaluation import (Evaluation, GroupStats, GroupTokens, LayerFit, LayerMean, NeuronTokens, Pca, Rows, Table1,
                         Table5, Token, TraceEnd, Traces, mean_ci, share_ci)
from .files import atomic_path
from .progress import stage
from .records import to_json
from .report_markdown import card_section, directions_markdown, markdown
from .report_paper import PAPER, PAPER_MODEL

__all__ = ["Evaluation", "ReportData", "artifact_model_info", "card_section", "compute_evaluation", "compute_report",
           "diverged_rows", "evaluate", "markdown", "mean_sd", "ols", "report_dict", "summarize", "write_report"]
logger = logging.getLogger(__name__)

REPORT_JSON, REPORT_MD = "report.json", "report.md"
TABLE2_NEURONS, TABLE2_TOKENS = 3, 3  # Table 2: 3 neurons each of the first and the last layer, 3 tokens each
TABLE5_K, TABLE5_EACH, TABLE5_TOKENS = 250, 3, 4  # Table 5: k = 250, closest/farthest 3 groups, 4 tokens
TRACE_EXAMPLES = 5  # the rows whose activation fell most from their traced peak
BY_LAYER = ("activation", "most_activating", "closest_cosine")  # Figures 2/3 (two) and 4
_COLUMNS = {
    "neurons": ("neuron", "layer", "index", "vector", "activation", "most_activating_token",
                "most_activating_activation", "nearest", "activation_trace"),
    "word_groups": ("word", "selection", "k", "vector", "activation", "target_rank", "target_cosine",
                    "target_activation", "nearest", "activation_trace"),
    "vocabulary": ("token", "vector"),
}


def _as_table(data, config: str):
    """A `datasets.Dataset` (its current view) or a `pyarrow.Table` as a `pyarrow.Table`."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        table = data
    elif hasattr(data, "with_format"):
        table = data.with_format("arrow")[:]
    else:
        raise TypeError(f"{config}: expected a datasets.Dataset or a pyarrow.Table, got {type(data).__name__}")
    missing = [c for c in _COLUMNS[config] if c not in table.column_names]
    if missing:
        raise ArtifactError(f"the {config} table lacks column(s) {', '.join(missing)}; is this an ft-artifacts artifact?")
    if table.num_rows == 0:
        raise ArtifactError(f"the {config} table is empty: nothing to report")
    return table


def _matrix(table, config: str) -> np.ndarray:
    """The `vector` column as a float32 [n, h] array."""
    import pyarrow.compute as pc

    column = table.column("vector").combine_chunks()
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if column.null_count or lengths.min() != lengths.max() or lengths.min() == 0:
        raise ArtifactError(f"the {config} table's vectors are missing or of unequal length")
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(column), -1)


def diverged_rows(table, vectors: np.ndarray | None = None) -> np.ndarray:
    """[rows] bool: the one rule for a row left out of the evaluation. A row diverged when its `diverged`
    column says so or when its optimized vector or activation is not finite (what the optimizer marks as
    diverged; checked again, so a table without the column, or a doctored one, follows the same rule)."""
    vectors = _matrix(table, "optimized") if vectors is None else vectors
    out = ~(np.isfinite(vectors).all(axis=1) & np.isfinite(_column(table, "activation")))
    if "diverged" in table.column_names:
        out |= np.asarray(table.column("diverged").fill_null(False).to_pylist(), dtype=bool)
    return out


@dataclass
class ReportData:
    """The columns the report reads, as numpy arrays, with diverged optimized rows already removed."""

    rows: dict          # {config: rows in the table}, diverged rows included
    diverged: dict      # {config: rows left out}
    neurons: dict       # column name -> array (or list), kept rows only
    groups: dict
    vocab_vectors: np.ndarray  # [V, h]
    vocab_tokens: list
    group_words: dict   # {(selection, k): rows}, diverged rows included: a diverged group is a miss

    @classmethod
    def from_tables(cls, neurons, word_groups, vocabulary) -> "ReportData":
        tables = {name: _as_table(t, name) for name, t in
                  (("neurons", neurons), ("word_groups", word_groups), ("vocabulary", vocabulary))}
        vocab = _matrix(tables["vocabulary"], "vocabulary")
        kept, diverged = {}, {}
        for name in ("neurons", "word_groups"):
            table, vectors = tables[name], _matrix(tables[name], name)
            if vectors.shape[1] != vocab.shape[1]:
                raise ArtifactError(f"{name} vectors have {vectors.shape[1]} dimensions, the vocabulary's "
                                    f"{vocab.shape[1]}")
            keep = ~diverged_rows(table, vectors)
            diverged[name] = int((~keep).sum())
            index = np.flatnonzero(keep)
            columns = {c: _column(table, c)[index] for c in _COLUMNS[name]
                       if c not in ("vector", "nearest", "activation_trace")}
            columns["nearest"] = [table.column("nearest")[int(i)].as_py() for i in index]
            columns["activation_trace"] = [table.column("activation_trace")[int(i)].as_py() or [] for i in index]
            columns["vector"] = vectors[index]
            kept[name] = columns
        n = kept["neurons"]
        n["closest_token"] = np.asarray([row[0]["token"] if row else None for row in n["nearest"]], dtype=object)
        n["closest_cosine"] = np.asarray([row[0]["cosine"] if row else np.nan for row in n["nearest"]], dtype=np.float64)
        n["most_activating"] = n["most_activating_activation"]
        rows = {name: t.num_rows for name, t in tables.items()}
        configs = zip(_column(tables["word_groups"], "selection"), _column(tables["word_groups"], "k"))
        group_words = Counter((str(selection), int(k)) for selection, k in configs)
        return cls(rows, diverged, n, kept["word_groups"], vocab, tables["vocabulary"].column("token").to_pylist(),
                   dict(group_words))

    @property
    def optimized(self) -> bool:
        """Whether any optimized row (single neuron or group) is left to draw: every figure needs one."""
        return bool(len(self.neurons["layer"]) and len(self.groups["k"]))

    @cached_property
    def pca(self) -> dict:
        """Figure 5: a 2-D PCA (numpy SVD) fitted on the vocabulary vectors and all optimized inputs together.
        Returns {"coords": {kind: [n, 2]}, "explained_variance_ratio": [2]}."""
        parts = {"vocabulary": self.vocab_vectors, "neurons": self.neurons["vector"], "word_groups": self.groups["vector"]}
        x = np.concatenate(list(parts.values())).astype(np.float64)
        x -= x.mean(axis=0)
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        components = vt[:2] * np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)])[:, None]  # fixed signs
        coords, start = {}, 0
        for kind, part in parts.items():
            coords[kind] = x[start:start + len(part)] @ components.T
            start += len(part)
        return {"coords": coords, "explained_variance_ratio": (s[:2] ** 2 / (s ** 2).sum()).tolist()}


_TEXT = {"neuron", "most_activating_token", "word", "selection", "token"}


def _column(table, name: str) -> np.ndarray:
    """A scalar column as float64 (numbers), int64 (counts, ids) or object (text) array."""
    column = table.column(name)
    if name in _TEXT:
        return np.asarray(column.to_pylist(), dtype=object)
    if name in ("layer", "index", "k", "target_rank"):
        import pyarrow as pa

        return column.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)  # null: a diverged row's rank
    return column.to_numpy(zero_copy_only=False).astype(np.float64)


# --- statistics -------------------------------------------------------------------------------------
def mean_sd(values) -> tuple[float | None, float | None]:
    """Mean and sample sd (n - 1; None for one value; both None for none)."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return None, None
    return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else None)


def ols(x, y) -> dict:
    """Ordinary least squares of y on x: {"slope", "intercept", "t", "df", "p", "n"}, p two-sided with
    df = n - 2 (scipy.stats.linregress). Undefined values (fewer than 3 points, constant x) are None;
    a perfect fit has t = +-inf (null in report.json)."""
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    out = {"slope": None, "intercept": None, "t": None, "df": n - 2, "p": None, "n": n}
    if n < 3 or np.ptp(x) == 0:
        return out
    fit = stats.linregress(x, y)
    t = fit.slope / fit.stderr if fit.stderr > 0 else (math.copysign(math.inf, fit.slope) if fit.slope else None)
    out.update(slope=float(fit.slope), intercept=float(fit.intercept), t=t, p=float(fit.pvalue))
    return out


def _by_layer(n: dict, name: str) -> LayerFit:
    values, layers = n[name], n["layer"]
    means = [LayerMean(int(layer), int((layers == layer).sum()), *mean_sd(values[layers == layer]))
             for layer in np.unique(layers)]
    return LayerFit(**ols(layers, values), layers=means)


def _nearest(row: list, top: int) -> list[Token]:
    return [Token(item["token"], float(item["cosine"])) for item in row[:top]]


def _table2(n: dict) -> list[NeuronTokens]:
    """Closest tokens of the first sampled neurons (lowest indices) of the first and the last layer."""
    out = []
    if not len(n["layer"]):
        return out
    for layer in sorted({int(n["layer"].min()), int(n["layer"].max())}):
        rows = sorted(np.flatnonzero(n["layer"] == layer), key=lambda i: int(n["index"][i]))[:TABLE2_NEURONS]
        out += [NeuronTokens(str(n["neuron"][i]), layer, _nearest(n["nearest"][i], TABLE2_TOKENS)) for i in rows]
    return out


def _groups(g: dict, words: dict) -> list[GroupStats]:
    """Tables 3 and 4, one entry per (selection, k) of `words` ({(selection, k): rows, diverged ones
    included}). Means are over the rows that did not diverge; shares are over all words, so a diverged
    row counts as a miss."""
    out = []
    for (selection, k), total in sorted(words.items()):
        m = (g["selection"] == selection) & (g["k"] == k)
        entry = {"selection": selection, "k": k, "words": int(total), "diverged": int(total - m.sum())}
        for key, column in (("cosine_target", "target_cosine"), ("activation", "activation"),
                            ("target_activation", "target_activation")):
            entry[f"{key}_mean"], entry[f"{key}_sd"] = mean_sd(g[column][m])
            entry[f"{key}_ci"] = mean_ci(g[column][m])
        rank = g["target_rank"][m]
        for key, hits in (("top1", int((rank == 1).sum())), ("top20", int((rank <= 20).sum()))):
            entry[f"{key}_share"], entry[f"{key}_ci"] = hits / total, share_ci(hits, int(total))
        out.append(GroupStats(**entry))
    return out


def _table5(g: dict) -> Table5:
    """The groups of one configuration (relative if present, k nearest 250) whose optimized inputs lie
    closest to and farthest from their target word, with their closest tokens."""
    if not len(g["selection"]):
        return Table5(None, None, [])
    selection = "relative" if "relative" in set(g["selection"]) else sorted(set(g["selection"]))[0]
    ks = sorted({int(k) for s, k in zip(g["selection"], g["k"]) if s == selection})
    k = min(ks, key=lambda value: (abs(value - TABLE5_K), value))
    rows = np.flatnonzero((g["selection"] == selection) & (g["k"] == k))
    rows = sorted(rows, key=lambda i: (-g["target_cosine"][i], str(g["word"][i])))
    chosen = rows if len(rows) <= 2 * TABLE5_EACH else rows[:TABLE5_EACH] + rows[-TABLE5_EACH:]
    return Table5(selection, k, [GroupTokens(str(g["word"][i]), int(g["target_rank"][i]), float(g["target_cosine"][i]),
                                             _nearest(g["nearest"][i], TABLE5_TOKENS)) for i in chosen])


def _traces(labels, finals, traces) -> Traces:
    """How the ascents ended, from each row's activation trace (the objective every `trace_every` steps):
    rows whose final activation is below half of the highest the trace recorded (the ascent collapsed
    late), and rows that never rose above 0. The rows hold the final step's input either way."""
    peaks = np.array([max([*trace, final]) for trace, final in zip(traces, finals)], dtype=np.float64)
    finals = np.asarray(finals, dtype=np.float64)
    collapsed = np.flatnonzero((peaks > 0) & (finals < 0.5 * peaks))
    worst = sorted(collapsed, key=lambda i: (-(peaks[i] - finals[i]), str(labels[i])))[:TRACE_EXAMPLES]
    return Traces(len(finals), len(collapsed), int((peaks <= 0).sum()),
                  [TraceEnd(str(labels[i]), float(peaks[i]), float(finals[i])) for i in worst])


def _share(flags) -> tuple[float | None, tuple[float, float] | None]:
    flags = np.asarray(flags, dtype=bool)
    return (float(flags.mean()) if len(flags) else None), share_ci(int(flags.sum()), len(flags))


def evaluate(data: ReportData, model: str, steps: int) -> Evaluation:
    """The paper's evaluation of prepared data (see `compute_report`)."""
    n, g = data.neurons, data.groups
    table1 = {}
    for key, values in (("activation", n["activation"]), ("most_activating", n["most_activating"]),
                        ("closest_cosine", n["closest_cosine"])):
        table1[f"{key}_mean"], table1[f"{key}_sd"] = mean_sd(values)
        table1[f"{key}_ci"] = mean_ci(values)
    norms = np.linalg.norm(n["vector"].astype(np.float64), axis=1)
    table1["norm_optimized_mean"], table1["norm_optimized_ci"] = mean_sd(norms)[0], mean_ci(norms)
    table1["norm_vocabulary_mean"] = float(np.linalg.norm(data.vocab_vectors.astype(np.float64), axis=1).mean())
    table1["closest_is_most_activating_share"], table1["closest_is_most_activating_ci"] = _share(
        n["closest_token"] == n["most_activating_token"])
    pca = data.pca
    centroids = {kind: [float(v) for v in c.mean(axis=0)] if len(c) else [None, None] for kind, c in pca["coords"].items()}
    return Evaluation(
        artifact=Rows(model, int(steps), dict(data.rows), dict(data.diverged)),
        table1=Table1(**table1),
        by_layer={key: _by_layer(n, key) for key in BY_LAYER},
        table2=_table2(n),
        pca=Pca(list(pca["explained_variance_ratio"]), centroids, {kind: len(c) for kind, c in pca["coords"].items()}),
        groups=_groups(g, data.group_words),
        table5=_table5(g),
        traces={"neurons": _traces(n["neuron"], n["activation"], n["activation_trace"]),
                "word_groups": _traces([f"{w}/{s}/{k}" for w, s, k in zip(g["word"], g["selection"], g["k"])],
                                       g["activation"], g["activation_trace"])},
    )


def report_dict(evaluation: Evaluation, build: dict | None = None) -> dict:
    """report.json: the evaluation, the paper's figures beside it, and (when known) how the artifact was built."""
    out = dict(evaluation.to_dict(), paper={"model": PAPER_MODEL, **PAPER})
    if build is not None:
        out["build"] = to_json(build)
    return out


def summarize(data: ReportData, model: str, steps: int) -> dict:
    """The report dict of prepared data: `report_dict(evaluate(...))`."""
    return report_dict(evaluate(data, model, steps))


def compute_report(neurons, word_groups, vocabulary, model: str, steps: int) -> dict:
    """The report of three tables (`datasets.Dataset` or `pyarrow.Table`, columns as in `schema.py`):
    keys artifact, table1, by_layer, table2, pca, groups, table5, traces and paper; JSON-ready."""
    return summarize(ReportData.from_tables(neurons, word_groups, vocabulary), model, steps)


def compute_evaluation(neurons, word_groups, vocabulary, model: str, steps: int) -> Evaluation:
    """The `Evaluation` of three tables (see `compute_report`)."""
    return evaluate(ReportData.from_tables(neurons, word_groups, vocabulary), model, steps)


# --- artifacts ----------------------------------------------------------------------------------------
def artifact_model_info(artifact) -> tuple[str, int]:
    """(model id, optimization steps) of an artifact: the one place that reads them from its manifest."""
    try:
        manifest = artifact.manifest
        return str(manifest.model.id), int(manifest.settings.optim.steps)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"the artifact's manifest names no model id or optimization steps ({exc!r})") from exc


def build_record(manifest) -> dict:
    """How an artifact was built, from its manifest: the build settings, the package versions, and the
    run (processes, wall time, optimization time over all sittings, peak memory, machine) as recorded."""
    return to_json({"settings": manifest.settings.to_dict(), "versions": manifest.versions.to_dict(),
                    "runtime": manifest.runtime.to_dict()})


def _ticker(progress, name: str, total: int):
    """A function that advances one stage's (done, total) by one; it reports (0, total) at once, so a bar's
    clock starts with its stage."""
    callback, done = stage(progress, name), [0]
    if callback:
        callback(0, total)

    def tick() -> None:
        done[0] += 1
        if callback:
            callback(done[0], total)

    return tick


def _with_directions(text: str, report: dict) -> str:
    """report.md with the `directions` section (when the artifact has that config) before "how it was built"."""
    if "directions" not in report:
        return text
    section = "\n".join(directions_markdown(report["directions"], level=2))
    head, marker, tail = text.partition("\n## How this artifact was built")
    return f"{head}\n{section}{marker}{tail}" if marker else f"{text}\n\n{section}"


def write_report(artifact, out_dir, progress=None, revision: str | None = None) -> dict:
    """Write report.json, report.md and figures/*.png for an artifact (an object with `.neurons`,
    `.word_groups`, `.vocabulary` and a manifest, or a folder / Hub repo id to load). Returns
    {"report": report.json's dict, "evaluation": Evaluation, "files": [paths relative to out_dir]}."""
    from .figures import FIGURES, write_figures

    if isinstance(artifact, (str, Path)):
        from .loader import load

        artifact = load(artifact, revision=revision)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out} exists and is not a folder")
    model, steps = artifact_model_info(artifact)
    tick = _ticker(progress, "report: read tables", 3)
    tables = []
    for name in ("neurons", "word_groups", "vocabulary"):
        tables.append(getattr(artifact, name))
        tick()
    tick = _ticker(progress, "report: statistics", 3)
    data = ReportData.from_tables(*tables)
    tick()
    data.pca  # noqa: B018 (the slow part: an SVD over every vocabulary and optimized vector)
    tick()
    evaluation = evaluate(data, model, steps)
    build = build_record(artifact.manifest)
    report = report_dict(evaluation, build)
    if "directions" in artifact.manifest.configs:  # the optional config: a short section of its own
        report["directions"] = directions_summary(artifact.directions)
    tick()
    out.mkdir(parents=True, exist_ok=True)
    figures = write_figures(evaluation, data, out, progress=stage(progress, "report: figures")) if data.optimized else []
    for name, text in ((REPORT_JSON, json.dumps(report, indent=2, allow_nan=False) + "\n"),
                       (REPORT_MD, _with_directions(markdown(evaluation, figures, build), report))):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
    logger.info("wrote %s, %s and %d of %d figures to %s", REPORT_JSON, REPORT_MD, len(figures), len(FIGURES), out)
    return {"report": report, "evaluation": evaluation, "files": [REPORT_JSON, REPORT_MD, *figures]}


# --- the optional `directions` config: a short summary beside the paper's evaluation ------------------------
# Per directions file and layer: how many rows, how many diverged, and the optimized input's activation against
# the most activating vocabulary token's, as the group rows have it. The paper's tables do not include directions.

def directions_summary(table) -> dict:
    """{"rows", "diverged", "sources": [{"file", "layer", "rows", "diverged", "activation_mean", "activation_sd",
    "most_activating_mean", "most_activating_sd", "above_most_activating"}]}: means over the rows that did not
    diverge (the report's one rule, `report.diverged_rows`); `above_most_activating` is the share of those whose
    optimized input activates the direction more than its most activating token does."""
    data = table.with_format("arrow")[:] if hasattr(table, "with_format") else table
    if data.num_rows == 0:
        return {"rows": 0, "diverged": 0, "sources": []}
    diverged = diverged_rows(data)
    files = np.asarray(data.column("file").to_pylist(), dtype=object)
    layers = np.asarray(data.column("layer").to_pylist())
    activation = _column(data, "activation")
    most = _column(data, "most_activating_activation")
    sources = []
    for file, layer in dict.fromkeys(zip(files.tolist(), layers.tolist())):
        rows = (files == file) & (layers == layer)
        kept = rows & ~diverged
        entry = {"file": file, "layer": int(layer), "rows": int(rows.sum()), "diverged": int((rows & diverged).sum())}
        entry["activation_mean"], entry["activation_sd"] = mean_sd(activation[kept])
        entry["most_activating_mean"], entry["most_activating_sd"] = mean_sd(most[kept])
        entry["above_most_activating"] = float((activation[kept] > most[kept]).mean()) if kept.any() else None
        sources.append(entry)
    return {"rows": int(data.num_rows), "diverged": int(diverged.sum()), "sources": sources}
