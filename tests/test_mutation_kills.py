"""Tests written to kill mutants that survived `make mutation` and change a result (see the Makefile).

Each compares a module's output with an independent numpy computation, on inputs chosen so that the
mutated detail matters: chunk boundaries, k larger than the hidden size, mixed dtypes, 3-d inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ft_artifacts.metrics import brute_force_topk, cosine_to, cosine_topk, normalize, rank_of

pytest_plugins = ["artifact_fixtures"]  # tiny_lm


def np_unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 4)), rng.normal(size=(30, 4))  # queries, keys: more keys than dimensions


def test_normalize_rows_of_any_rank():
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 3, 5)))
    x[0, 1] = 0
    got = normalize(x).numpy()
    xn = x.numpy()
    norms = np.linalg.norm(xn, axis=-1, keepdims=True)
    want = np.divide(xn, norms, out=np.zeros_like(xn), where=norms > 0)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert (got[0, 1] == 0).all()


@pytest.mark.parametrize("chunk", [3, 4096])
def test_cosine_topk_equals_numpy_across_chunks_and_large_k(data, chunk):
    queries, keys = data
    k = 20  # more than the 4 dimensions
    cos, ids = cosine_topk(torch.from_numpy(queries), torch.from_numpy(keys).float(), k, chunk=chunk)
    assert cos.shape == ids.shape == (len(queries), k)
    sims = np_unit(queries) @ np_unit(keys).T
    want_ids = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    np.testing.assert_allclose(cos.double().numpy(), np.take_along_axis(sims, want_ids, 1), atol=1e-5)
    assert (ids.numpy() == want_ids).mean() > 0.95  # float32 near-ties may swap neighbours
    cos_all, _ = cosine_topk(torch.from_numpy(queries), torch.from_numpy(keys), 100, chunk=chunk)
    assert cos_all.shape == (len(queries), len(keys))  # k is capped at the number of keys


def test_cosine_to_and_rank_of_equal_numpy(data):
    queries, keys = data
    targets = np.array([0, 5, 9, 29, 3, 3, 17])
    sims = np_unit(queries) @ np_unit(keys).T
    own = sims[np.arange(len(queries)), targets]
    got = cosine_to(torch.from_numpy(queries), torch.from_numpy(keys).float(), torch.from_numpy(targets))
    np.testing.assert_allclose(got.double().numpy(), own, atol=1e-6)
    ranks = rank_of(torch.from_numpy(queries), torch.from_numpy(keys), torch.from_numpy(targets)).numpy()
    np.testing.assert_array_equal(ranks, 1 + (sims > own[:, None]).sum(axis=1))
    assert set(ranks) != {1}


def test_brute_force_topk_is_cosine_ordered_with_ties_by_lower_id():
    # queries of different norms, some below 1; keys with ties (the first 40 point the same way)
    queries = np.array([[0.5, 0.0], [0.0, 3.0], [0.1, 0.1]], dtype=np.float32)
    keys = np.vstack([np.tile([[0.25, 0.0]], (40, 1)), [[0.0, 0.5], [0.3, 0.3], [2.0, -1.0]]]).astype(np.float32)
    original = (queries.copy(), keys.copy())
    cos, ids = brute_force_topk(queries, keys, 3)
    np.testing.assert_array_equal(ids[0], [0, 1, 2])  # a 40-way tie: lowest ids first
    np.testing.assert_array_equal(ids[1], [40, 41, 0])
    np.testing.assert_array_equal(ids[2], [41, 0, 1])  # [0, 0.5] ties the first 40 and comes after them
    sims = np_unit(queries) @ np_unit(keys).T
    np.testing.assert_allclose(cos, np.take_along_axis(sims, ids, axis=1), atol=1e-12)
    np.testing.assert_allclose(cos[:, 0], [1.0, 1.0, 1.0], atol=1e-12)
    np.testing.assert_array_equal(queries, original[0])  # inputs are not modified in place
    np.testing.assert_array_equal(keys, original[1])


def test_rank_of_with_float32_keys(data):
    queries, keys = data
    targets = torch.tensor([1, 2, 3, 4, 5, 6, 7])
    got = rank_of(torch.from_numpy(queries), torch.from_numpy(keys).float(), targets).numpy()
    sims = np_unit(queries) @ np_unit(keys.astype(np.float32)).T
    own = sims[np.arange(len(queries)), targets.numpy()]
    np.testing.assert_array_equal(got, 1 + (sims > own[:, None] + 1e-6).sum(axis=1))


def test_group_weights_are_exact_in_float64(tiny_lm):
    """A group of 3 neurons weighs each by 1/3 exactly (float64), not by float32's 0.33333334."""
    from ft_artifacts.naming import Neuron
    from ft_artifacts.objectives import compile_objectives, group

    obj = group([Neuron(1, 0), Neuron(2, 1), Neuron(3, 2)], "g")
    compiled = compile_objectives([obj], tiny_lm.hidden_size, "cpu")
    weights = torch.cat([w[w != 0] for w in compiled.dense if w is not None])
    assert weights.dtype == torch.float64 and weights.numel() == 3 and (weights == 1 / 3).all()


