"""Interim dataset card (replaced by the DatasetCard-based renderer)."""

from __future__ import annotations


def render_card(*, model_id, model_revision, package_version, configs, default_config, settings, results_markdown,
                num_layers, hidden_size, nonpositive_max, repo_id, example_neuron, example_group, example_word,
                extra_markdown=""):
    import json

    lines = ["---", "configs:"]
    for name, files, rows, desc in configs:
        lines += [f"- config_name: {name}", "  data_files:", "  - split: train", "    path:"]
        lines += [f"    - {f}" for f in files]
        if name == default_config:
            lines.append("  default: true")
    lines += ["---", "", f"# {json.dumps(model_id)}", "", results_markdown, extra_markdown]
    return "\n".join(lines) + "\n"
