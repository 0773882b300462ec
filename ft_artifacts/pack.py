"""Tables in, the artifact folder out: parquet configs, FAISS indexes, the dataset card and
build_info.json (the manifest, written last, with the sha256 and size of every other file).

The packer knows the artifact format and nothing about presets or sampling: the builder hands it
the four configs' tables, the model's description and the settings to record."""

from __future__ import annotations

import logging
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_path, sha256_file
from .index import build_index, write_index
from .manifest import (CARD, CONFIGS, OPTIMIZED_CONFIGS, OPTIONAL_CONFIGS, VOCAB_INDEX,
                       ConfigEntry, FileEntry,
                       IndexEntry, Manifest, ModelInfo, Runtime, Versions, data_file, index_file, write_manifest)
from .schema import features
from .settings import BuildConfig
from .report import card_section

logger = logging.getLogger(__name__)

DESCRIPTIONS = {
    "neurons": "one sampled neuron and its optimized input",
    "word_groups": "one (word, selection, k) neuron group and its optimized input",
    "vocabulary": "one vocabulary token and its vectors (the rows of index/vocab.faiss)",
    "neuron_stats": "one neuron of the model: a_max, its most activating token and the scan's top 10 tokens",
    "directions": "one row of a directions file (a direction in a layer's neuron space) and its optimized input",
}


def optimized_vectors(table, hidden_size: int) -> np.ndarray:
    """One optimized config's analysis vectors [rows, h], diverged rows as zeros (no direction)."""
    table = table.with_format("numpy")
    vectors = np.asarray(table["vector"], dtype=np.float32).reshape(len(table), hidden_size)
    vectors[np.asarray(table["diverged"], dtype=bool)] = 0.0
    return vectors


def pack_artifact(
    out: Path,
    *,
    tables: dict[str, Any],
    model: ModelInfo,
    settings: BuildConfig | dict,
    settings_table: dict[str, str],
    words: list[str],
    nonpositive_max: int,
    tmp_dir: Path | None = None,
    progress=None,
    repo_id: str | None = None,
    runtime=None,
    space_id: str | None = None,
) -> Manifest:
    """Write every file of the artifact atomically (temporary files in `tmp_dir`); build_info.json
    goes last. `tables` maps each config to a `datasets.Dataset`; `settings` is the BuildConfig (or its
    `to_dict()`) recorded as build_info.json's settings; `repo_id`, when known, goes into
    the card's usage snippet; `runtime` (processes, peak memory, wall time; or a function returning
    them, called as packing ends) goes into build_info.json
    only, so the data, index and card files do not depend on how the build ran. Returns the manifest."""
    out = Path(out)
    configs = CONFIGS + tuple(c for c in OPTIONAL_CONFIGS if c in tables)  # an optional config only when built
    steps = len(configs) + 3
    written: list[str] = []
    for done, name in enumerate(configs, 1):
        rel = data_file(name)
        with atomic_path(out / rel, tmp_dir=tmp_dir) as tmp:
            tables[name].cast(features(name)).to_parquet(str(tmp))
        written.append(rel)
        _report(progress, done, steps)
    vocab_vectors = np.asarray(tables["vocabulary"].with_format("numpy")["vector"], dtype=np.float32)
    vocab_vectors = vocab_vectors.reshape(len(tables["vocabulary"]), model.hidden_size)
    indexes = {  # one index per config, named after it (the vocabulary's: vocab), row i = the config's row i
        VOCAB_INDEX: (vocab_vectors, ("vocabulary",)),
        **{name: (optimized_vectors(tables[name], model.hidden_size), (name,))
           for name in configs if name in OPTIMIZED_CONFIGS or name in OPTIONAL_CONFIGS},
    }
    index_entries = {}
    for name, (vectors, sources) in indexes.items():
        write_index(build_index(vectors), out / index_file(name), tmp_dir=tmp_dir)
        written.append(index_file(name))
        index_entries[name] = IndexEntry(index_file(name), model.hidden_size, len(vectors),
                                         tuple((c, len(tables[c])) for c in sources))
    _report(progress, steps - 1, steps)
    evaluation, figures = _evaluate(out, tables, model.id, tmp_dir)
    results_md = card_section(evaluation, figures)
    if "directions" in tables:
        from .report import directions_summary
        from .report_markdown import directions_markdown

        results_md += "\n\n" + "\n".join(directions_markdown(directions_summary(tables["directions"])))
    if not figures:
        results_md += "\n\nNo evaluation figures: every optimized row of a table diverged."
    written += figures
    manifest = Manifest(
        model=model,
        settings=settings if isinstance(settings, BuildConfig) else BuildConfig.from_dict(settings),
        words=list(words),
        nonpositive_max=int(nonpositive_max),
        configs={name: ConfigEntry(len(tables[name]), (data_file(name),)) for name in configs},
        indexes=index_entries,
        results=evaluation.to_dict(),
        versions=Versions.from_dict(_versions()),
    )
    with atomic_path(out / CARD, tmp_dir=tmp_dir) as tmp:
        tmp.write_text(_card(manifest, results_md, settings_table, tables, repo_id, space_id), encoding="utf-8")
    written.append(CARD)
    manifest.files = {rel: FileEntry(sha256_file(out / rel), (out / rel).stat().st_size) for rel in sorted(written)}
    manifest.runtime = Runtime.from_dict(dict((runtime() if callable(runtime) else runtime) or {}))
    write_manifest(out, manifest, tmp_dir=tmp_dir)
    _report(progress, steps, steps)
    return manifest