# --- objectives: labels name the rows and seed their initial inputs -------------------------------------------------

def test_objective_labels():
    from ft_artifacts.naming import Neuron
    from ft_artifacts.objectives import group, neuron

    a, b = neuron(Neuron(1, 0)), neuron(Neuron(2, 3))
    assert (a.label, b.label) == ("L1.N0", "L2.N3")
    assert (a + b).label == "L1.N0+L2.N3"
    assert (a * 2.0).label == "L1.N0" and (2.0 * a).terms == ((Neuron(1, 0), 2.0),)
    assert group([Neuron(1, 0), Neuron(2, 3)], "w/relative/2").label == "w/relative/2"


def test_rows_of_different_objectives_start_from_different_inputs(tiny_lm):
    from ft_artifacts.naming import Neuron
    from ft_artifacts.objectives import neuron
    from ft_artifacts.optimize import OptimConfig, optimize, row_seed

    objectives = [neuron(Neuron(1, 0)), neuron(Neuron(1, 1)), neuron(Neuron(3, 7))]
    result = optimize(tiny_lm, objectives, OptimConfig(steps=0, seed=4))
    assert result.labels == ["L1.N0", "L1.N1", "L3.N7"]
    assert result.seeds == [row_seed(4, label) for label in result.labels] and len(set(result.seeds)) == 3
    assert not torch.equal(result.pre_ln[0], result.pre_ln[1])


