"""The optional `directions` config's rows in, a short summary out (report.json's `directions`, a section
of report.md and of the dataset card): per directions file and layer, how many rows, how many diverged,
and the optimized input's activation against the most activating vocabulary token's, as the group rows
have it. The paper's tables do not include directions, so there is nothing of the paper's beside it."""

from __future__ import annotations

import numpy as np

from .report import diverged_rows, mean_sd


def directions_summary(table) -> dict:
    """{"rows", "diverged", "sources": [{"file", "layer", "rows", "diverged", "activation_mean", "activation_sd",
    "most_activating_mean", "most_activating_sd", "above_most_activating"}]}: means over the rows that did not
    diverge (the report's one rule, `report.diverged_rows`); `above_most_activating` is the share of those whose
    optimized input activates the direction more than its most activating token does."""
    from .report import _column

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


def directions_markdown(summary: dict, level: int = 3) -> list[str]:
    """The section's lines (a heading of `level`, one table row per file and layer)."""
    from .report_markdown import _f, _ms

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
