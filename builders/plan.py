"""A model and a BuildConfig in, the build plan out: the vocabulary scan's per-neuron stats, the
sampled neurons and words, every objective with its most activating token, saved for resume."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ft_artifacts.files import atomic_path
from ft_artifacts.model import LoadedModel
from ft_artifacts.naming import group_key, parse_neuron
from ft_artifacts.objectives import Objective, group, neuron
from ft_artifacts.scan import scan_vocabulary
from ft_artifacts.textualize import vocab_stats

from .presets import BuildConfig
from .sampling import sample_neurons, sample_words

logger = logging.getLogger(__name__)


@dataclass
class Plan:
    a_max: np.ndarray  # [L*H] float32
    argmax: np.ndarray  # [L*H] int64
    analysis: np.ndarray  # [V, H] float32, vocabulary vectors in the analysis space
    nonpositive_max: int  # neurons with a_max <= 0 (never picked by relative selection)
    sampled: list[str]  # neuron names of the `neurons` config
    words: list[str]
    rows: dict[str, list[dict]]  # config -> one spec per optimized row

    def objective(self, spec: dict) -> Objective:
        neurons = [parse_neuron(n) for n in spec["neurons"]]
        return neuron(neurons[0]) if spec["config"] == "neurons" else group(neurons, spec["label"])


def make_plan(lm: LoadedModel, config: BuildConfig, work: Path, callback=None) -> Plan:
    """Load the plan from `work` if a previous run finished it; otherwise scan and plan, then save."""
    arrays, spec_path = work / "scan.npz", work / "plan.json"
    if arrays.exists() and spec_path.exists():
        logger.info("resuming: plan found in %s", work)
        return _load(arrays, spec_path)
    scan = scan_vocabulary(lm, batch_size=config.scan_batch, callback=callback)
    sampled = sample_neurons(lm.num_layers, lm.hidden_size, config.neuron_fraction, config.neuron_seed)
    words = sample_words(lm.tokens, config.random_words, config.curated_words, config.word_seed)
    rows: dict[str, list[dict]] = {"neurons": [], "word_groups": []}
    for n, stats in zip(sampled, vocab_stats(scan, [neuron(n) for n in sampled])):
        rows["neurons"].append(_spec("neurons", str(n), [n], stats))
    keys = [(w, lm.token_id(w), s, k) for w in words for s in config.selections for k in config.ks]
    groups = [group(scan.top_neurons(wid, k, s), group_key(w, s, k)) for w, wid, s, k in keys]
    group_stats = vocab_stats(scan, groups, [word_id for _, word_id, _, _ in keys])
    for (word, word_id, selection, k), obj, stats in zip(keys, groups, group_stats):
        spec = _spec("word_groups", obj.label, obj.neurons, stats)
        spec.update(word=word, selection=selection, k=k, target_token_id=word_id, target_activation=stats["target"])
        rows["word_groups"].append(spec)
    plan = Plan(scan.a_max, scan.argmax, scan.analysis, scan.nonpositive_max, [str(n) for n in sampled], words, rows)
    _save(plan, arrays, spec_path)
    return plan


def _spec(config: str, label: str, neurons, stats: dict) -> dict:
    return {"config": config, "label": label, "neurons": [str(n) for n in neurons],
            "most_activating_token_id": stats["token"], "most_activating_activation": stats["value"]}


def _save(plan: Plan, arrays: Path, spec_path: Path) -> None:
    with atomic_path(arrays) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, a_max=plan.a_max, argmax=plan.argmax, analysis=plan.analysis)
    spec = {"nonpositive_max": plan.nonpositive_max, "sampled": plan.sampled, "words": plan.words, "rows": plan.rows}
    with atomic_path(spec_path) as tmp:
        tmp.write_text(json.dumps(spec))


def _load(arrays: Path, spec_path: Path) -> Plan:
    with np.load(arrays, allow_pickle=False) as data:
        a_max, argmax, analysis = data["a_max"], data["argmax"], data["analysis"]
    spec = json.loads(spec_path.read_text())
    return Plan(a_max, argmax, analysis, spec["nonpositive_max"], spec["sampled"], spec["words"], spec["rows"])
