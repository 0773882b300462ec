"""A model and a BuildConfig in, the build plan out: the vocabulary scan's per-neuron stats, the
sampled neurons and words, and every optimized row's target (objective, most activating token,
word), saved for resume."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ft_artifacts.files import atomic_path
from ft_artifacts.model import LoadedModel
from ft_artifacts.naming import group_key
from ft_artifacts.objectives import group, neuron
from ft_artifacts.scan import scan_vocabulary
from ft_artifacts.textualize import RowTarget, targets_for

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
    rows: dict[str, list[RowTarget]]  # config -> one target per optimized row
    top_ids: np.ndarray | None = None  # [10, L*H] the scan's most activating tokens per neuron (None: an older plan)
    top_acts: np.ndarray | None = None  # [10, L*H] their activations


def make_plan(lm: LoadedModel, config: BuildConfig, work: Path, callback=None, tmp_dir: Path | None = None) -> Plan:
    """Load the plan from `work` if a previous run finished it; otherwise scan and plan, then save."""
    arrays, spec_path = work / "scan.npz", work / "plan.json"
    if arrays.exists() and spec_path.exists():
        try:
            plan = _load(arrays, spec_path)
            logger.info("resuming: plan found in %s", work)
            return plan
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a damaged file: plan again
            logger.warning("the saved plan in %s is unreadable (%s); planning again", work, exc)
    scan = scan_vocabulary(lm, batch_size=config.scan_batch, callback=callback)
    sampled = sample_neurons(lm.num_layers, lm.hidden_size, config.neuron_fraction, config.neuron_seed,
                             config.neurons_per_layer)
    words = sample_words(lm.tokens, config.random_words, config.curated_words, config.word_seed)
    keys = [(w, lm.token_id(w), s, k) for w in words for s in config.selections for k in config.ks]
    groups = [group(scan.top_neurons(wid, k, s), group_key(w, s, k)) for w, wid, s, k in keys]
    rows = {"neurons": targets_for(scan, [neuron(n) for n in sampled]), "word_groups": targets_for(scan, groups, keys)}
    plan = Plan(scan.a_max, scan.argmax, scan.analysis, scan.nonpositive_max, [str(n) for n in sampled], words, rows,
                scan.top_ids, scan.top_acts)
    _save(plan, arrays, spec_path, tmp_dir)
    return plan


def _save(plan: Plan, arrays: Path, spec_path: Path, tmp_dir: Path | None) -> None:
    with atomic_path(arrays, tmp_dir=tmp_dir) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, a_max=plan.a_max, argmax=plan.argmax, analysis=plan.analysis, top_ids=plan.top_ids,
                     top_acts=plan.top_acts)
    spec = {"nonpositive_max": plan.nonpositive_max, "sampled": plan.sampled, "words": plan.words,
            "rows": {name: [t.to_dict() for t in targets] for name, targets in plan.rows.items()}}
    with atomic_path(spec_path, tmp_dir=tmp_dir) as tmp:
        tmp.write_text(json.dumps(spec))


def _load(arrays: Path, spec_path: Path) -> Plan:
    with np.load(arrays, allow_pickle=False) as data:
        a_max, argmax, analysis = data["a_max"], data["argmax"], data["analysis"]
        top_ids, top_acts = (data["top_ids"], data["top_acts"]) if "top_ids" in data.files else (None, None)
    spec = json.loads(spec_path.read_text())
    rows = {name: [RowTarget.from_dict(t) for t in targets] for name, targets in spec["rows"].items()}
    return Plan(a_max, argmax, analysis, spec["nonpositive_max"], spec["sampled"], spec["words"], rows, top_ids, top_acts)