# --- optimize: zero steps in both formulations ----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["preconditioned", "plain"])
def test_zero_steps_return_the_initial_input_and_an_empty_trace(tiny_lm, method):
    from ft_artifacts.hooks import activations
    from ft_artifacts.naming import Neuron
    from ft_artifacts.objectives import neuron
    from ft_artifacts.optimize import OptimConfig, initial_embeds, optimize

    objectives = [neuron(Neuron(1, 2)), neuron(Neuron(3, 5))]
    config = OptimConfig(steps=0, seed=1, method=method)
    result = optimize(tiny_lm, objectives, config)
    assert result.trace.shape == (2, 0) and result.trace_steps == []
    start = initial_embeds(tiny_lm, result.seeds, config)
    torch.testing.assert_close(result.pre_ln, start, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        _, acts = activations(tiny_lm, start)
    want = torch.stack([acts[0, 2], acts[1, 2 * tiny_lm.hidden_size + 5]])
    torch.testing.assert_close(result.activation, want, rtol=1e-4, atol=1e-5)


def test_recovered_x_after_several_steps(tiny_lm):
    """x0 + lr * (sum of the gradients) @ E^T maps to the optimized embedding (grad_sum sums every step).
    Computed here rather than from a shared fixture, so mutation testing links this test to the optimizer."""
    from ft_artifacts.naming import Neuron
    from ft_artifacts.objectives import neuron
    from ft_artifacts.optimize import OptimConfig, optimize, recover_x

    result = optimize(tiny_lm, [neuron(Neuron(2, 4)), neuron(Neuron(1, 9))], OptimConfig(steps=5, lr=3.0, seed=2))
    emb = tiny_lm.embedding_matrix.double()
    for j in range(2):
        x = recover_x(tiny_lm, result, j).double()
        torch.testing.assert_close((x @ emb).float(), result.pre_ln[j], rtol=1e-3, atol=1e-3)


def test_row_seed_is_the_documented_derivation():
    """Each row's seed: the first 4 bytes of sha256("<seed>:<label>"), little-endian, masked to 31 bits. Published
    artifacts record it; a resumed or repeated build must derive the same one."""
    import hashlib

    from ft_artifacts.optimize import row_seed

    for seed, label in [(0, "L1.N0"), (7, "crowd/relative/250"), (123, "L12.N767")]:
        digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
        assert row_seed(seed, label) == int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@pytest.mark.parametrize("method", ["preconditioned", "plain"])
def test_float32_steps_are_float32_unless_autocast_is_asked(tiny_lm, method):
    """The objective recorded at step 0 (inside the ascent) equals the autocast-free evaluation of the initial input:
    without autocast_dtype, steps run in the model's float32 (bfloat16 would differ by ~1e-2)."""
    from ft_artifacts.naming import Neuron
    from ft_artifacts.objectives import neuron
    from ft_artifacts.optimize import OptimConfig, optimize

    objectives = [neuron(Neuron(1, 3)), neuron(Neuron(3, 100))]
    start = optimize(tiny_lm, objectives, OptimConfig(steps=0, seed=0, method=method)).activation
    traced = optimize(tiny_lm, objectives, OptimConfig(steps=1, seed=0, trace_every=1, method=method)).trace[:, 0]
    torch.testing.assert_close(traced, start, rtol=1e-5, atol=1e-6)


def _rows(root, config: str) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(root / f"data/{config}/train-00000-of-00001.parquet").to_pylist()


def _evaluation(root, neurons: list[dict], groups: list[dict]):
    """The package's one evaluation of doctored rows, with the artifact's real vocabulary."""
    import datasets
    import pyarrow.parquet as pq

    from ft_artifacts.report import compute_evaluation

    vocab = pq.read_table(root / "data/vocabulary/train-00000-of-00001.parquet")
    return compute_evaluation(datasets.Dataset.from_list(neurons), datasets.Dataset.from_list(groups), vocab, "m", 1)


def test_the_evaluation_leaves_diverged_rows_out_of_means_and_counts_them_as_misses(tiny_artifact):
    """Real rows, some marked diverged as the optimizer marks them (non-finite values, no nearest tokens, no rank)."""
    neurons, groups = _rows(tiny_artifact, "neurons"), _rows(tiny_artifact, "word_groups")
    for i in (0, 3, 4):
        neurons[i].update(diverged=True, activation=float("nan"), norm=float("inf"), nearest=[])
    hits = [i for i, g in enumerate(groups) if g["target_rank"] == 1] or [0]
    for i in {hits[0], 1, len(groups) - 1}:
        groups[i].update(diverged=True, activation=float("nan"), target_rank=None, target_cosine=None, nearest=[])
    ev = _evaluation(tiny_artifact, neurons, groups)

    kept = [r for r in neurons if not r["diverged"]]
    act = np.array([r["activation"] for r in kept], dtype=np.float64)
    assert (ev.artifact.rows["neurons"], ev.artifact.diverged["neurons"]) == (len(neurons), 3)
    t1 = ev.table1
    want = {
        "activation_mean": act.mean(), "activation_sd": act.std(ddof=1),
        "most_activating_mean": np.mean([r["most_activating_activation"] for r in kept]),
        "closest_cosine_mean": np.mean([r["nearest"][0]["cosine"] for r in kept]),
        "norm_optimized_mean": np.mean([np.linalg.norm(r["vector"]) for r in kept]),
        "closest_is_most_activating_share": np.mean([r["nearest"][0]["token"] == r["most_activating_token"] for r in kept]),
    }
    for key, value in want.items():
        assert getattr(t1, key) == pytest.approx(value, rel=1e-6), key

    summary = {(g.selection, g.k): g for g in ev.groups}
    keys = sorted({(g["selection"], g["k"]) for g in groups})
    assert sorted(summary) == keys
    for key in keys:
        rows = [g for g in groups if (g["selection"], g["k"]) == key]
        ok = [g for g in rows if not g["diverged"]]
        mean = (lambda values: pytest.approx(float(np.mean(values)), rel=1e-6) if values else None)
        got = summary[key]
        assert (got.words, got.diverged) == (len(rows), len(rows) - len(ok)), key
        assert got.cosine_target_mean == mean([g["target_cosine"] for g in ok])
        assert got.activation_mean == mean([g["activation"] for g in ok])
        assert got.target_activation_mean == mean([g["target_activation"] for g in ok])  # one rule: kept rows
        assert got.top1_share == pytest.approx(sum(g["target_rank"] == 1 for g in ok) / len(rows))  # a diverged row is a miss
        assert got.top20_share == pytest.approx(sum(1 <= g["target_rank"] <= 20 for g in ok) / len(rows))
    assert sum(g.diverged for g in summary.values()) == 3


def test_an_evaluation_of_only_diverged_rows_reports_no_means(tiny_artifact):
    from ft_artifacts.report import card_section

    neurons = [dict(r, diverged=True, activation=float("nan"), nearest=[]) for r in _rows(tiny_artifact, "neurons")]
    groups = [dict(r, diverged=True, activation=float("nan"), target_rank=None, target_cosine=None, nearest=[])
              for r in _rows(tiny_artifact, "word_groups")]
    ev = _evaluation(tiny_artifact, neurons, groups)
    assert ev.artifact.diverged["neurons"] == ev.artifact.rows["neurons"] == len(neurons)
    t1 = ev.table1
    assert [t1.activation_mean, t1.activation_sd, t1.closest_cosine_mean, t1.norm_optimized_mean,
            t1.closest_is_most_activating_share, t1.activation_ci] == [None] * 6
    for g in ev.groups:
        assert (g.diverged, g.top1_share, g.top20_share, g.activation_mean, g.cosine_target_mean) == (g.words, 0, 0, None, None)
        assert g.top1_ci[0] == 0.0 and g.top1_ci[1] < 1  # exact binomial interval of 0 hits in `words`
    text = card_section(ev, [])
    assert f"diverged and left out: {len(neurons)} neurons" in text and "| – (sd –) |" not in text and "| – |" in text
