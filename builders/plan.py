"""A model and a BuildConfig in, the build plan out: the vocabulary scan's per-neuron stats, the
sampled neurons and words, and every optimized row's target (objective, most activating token,
word), saved for resume."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ft_artifacts.files import atomic_path
from ft_artifacts.safejson import loads
from ft_artifacts.model import LoadedModel
from ft_artifacts.naming import group_key
from ft_artifacts.objectives import group, neuron
from ft_artifacts.scan import scan_vocabulary
from ft_artifacts.textualize import RowTarget, targets_for

from . import resume
from .presets import BuildConfig
from .sampling import sample_neurons, sample_words

logger = logging.getLogger(__name__)

RECORD = "plan.record.json"  # the sha256 of scan.npz and plan.json, and whose build they are


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
    """Load the plan from `work` if a previous run finished it (and its record vouches for both files);
    otherwise scan and plan, then save."""
    arrays, spec_path = work / "scan.npz", work / "plan.json"
    owner = resume.identity({"build": config.to_dict(), "model_revision": lm.revision})
    if (work / RECORD).exists():
        try:
            plan = _load(arrays, spec_path, work / RECORD, owner)
            logger.info("resuming: plan found in %s", work)
            return plan
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:  # a damaged file: plan again
            logger.warning("the saved plan in %s is unreadable (%s); planning again", work, exc)
    elif arrays.exists() or spec_path.exists():
        logger.warning("the saved plan in %s has no %s to vouch for it; planning again", work, RECORD)
    scan = scan_vocabulary(lm, batch_size=config.scan_batch, callback=callback)
    sampled = sample_neurons(lm.num_layers, lm.hidden_size, config.neuron_fraction, config.neuron_seed,
                             config.neurons_per_layer)
    words = sample_words(lm.tokens, config.random_words, config.curated_words, config.word_seed)
    keys = [(w, lm.token_id(w), s, k) for w in words for s in config.selections for k in config.ks]
    groups = [group(scan.top_neurons(wid, k, s), group_key(w, s, k)) for w, wid, s, k in keys]
    rows = {"neurons": targets_for(scan, [neuron(n) for n in sampled]),
            "word_groups": targets_for(scan, groups, keys, device=lm.device)}
    if config.directions:  # the optional config: absent from the plan (and the artifact) when none are given
        from ft_artifacts.directions import source_targets

        rows["directions"] = source_targets(scan, config.directions, device=lm.device)
    plan = Plan(scan.a_max, scan.argmax, scan.analysis, scan.nonpositive_max, [str(n) for n in sampled], words, rows,
                scan.top_ids, scan.top_acts)
    _save(plan, arrays, spec_path, tmp_dir, owner)
    return plan


def _save(plan: Plan, arrays: Path, spec_path: Path, tmp_dir: Path | None, owner: str) -> None:
    """scan.npz and plan.json, then the record of both (written last: a plan without one is planned again)."""
    buffer = io.BytesIO()
    np.savez(buffer, a_max=plan.a_max, argmax=plan.argmax, analysis=plan.analysis, top_ids=plan.top_ids,
             top_acts=plan.top_acts)
    spec = {"nonpositive_max": plan.nonpositive_max, "sampled": plan.sampled, "words": plan.words,
            "rows": {name: [t.to_dict() for t in targets] for name, targets in plan.rows.items()}}
    files = {arrays: buffer.getvalue(), spec_path: json.dumps(spec).encode()}
    (spec_path.parent / RECORD).unlink(missing_ok=True)
    for path, data in files.items():
        with atomic_path(path, tmp_dir=tmp_dir) as tmp:
            tmp.write_bytes(data)
    resume.write_record(spec_path.parent / RECORD, {"identity": owner, **{p.name: resume.file_entry(d)
                                                                          for p, d in files.items()}}, tmp_dir)


def _load(arrays: Path, spec_path: Path, record_path: Path, owner: str) -> Plan:
    """The saved plan, decoded from the very bytes checked against its record."""
    record = resume.read_record(record_path)
    if record.get("identity") != owner:
        raise resume.Damaged(f"{record_path.name} belongs to another build")
    scan = resume.check_entry(arrays.name, resume.read_bytes(arrays, resume.PLAN_LIMIT), record.get(arrays.name))
    text = resume.check_entry(spec_path.name, resume.read_bytes(spec_path, resume.PLAN_LIMIT), record.get(spec_path.name))
    with np.load(io.BytesIO(scan), allow_pickle=False) as data:
        a_max, argmax, analysis = data["a_max"], data["argmax"], data["analysis"]
        top_ids, top_acts = (data["top_ids"], data["top_acts"]) if "top_ids" in data.files else (None, None)
    spec = loads(text, max_bytes=resume.PLAN_LIMIT)
    rows = {name: [RowTarget.from_dict(t) for t in targets] for name, targets in spec["rows"].items()}
    return Plan(a_max, argmax, analysis, spec["nonpositive_max"], spec["sampled"], spec["words"], rows, top_ids, top_acts)
