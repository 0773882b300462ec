"""Vocabulary scan against an independent token-by-token computation, and top-k neuron selection
(absolute, and relative = the paper's eq. 1) against a direct numpy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ft_artifacts.errors import ObjectiveError
from ft_artifacts.naming import Neuron
from ft_artifacts.scan import VocabScan, scan_vocabulary
from ft_artifacts.textualize import group_objective


def reference_scan(lm) -> tuple[np.ndarray, np.ndarray]:
    """Each token alone as `[CLS] w [SEP]` through the model's own forward (token ids, not the hooks),
    with every layer's `output.dense` recomputed from its submodules. Returns (acts [V, L*H], analysis [V, H])."""
    model, hidden = lm.model, lm.hidden_size
    acts = np.zeros((lm.vocab_size, lm.num_neurons))
    analysis = np.zeros((lm.vocab_size, hidden))
    with torch.no_grad():
        for w in range(lm.vocab_size):
            out = model(input_ids=torch.tensor([[lm.cls_id, w, lm.sep_id]]), output_hidden_states=True)
            states = out.hidden_states  # states[0] = embedding output, states[i] = input of layer i+1
            analysis[w] = states[0][0, 1].double().numpy()
            for i, layer in enumerate(model.encoder.layer):
                attention = layer.attention(states[i])[0]
                dense = layer.output.dense(layer.intermediate(attention))
                acts[w, i * hidden:(i + 1) * hidden] = dense[0, 1].double().numpy()
                # The recomputation is the layer: its output is what the model passed on.
                assert torch.allclose(layer.output.LayerNorm(dense + attention), states[i + 1], atol=1e-5)
    return acts, analysis


@pytest.fixture(scope="module")
def reference64(tiny64):
    return reference_scan(tiny64)


@pytest.fixture(scope="module")
def scan64(tiny64):
    return scan_vocabulary(tiny64, batch_size=16)  # 105 tokens: 7 batches, the last one partial