def _evaluate(out: Path, tables: dict, model_id: str, tmp_dir: Path | None):
    """The paper's evaluation of these rows (ft_artifacts.report) and its figures, written into the
    artifact (each moved into place whole; none when every optimized row of a table diverged).
    Returns (Evaluation, figure paths relative to `out`)."""
    from .figures import write_figures
    from .report import ReportData, evaluate

    steps = int(tables["neurons"][0]["steps"]) if len(tables["neurons"]) else 0
    data = ReportData.from_tables(tables["neurons"], tables["word_groups"], tables["vocabulary"])
    evaluation = evaluate(data, model_id, steps)
    if not data.optimized:
        logger.warning("no evaluation figures: every optimized row of a table diverged")
        return evaluation, []
    return evaluation, write_figures(evaluation, data, out, tmp_dir=tmp_dir)


def _report(progress, done, total):
    if progress:
        progress(done, total)


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in Versions.DISTRIBUTIONS[1:]:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _first(table, column: str, default):
    return table[0][column] if len(table) else default


def _example_group(manifest: Manifest, groups) -> tuple[str, str, int]:
    """The card's example group: from the (selection, k) with the best top-1 share, a group whose target word is
    its nearest token (else that config's first group); the first group when there are no results."""
    if not len(groups):
        return ("word", "relative", 10)
    rows = [dict(word=w, selection=s, k=k, target_rank=r) for w, s, k, r in
            zip(groups["word"], groups["selection"], groups["k"], groups["target_rank"])]
    evaluation = manifest.evaluation
    results = [g for g in (evaluation.groups if evaluation else []) if g.top1_share is not None]
    if results:
        best = max(results, key=lambda g: (g.top1_share, g.selection == "relative", -g.k))
        rows = [r for r in rows if (r["selection"], r["k"]) == (best.selection, best.k)] or rows
    row = next((r for r in rows if r["target_rank"] == 1), rows[0])
    return (row["word"], row["selection"], int(row["k"]))


def _card(manifest: Manifest, results_md: str, settings_table: dict[str, str], tables, repo_id: str | None,
          space_id: str | None = None) -> str:
    from .card import render_card

    group = _example_group(manifest, tables["word_groups"])
    return render_card(
        model_id=manifest.model.id,
        model_revision=manifest.model.revision,
        package_version=manifest.versions.ft_artifacts or "unknown",
        configs=[(name, list(c.files), c.rows, DESCRIPTIONS[name]) for name, c in manifest.configs.items()],
        default_config=manifest.default_config,
        settings=settings_table,
        results_markdown=results_md,
        num_layers=manifest.model.num_layers,
        hidden_size=manifest.model.hidden_size,
        nonpositive_max=manifest.nonpositive_max,
        repo_id=repo_id,
        space_id=space_id,
        example_neuron=_first(tables["neurons"], "neuron", "L1.N0"),
        example_group=group,
        example_word=group[0],
    )
