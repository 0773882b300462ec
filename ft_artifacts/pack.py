"""A build's plan and optimized chunks in, the artifact folder out: parquet configs, FAISS indexes,
the dataset card and build_info.json (written last, with the sha256 and size of every other file)."""

from __future__ import annotations

import json
import logging
import platform
from importlib import metadata, resources
from pathlib import Path
from string import Template

import numpy as np

from .index import build_index, write_index
from .files import atomic_path
from .model import LoadedModel
from .naming import Neuron
from .schema import CONFIGS, DEFAULT_CONFIG, features, read_parquet
from .summary import group_summary, markdown, single_neuron_summary

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
BUILD_INFO = "build_info.json"
VOCAB_INDEX = "index/vocab.faiss"
OPTIMIZED_INDEX = "index/optimized.faiss"
DESCRIPTIONS = {
    "neurons": "one sampled neuron and its optimized input",
    "word_groups": "one (word, selection, k) neuron group and its optimized input",
    "vocabulary": "one vocabulary token and its vectors (the rows of index/vocab.faiss)",
    "neuron_stats": "one neuron of the model: a_max and its most activating token",
}


def data_file(config: str) -> str:
    return f"data/{config}/train-00000-of-00001.parquet"


def pack_artifact(out: Path, lm: LoadedModel, config, plan, chunks: dict[str, list[Path]], progress=None,
                  repo_id: str | None = None) -> None:
    """Write every file of the artifact atomically; build_info.json goes last. `repo_id`, when known,
    goes into the card's usage snippet."""
    tables = {name: read_parquet(files) for name, files in chunks.items()}
    tables["vocabulary"] = _vocabulary(lm, plan)
    tables["neuron_stats"] = _neuron_stats(lm, plan)
    steps = len(CONFIGS) + 3
    for done, name in enumerate(CONFIGS, 1):
        with atomic_path(out / data_file(name)) as tmp:
            tables[name].cast(features(name)).to_parquet(str(tmp))
        _report(progress, done, steps)
    write_index(build_index(plan.analysis), out / VOCAB_INDEX)
    optimized = np.concatenate([np.asarray(tables[n]["vector"], dtype=np.float32) for n in ("neurons", "word_groups")])
    write_index(build_index(optimized), out / OPTIMIZED_INDEX)
    _report(progress, steps - 1, steps)
    single = single_neuron_summary(tables["neurons"], np.linalg.norm(plan.analysis, axis=1))
    groups = group_summary(tables["word_groups"]) if len(tables["word_groups"]) else []
    info = _build_info(lm, config, plan, tables, single, groups)
    with atomic_path(out / "README.md") as tmp:
        tmp.write_text(render_card(info, markdown(single, groups), tables, repo_id), encoding="utf-8")
    write_build_info(out, info)
    _report(progress, steps, steps)


def _report(progress, done, total):
    if progress:
        progress(done, total)


def _vocabulary(lm: LoadedModel, plan):
    import datasets

    emb = lm.embedding_matrix.detach().float().cpu().numpy()
    return datasets.Dataset.from_dict({
        "token_id": np.arange(lm.vocab_size, dtype=np.int32),
        "token": lm.tokens,
        "vector": list(plan.analysis),
        "pre_ln_vector": list(emb),
    }, features=features("vocabulary"))