def test_scan_equals_token_by_token_computation(tiny64, scan64, reference64):
    acts, analysis = reference64
    assert tiny64.vocab_size % 16 != 0  # the partial last batch is exercised
    assert scan64.acts.shape == (tiny64.vocab_size, tiny64.num_neurons) and scan64.acts.dtype == np.float32
    np.testing.assert_allclose(scan64.acts, acts, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(scan64.analysis, analysis, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(scan64.a_max, acts.max(axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(scan64.argmax, acts.argmax(axis=0))
    assert scan64.hidden_size == tiny64.hidden_size
    assert scan64.nonpositive_max == int((acts.max(axis=0) <= 0).sum())


def test_scan_float32_model_matches_reference(tiny, tiny_scan):
    acts, analysis = reference_scan(tiny)
    np.testing.assert_allclose(tiny_scan.acts, acts, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tiny_scan.analysis, analysis, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(tiny_scan.argmax, acts.argmax(axis=0))


def test_analysis_vectors_are_layernorm_scale(tiny_scan, tiny):
    # After the embedding LayerNorm (unit gamma at init): norm close to sqrt(H), whatever the raw embedding norm.
    norms = np.linalg.norm(tiny_scan.analysis, axis=1)
    np.testing.assert_allclose(norms, np.sqrt(tiny.hidden_size), rtol=1e-3)


def test_memmap_scan_is_identical(tiny64, scan64, tmp_path):
    path = tmp_path / "acts.npy"
    mapped = scan_vocabulary(tiny64, batch_size=16, path=path)
    assert isinstance(mapped.acts, np.memmap)
    np.testing.assert_array_equal(np.asarray(mapped.acts), scan64.acts)
    np.testing.assert_array_equal(np.load(path), scan64.acts)  # the file on disk holds the result
    for name in ("a_max", "argmax", "analysis"):
        np.testing.assert_array_equal(getattr(mapped, name), getattr(scan64, name))


def test_batch_size_does_not_change_the_scan(tiny64, scan64):
    whole = scan_vocabulary(tiny64, batch_size=10_000)
    np.testing.assert_allclose(whole.acts, scan64.acts, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(whole.argmax, scan64.argmax)


def test_float16_storage_keeps_float32_maxima(tiny, tiny_scan):
    half = scan_vocabulary(tiny, batch_size=32, storage_dtype=np.float16)
    assert half.acts.dtype == np.float16
    np.testing.assert_array_equal(half.acts, tiny_scan.acts.astype(np.float16))
    np.testing.assert_array_equal(half.a_max, tiny_scan.a_max)  # computed before the storage cast
    assert half.a_max.dtype == np.float32
    np.testing.assert_array_equal(half.argmax, tiny_scan.argmax)


def test_bfloat16_autocast_scan_stays_close(tiny, tiny_scan):
    fast = scan_vocabulary(tiny, batch_size=32, autocast_dtype=torch.bfloat16)
    scale = np.abs(tiny_scan.acts).max()
    assert np.abs(fast.acts - tiny_scan.acts).max() < 0.05 * scale
    assert not np.array_equal(fast.acts, tiny_scan.acts)  # autocast really ran in bfloat16


def test_ties_go_to_the_first_token(tiny_folder, tiny_scan):
    from ft_artifacts.model import load_model

    lm = load_model(str(tiny_folder))  # a private copy: its embeddings get edited
    batch = 35  # 105 tokens in 3 equal batches, so a copy at +-35 sits at the same row of another batch
    assert lm.vocab_size == 3 * batch
    neuron = int(np.argmax(tiny_scan.a_max))
    winner = int(tiny_scan.argmax[neuron])
    same_batch = winner + 1 if (winner + 1) % batch else winner - 1
    other_batch = (winner + batch) % lm.vocab_size
    with torch.no_grad():
        for t in (same_batch, other_batch):
            lm.embedding_matrix[t] = lm.embedding_matrix[winner]
    scan = scan_vocabulary(lm, batch_size=batch)
    for t in (same_batch, other_batch):
        np.testing.assert_array_equal(scan.acts[t], scan.acts[winner])  # exact copies: a true tie
    assert scan.argmax[neuron] == min(winner, same_batch, other_batch)


def test_scan_reports_progress(tiny):
    calls = []
    scan_vocabulary(tiny, batch_size=32, callback=lambda done, total: calls.append((done, total)))
    v = tiny.vocab_size
    assert calls == [(min(d, v), v) for d in range(32, v + 32, 32)]


# ---- top-k selection -------------------------------------------------------------------------------


def reference_top(acts_row: np.ndarray, a_max: np.ndarray, k: int, selection: str) -> list[int]:
    """Eq. 1 directly: absolute score a_{w,i}, relative a_{w,i} / a_i^max over neurons with a_i^max > 0;
    best first, ties to the lower flat index."""
    acts_row = acts_row.astype(np.float64)
    if selection == "absolute":
        candidates = {i: acts_row[i] for i in range(acts_row.size)}
    else:
        candidates = {i: acts_row[i] / float(a_max[i]) for i in range(acts_row.size) if a_max[i] > 0}
    return sorted(candidates, key=lambda i: (-candidates[i], i))[:k]


def _flat(neurons, hidden):
    return [n.flat(hidden) for n in neurons]


@pytest.mark.parametrize("selection", ["absolute", "relative"])
def test_top_neurons_equal_direct_computation(tiny_scan, selection):
    hidden = tiny_scan.hidden_size
    valid = tiny_scan.acts.shape[1] if selection == "absolute" else int((tiny_scan.a_max > 0).sum())
    assert tiny_scan.nonpositive_max > 0  # the random tiny model has such neurons: relative must skip them
    for token in range(tiny_scan.acts.shape[0]):
        for k in (1, 5, valid):
            got = _flat(tiny_scan.top_neurons(token, k, selection), hidden)
            assert got == reference_top(tiny_scan.acts[token], tiny_scan.a_max, k, selection), (token, k)


def test_relative_and_absolute_differ(tiny_scan):
    # Otherwise the relative tests above could pass with absolute scores.
    differ = [t for t in range(tiny_scan.acts.shape[0])
              if tiny_scan.top_neurons(t, 5, "absolute") != tiny_scan.top_neurons(t, 5, "relative")]
    assert len(differ) > tiny_scan.acts.shape[0] // 2


def hand_scan() -> VocabScan:
    """6 tokens, 2 layers x 3 neurons. Neuron 1 never fires (a_max < 0) and neuron 4 is always 0:
    dividing by those maxima would rank token 3 (a = -5 / -0.01 = 500) first."""
    acts = np.array([
        # L1.N0  L1.N1   L1.N2  L2.N0  L2.N1  L2.N2
        [0.50, -0.01, 0.10, 3.00, 0.00, 0.20],
        [1.00, -2.00, 0.05, 1.00, 0.00, 0.40],
        [0.20, -1.00, 0.20, 6.00, 0.00, 0.10],
        [0.90, -5.00, 0.19, 5.00, 0.00, 0.30],
        [-0.3, -0.50, -0.1, -1.0, 0.00, -0.2],
        [0.40, -3.00, 0.15, 2.00, 0.00, 0.30],
    ], dtype=np.float32)
    return VocabScan(acts=acts, a_max=acts.max(axis=0), argmax=acts.argmax(axis=0),
                     analysis=np.eye(6, 3, dtype=np.float32), hidden_size=3)


def test_nonpositive_maxima_are_never_selected_relative():
    scan = hand_scan()
    assert scan.nonpositive_max == 2
    excluded = {1, 4}
    for token in range(6):
        for k in range(1, 5):
            got = _flat(scan.top_neurons(token, k, "relative"), 3)
            assert not excluded & set(got)
            assert got == reference_top(scan.acts[token], scan.a_max, k, "relative")
        for k in range(1, 7):  # absolute selection may pick them
            assert _flat(scan.top_neurons(token, k, "absolute"), 3) == reference_top(
                scan.acts[token], scan.a_max, k, "absolute")
    # Token 3: relative favours L1.N2 (0.19 / 0.20) over L2.N0 (5 / 6), absolute the reverse.
    assert scan.top_neurons(3, 1, "relative") == [Neuron(1, 2)]
    assert scan.top_neurons(3, 1, "absolute") == [Neuron(2, 0)]
    assert 1 in _flat(scan.top_neurons(4, 6, "absolute"), 3)


def test_ties_go_to_the_lower_flat_index():
    acts = np.array([[1.0, 2.0, 2.0, 1.0], [0.5, 1.0, 1.0, 0.5]], dtype=np.float32)
    scan = VocabScan(acts, acts.max(axis=0), acts.argmax(axis=0), np.eye(2, dtype=np.float32), hidden_size=2)
    assert _flat(scan.top_neurons(0, 4, "absolute"), 2) == [1, 2, 0, 3]
    assert _flat(scan.top_neurons(1, 4, "relative"), 2) == [0, 1, 2, 3]  # all ratios 0.5


@pytest.mark.parametrize("selection, k", [("absolute", 0), ("absolute", 7), ("absolute", -1),
                                          ("relative", 0), ("relative", 5)])
def test_k_out_of_range_is_refused_with_the_range(selection, k):
    valid = 6 if selection == "absolute" else 4  # relative: only the 4 neurons with a_max > 0
    with pytest.raises(ObjectiveError, match=rf"1\.\.{valid}"):
        hand_scan().top_neurons(0, k, selection)


def test_unknown_selection_is_refused(tiny, tiny_scan):
    with pytest.raises(ObjectiveError, match="absolute or relative"):
        hand_scan().top_neurons(0, 1, "largest")
    with pytest.raises(ObjectiveError, match="absolute or relative"):
        group_objective(tiny, tiny_scan, "crowd", "largest", 5)


def test_word_group_is_the_words_top_neurons(tiny, tiny_scan):
    obj = group_objective(tiny, tiny_scan, "crowd", "relative", 5)
    assert obj.label == "crowd/relative/5"
    assert list(obj.neurons) == tiny_scan.top_neurons(tiny.token_id("crowd"), 5, "relative")
    assert [w for _, w in obj.terms] == [pytest.approx(0.2)] * 5
    with pytest.raises(ObjectiveError, match="not a single token"):
        group_objective(tiny, tiny_scan, "zebra", "relative", 5)


@pytest.mark.parametrize("chunk", [1, 2, 128])
def test_vocab_stats_equal_a_direct_evaluation_on_every_token(tiny, tiny_scan, chunk):
    from ft_artifacts.objectives import group, neuron
    from ft_artifacts.naming import Neuron
    from ft_artifacts.textualize import vocab_stats

    rng = np.random.default_rng(7)
    width = tiny.num_neurons
    groups = [[Neuron.from_flat(int(i), tiny.hidden_size) for i in rng.choice(width, size, replace=False)]
              for size in (2, 5, 11, width)]
    objectives = [neuron(Neuron(2, 3)), *[group(g, f"g{j}") for j, g in enumerate(groups)], neuron(Neuron(3, 0))]
    targets = [None, 7, None, 12, 40, 9]
    stats = vocab_stats(tiny_scan, objectives, targets, chunk=chunk)
    acts = np.asarray(tiny_scan.acts, dtype=np.float64)
    for obj, target, got in zip(objectives, targets, stats):
        values = acts[:, [n.flat(tiny.hidden_size) for n in obj.neurons]].mean(axis=1)
        assert values[got["token"]] == pytest.approx(values.max(), rel=1e-5, abs=1e-6), obj.label
        assert got["value"] == pytest.approx(values.max(), rel=1e-5, abs=1e-6), obj.label
        if target is None:
            assert "target" not in got
        else:
            assert got["target"] == pytest.approx(values[target], rel=1e-5, abs=1e-6), obj.label


def test_top_tokens_are_each_neurons_ten_largest_activations(scan64, reference64):
    """The running top-10 merged over 7 batches equals a sort of the whole reference matrix per neuron."""
    acts, _ = reference64
    assert scan64.top_ids.shape == scan64.top_acts.shape == (10, acts.shape[1])
    want = -np.sort(-acts, axis=0)[:10]
    np.testing.assert_allclose(scan64.top_acts, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(scan64.top_ids[0], acts.argmax(axis=0))
    picked = np.take_along_axis(acts, scan64.top_ids, axis=0)  # each id's own activation
    np.testing.assert_allclose(picked, scan64.top_acts, rtol=1e-6, atol=1e-7)
    assert all(len(set(col)) == 10 for col in scan64.top_ids.T)
