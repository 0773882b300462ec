"""The optimizer on the tiny BERT: hooks against an independent recomputation, batching that never
changes a row, the preconditioned step against plain SGD on x, seeds, errors, and autocast."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ft_artifacts.errors import ObjectiveError
from ft_artifacts.hooks import activations
from ft_artifacts.naming import Neuron
from ft_artifacts.objectives import group, neuron
from ft_artifacts.optimize import OptimConfig, initial_x, optimize, recover_x, row_seed

# A mix of single neurons at every layer and groups spanning layers, deliberately not in depth order
# (the optimizer sorts rows deepest first internally and must put them back).
OBJECTIVES = [
    neuron(Neuron(1, 3)),
    group([Neuron(1, 2), Neuron(3, 5), Neuron(2, 7)], "g-mixed"),
    neuron(Neuron(3, 0)),
    group([Neuron(2, 1), Neuron(2, 2)], "g-layer2"),
    neuron(Neuron(2, 15)),
    group([Neuron(1, 0), Neuron(1, 1), Neuron(1, 9)], "g-layer1"),
]
# lr 1 suits the tiny model (it converges within tens of steps); steps stay small because ascent
# amplifies rounding differences chaotically, which would defeat comparisons at 1e-9.
EXACT = OptimConfig(steps=20, lr=1.0, trace_every=1)


def reference_forward(lm, pre_ln: torch.Tensor, position: int):
    """Independent of the hooks: the embedding written out (word + position + type-0, LayerNorm) and
    each layer recomputed from its submodules. pre_ln [b, l, h] -> (analysis [b, l+2, h], acts [b, L*h])."""
    model, emb = lm.model, lm.model.embeddings
    batch, length, hidden = pre_ln.shape
    words = torch.cat([
        lm.embedding_matrix[lm.cls_id].expand(batch, 1, hidden),
        pre_ln,
        lm.embedding_matrix[lm.sep_id].expand(batch, 1, hidden),
    ], dim=1)
    summed = words + emb.position_embeddings.weight[: length + 2] + emb.token_type_embeddings.weight[0]
    h = F.layer_norm(summed, (hidden,), emb.LayerNorm.weight, emb.LayerNorm.bias, emb.LayerNorm.eps)
    analysis, acts = h, []
    states = model(inputs_embeds=words, output_hidden_states=True).hidden_states
    torch.testing.assert_close(analysis, states[0])  # the written-out embedding is the model's
    for i, layer in enumerate(model.encoder.layer):
        attention = layer.attention(h)[0]
        dense = layer.output.dense(layer.intermediate(attention))
        acts.append(dense[:, position])
        h = layer.output.LayerNorm(dense + attention)
        torch.testing.assert_close(h, states[i + 1])  # ... and so is each recomputed layer
    return analysis, torch.cat(acts, dim=-1)


def objective_value(obj, acts: torch.Tensor, hidden: int) -> torch.Tensor:
    """The paper's objective from all activations [b, L*h]: the mean of the group's neurons."""
    cols = [n.flat(hidden) for n in obj.neurons]
    return acts[:, cols].mean(dim=-1)


@pytest.fixture(scope="module")
def together(tiny64):
    return optimize(tiny64, OBJECTIVES, EXACT)


# (a) ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length, position", [(1, 1), (2, 1), (2, 2)])
def test_hooked_activations_equal_independent_recomputation(tiny64, length, position):
    gen = torch.Generator().manual_seed(length * 10 + position)
    pre_ln = torch.randn(4, length, tiny64.hidden_size, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        analysis, acts = activations(tiny64, pre_ln, position=position)
        ref_analysis, ref_acts = reference_forward(tiny64, pre_ln, position)
        _, shallow = activations(tiny64, pre_ln, position=position, depth=2)
    assert acts.shape == (4, tiny64.num_neurons)
    torch.testing.assert_close(analysis, ref_analysis, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(acts, ref_acts, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(shallow, ref_acts[:, : 2 * tiny64.hidden_size], rtol=1e-12, atol=1e-12)


# (b) ------------------------------------------------------------------------------------------------


def test_rows_optimized_together_equal_rows_alone(tiny64, together):
    assert together.labels == [o.label for o in OBJECTIVES]
    for j, obj in enumerate(OBJECTIVES):
        alone = optimize(tiny64, [obj], EXACT)
        assert alone.seeds[0] == together.seeds[j]
        torch.testing.assert_close(together.pre_ln[j], alone.pre_ln[0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(together.analysis[j], alone.analysis[0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(together.activation[j], alone.activation[0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(together.trace[j], alone.trace[0], rtol=1e-6, atol=1e-6)  # float32 trace
    # The rows really moved, and differently: equality above is not equality of constants.
    assert (together.trace[:, -1] - together.trace[:, 0]).abs().min() > 1e-3
    assert len({round(float(a), 6) for a in together.activation}) == len(OBJECTIVES)


def test_batch_order_does_not_change_rows(tiny64, together):
    reordered = optimize(tiny64, OBJECTIVES[::-1], EXACT)
    torch.testing.assert_close(reordered.pre_ln.flip(0), together.pre_ln, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(reordered.activation.flip(0), together.activation, rtol=1e-9, atol=1e-12)


# (c) ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lr, steps, rtol", [(1.0, 20, 1e-9), (100.0, 5, 1e-7)])
def test_preconditioned_equals_plain_sgd_on_x(tiny64, lr, steps, rtol):
    config = dict(steps=steps, lr=lr, trace_every=1)
    pre = optimize(tiny64, OBJECTIVES, OptimConfig(method="preconditioned", **config))
    plain = optimize(tiny64, OBJECTIVES, OptimConfig(method="plain", **config))
    assert plain.grad_sum is None and pre.grad_sum is not None
    torch.testing.assert_close(pre.pre_ln, plain.pre_ln, rtol=rtol, atol=rtol)
    torch.testing.assert_close(pre.analysis, plain.analysis, rtol=rtol, atol=rtol)
    torch.testing.assert_close(pre.activation, plain.activation, rtol=rtol, atol=rtol)
    torch.testing.assert_close(pre.trace, plain.trace, rtol=1e-6, atol=1e-6)
    assert pre.trace_steps == plain.trace_steps == list(range(steps))
    assert not torch.allclose(pre.pre_ln, optimize(tiny64, OBJECTIVES, OptimConfig(steps=0)).pre_ln)


def test_recovered_x_maps_to_the_optimized_embedding(tiny64, together):
    emb = tiny64.embedding_matrix
    for j in range(len(OBJECTIVES)):
        x = recover_x(tiny64, together, j)
        assert x.shape == (1, tiny64.vocab_size)
        torch.testing.assert_close(x @ emb, together.pre_ln[j], rtol=1e-10, atol=1e-12)
    plain = optimize(tiny64, OBJECTIVES[:1], OptimConfig(steps=2, lr=1.0, method="plain"))
    with pytest.raises(ObjectiveError, match="preconditioned"):
        recover_x(tiny64, plain, 0)


# (d) ------------------------------------------------------------------------------------------------


def test_objective_rises(tiny):
    result = optimize(tiny, OBJECTIVES, OptimConfig(steps=50, lr=1.0, trace_every=10))
    assert result.trace_steps == [0, 10, 20, 30, 40]
    assert bool((result.activation > result.trace[:, 0] + 0.1).all()), (result.trace, result.activation)


# (e) ------------------------------------------------------------------------------------------------


def test_group_objective_is_the_mean_of_its_neurons(tiny64, together):
    with torch.no_grad():
        _, acts = activations(tiny64, together.pre_ln)
    for j, obj in enumerate(OBJECTIVES):
        expected = objective_value(obj, acts[j:j + 1], tiny64.hidden_size)[0]
        torch.testing.assert_close(together.activation[j], expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(obj(acts[j], tiny64.hidden_size), expected, rtol=1e-12, atol=1e-12)


def test_objectives_compose():
    acts = torch.arange(12, dtype=torch.float64).reshape(2, 6)  # 2 layers x 3 neurons
    a, b = neuron(Neuron(1, 2)), neuron(Neuron(2, 0))
    torch.testing.assert_close((a + 2 * b)(acts, 3), acts[:, 2] + 2 * acts[:, 3])
    torch.testing.assert_close(group([Neuron(1, 2), Neuron(2, 0)], "g")(acts, 3), (acts[:, 2] + acts[:, 3]) / 2)
    assert (a + b).depth == 2 and a.depth == 1


# (f) ------------------------------------------------------------------------------------------------


def test_same_seed_same_result_other_seed_other_init(tiny):
    config = OptimConfig(steps=5, lr=1.0, trace_every=1, seed=7)
    first, second = optimize(tiny, OBJECTIVES, config), optimize(tiny, OBJECTIVES, config)
    assert first.seeds == second.seeds
    for name in ("pre_ln", "analysis", "activation", "trace"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    other = optimize(tiny, OBJECTIVES, OptimConfig(steps=5, lr=1.0, trace_every=1, seed=8))
    assert all(a != b for a, b in zip(first.seeds, other.seeds))
    assert bool((first.trace[:, 0] != other.trace[:, 0]).all())  # every row starts elsewhere
    assert not torch.allclose(first.pre_ln, other.pre_ln)
    assert len(set(first.seeds)) == len(OBJECTIVES)  # rows of one run get different inits too


def test_initial_input_is_the_seeded_gaussian_in_one_hot_space(tiny64):
    result = optimize(tiny64, OBJECTIVES, OptimConfig(steps=0, seed=3, init_std=0.5))
    assert result.trace.shape == (len(OBJECTIVES), 0)
    for j, obj in enumerate(OBJECTIVES):
        seed = row_seed(3, obj.label)
        assert result.seeds[j] == seed
        x0 = torch.randn(1, tiny64.vocab_size, generator=torch.Generator().manual_seed(seed),
                         dtype=torch.float64) * 0.5
        torch.testing.assert_close(result.pre_ln[j], x0 @ tiny64.embedding_matrix, rtol=1e-12, atol=1e-12)
    x = initial_x(0, 2, 30522, 0.5)
    assert x.shape == (2, 30522)
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 0.5) < 0.01
    zero = optimize(tiny64, OBJECTIVES[:1], OptimConfig(steps=0, init_std=0.0))
    assert torch.count_nonzero(zero.pre_ln) == 0


# (g) ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, match", [
    (neuron(Neuron(4, 0)), "beyond this model's 3 layers"),
    (group([Neuron(1, 0), Neuron(9, 0)], "deep-group"), "beyond this model's 3 layers"),
    (neuron(Neuron(1, 16)), "out of range"),
    (neuron(Neuron(1, -1)), "out of range"),
    (neuron(Neuron(0, 3)), "out of range"),
    (group([Neuron(0, 3), Neuron(2, 1)], "layer-0-group"), "out of range"),
])
def test_objective_outside_the_model_is_refused(tiny, bad, match):
    with pytest.raises(ObjectiveError, match=match):
        optimize(tiny, [OBJECTIVES[0], bad], OptimConfig(steps=1))


def test_empty_objectives_are_refused(tiny):
    with pytest.raises(ObjectiveError, match="at least one objective"):
        optimize(tiny, [], OptimConfig(steps=1))
    with pytest.raises(ObjectiveError, match="at least one neuron"):
        group([], "empty")
    with pytest.raises(ObjectiveError, match="twice"):
        group([Neuron(1, 1), Neuron(1, 1)], "dup")


@pytest.mark.parametrize("config, match", [
    (OptimConfig(position=0), "position"),
    (OptimConfig(position=2), "position"),  # position 2 is [SEP] when length is 1
    (OptimConfig(length=0), "position"),
    (OptimConfig(method="adam"), "unknown method"),
    (OptimConfig(steps=-1), "steps"),
    (OptimConfig(trace_every=0), "trace_every"),
    (OptimConfig(lr=0.0), "lr"),
    (OptimConfig(lr=float("nan")), "lr"),
    (OptimConfig(init_std=-1.0), "init_std"),
])
def test_bad_config_is_refused(tiny, config, match):
    with pytest.raises(ObjectiveError, match=match):
        optimize(tiny, OBJECTIVES[:1], config)


# (h) ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["preconditioned", "plain"])
def test_callback_once_per_step(tiny, method):
    calls = []
    optimize(tiny, OBJECTIVES, OptimConfig(steps=7, lr=1.0, method=method),
             callback=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 7) for i in range(1, 8)]


# (i) ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length, position", [(1, 1), (2, 2)])
def test_final_activation_equals_fresh_forward(tiny, length, position):
    config = OptimConfig(steps=10, lr=1.0, length=length, position=position)
    result = optimize(tiny, OBJECTIVES, config)
    assert result.pre_ln.shape == (len(OBJECTIVES), length, tiny.hidden_size)
    assert result.activation.dtype == torch.float32
    with torch.no_grad():
        analysis, acts = activations(tiny, result.pre_ln, position=position)
    torch.testing.assert_close(result.analysis, analysis[:, 1:-1], rtol=1e-5, atol=1e-5)
    for j, obj in enumerate(OBJECTIVES):
        expected = objective_value(obj, acts[j:j + 1], tiny.hidden_size)[0]
        torch.testing.assert_close(result.activation[j], expected, rtol=1e-5, atol=1e-5)


def test_final_activation_is_evaluated_without_autocast(tiny):
    result = optimize(tiny, OBJECTIVES, OptimConfig(steps=3, lr=1.0), autocast_dtype=torch.bfloat16)
    with torch.no_grad():
        _, acts = activations(tiny, result.pre_ln)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, acts_bf16 = activations(tiny, result.pre_ln)
    expected = torch.stack([objective_value(o, acts[j:j + 1], tiny.hidden_size)[0] for j, o in enumerate(OBJECTIVES)])
    in_bf16 = torch.stack([objective_value(o, acts_bf16[j:j + 1].float(), tiny.hidden_size)[0]
                           for j, o in enumerate(OBJECTIVES)])
    torch.testing.assert_close(result.activation, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(result.activation, in_bf16, rtol=1e-5, atol=1e-5)  # bf16 would be visible


# (j) ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["preconditioned", "plain"])
def test_bfloat16_autocast_stays_close_to_float32(tiny, method):
    config = OptimConfig(steps=5, lr=1.0, trace_every=1, method=method)
    full = optimize(tiny, OBJECTIVES, config)
    fast = optimize(tiny, OBJECTIVES, config, autocast_dtype=torch.bfloat16)
    assert fast.pre_ln.dtype == torch.float32  # the iterate stays in the model dtype
    scale = float(full.trace.abs().max())
    assert float((fast.activation - full.activation).abs().max()) < 0.05 * scale
    assert float((fast.trace - full.trace).abs().max()) < 0.05 * scale
    assert not torch.equal(fast.trace, full.trace)  # autocast really ran in bfloat16


def test_settings_record_the_config(tiny):
    config = OptimConfig(steps=2, lr=3.0, init_std=0.5, seed=11)
    settings = optimize(tiny, OBJECTIVES[:1], config).settings()
    assert settings["steps"] == 2 and settings["lr"] == 3.0 and settings["init_std"] == 0.5
    assert settings["seed"] == 11 and settings["method"] == "preconditioned"