def _neuron_stats(lm: LoadedModel, plan):
    import datasets

    names = [Neuron.from_flat(i, lm.hidden_size) for i in range(lm.num_neurons)]
    sampled = set(plan.sampled)
    return datasets.Dataset.from_dict({
        "neuron": [str(n) for n in names],
        "layer": [n.layer for n in names],
        "index": [n.index for n in names],
        "a_max": plan.a_max,
        "most_activating_token": [lm.tokens[int(t)] for t in plan.argmax],
        "most_activating_token_id": plan.argmax.astype(np.int32),
        "sampled": [str(n) in sampled for n in names],
    }, features=features("neuron_stats"))


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("ft-artifacts", "torch", "transformers", "datasets", "faiss-cpu", "numpy", "pyarrow", "huggingface_hub"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _build_info(lm: LoadedModel, config, plan, tables, single, groups) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "model": {"id": lm.model_id, "revision": lm.revision, "source": lm.source, "num_layers": lm.num_layers,
                  "hidden_size": lm.hidden_size, "vocab_size": lm.vocab_size},
        "build": config.to_dict(),
        "words": plan.words,
        "spaces": {
            "vector": "embedding layer output after LayerNorm, at the optimized position (analysis space)",
            "pre_ln_vector": "x @ E: the token part of the embedding, before position/type embeddings and LayerNorm",
        },
        "scan": {"nonpositive_max": plan.nonpositive_max,
                 "relative_policy": "neurons with a_max <= 0 are never selected by relative selection"},
        "configs": {name: {"rows": len(tables[name]), "files": [data_file(name)]} for name in CONFIGS},
        "default_config": DEFAULT_CONFIG,
        "indexes": {
            VOCAB_INDEX: {"metric": "cosine (IndexFlatIP, L2-normalized)", "rows": [["vocabulary", len(tables["vocabulary"])]]},
            OPTIMIZED_INDEX: {"metric": "cosine (IndexFlatIP, L2-normalized)",
                              "rows": [["neurons", len(tables["neurons"])], ["word_groups", len(tables["word_groups"])]]},
        },
        "results": {"single_neurons": single, "word_groups": groups},
        "versions": _versions(),
    }


def write_build_info(out: Path, info: dict) -> None:
    """Record sha256 and size of every published file except build_info.json itself, then write it."""
    from .publish import plan_upload

    files = {f["path"]: {"sha256": f["sha256"], "size": f["size"]} for f in plan_upload(out) if f["path"] != BUILD_INFO}
    with atomic_path(out / BUILD_INFO) as tmp:
        tmp.write_text(json.dumps(dict(info, files=files), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M"


def render_card(info: dict, results_md: str, tables, repo_id: str | None = None) -> str:
    template = Template(resources.files("ft_artifacts.cards").joinpath("dataset_card.md").read_text(encoding="utf-8"))
    configs_yaml = "\n".join(
        f"- config_name: {name}\n  data_files:\n  - split: train\n    path: data/{name}/train-*.parquet"
        + ("\n  default: true" if name == DEFAULT_CONFIG else "")
        for name in CONFIGS
    )
    build = info["build"]
    settings = {
        "model": f"{info['model']['id']} ({info['model']['revision']})",
        "neurons": f"{build['neuron_fraction']:.0%} of each layer, seed {build['neuron_seed']}",
        "target words": f"{build['random_words']} random (seed {build['word_seed']}) + {build['curated_words']} curated",
        "group configs": f"{', '.join(build['selections'])} × k ∈ {{{', '.join(map(str, build['ks']))}}}",
        **{f"optimizer: {k}": v for k, v in build["optim"].items()},
    }
    neuron = tables["neurons"][0]["neuron"] if len(tables["neurons"]) else "L1.N0"
    group = tables["word_groups"][0]["group"] if len(tables["word_groups"]) else "word/relative/10"
    return template.substitute(
        pretty_name=f"Feature textualization of {info['model']['id']}",
        license="apache-2.0",
        size_category=_size_category(sum(c["rows"] for c in info["configs"].values())),
        configs_yaml=configs_yaml,
        model_id=info["model"]["id"],
        model_revision=info["model"]["revision"],
        package_version=info["versions"]["ft-artifacts"] or "unknown",
        subsets_table="\n".join(f"| `{n}` | {info['configs'][n]['rows']} | {DESCRIPTIONS[n]} |" for n in CONFIGS),
        num_layers=info["model"]["num_layers"],
        max_index=info["model"]["hidden_size"] - 1,
        nonpositive_max=info["scan"]["nonpositive_max"],
        settings_table="\n".join(f"| {k} | {v} |" for k, v in settings.items()),
        results=results_md,
        repo_hint=repo_id or "ORG/NAME",
        example_neuron=neuron,
        example_group=group,
        example_word=group.split("/")[0],
    )
