"""Directions as objectives: a group of k neurons of one layer is the direction with weight 1/k on
them (both paths give the same row); `textualize --direction FILE --layer L` reads .npy and
.safetensors files, one or many rows, checks each direction's activation against a fresh forward, and
refuses bad shapes, non-finite values and wrong layers in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ft_artifacts.cli import main
from ft_artifacts.directions import direction_objective, textualize_directions
from ft_artifacts.hooks import activations
from ft_artifacts.naming import Neuron
from ft_artifacts.objectives import group
from ft_artifacts.optimize import OptimConfig
from ft_artifacts.rows import to_record
from ft_artifacts.textualize import textualize

CONFIG = OptimConfig(steps=12, lr=1.0, trace_every=3)
H = 16  # conftest's tiny BERT: 3 layers x 16


def test_a_group_is_the_direction_with_weight_one_over_k_on_its_neurons(tiny, tiny_scan):
    members = [Neuron(2, i) for i in (1, 4, 9, 15)]
    label = "crowd/absolute/4"  # the seed comes from the label: both rows get the same one
    grouped = textualize(tiny, tiny_scan, [group(members, label)], CONFIG, groups=[("crowd", "absolute", 4)])[0]
    direction = np.zeros((1, H))
    direction[0, [n.index for n in members]] = 1 / len(members)
    directed = textualize_directions(tiny, tiny_scan, direction, 2, CONFIG, labels=[label])[0]
    want, got = to_record(grouped), to_record(directed)
    for column in ("vector", "pre_ln_vector", "activation", "activation_trace", "seed", "nearest",
                   "most_activating_token", "norm", "diverged"):
        assert got[column] == want[column], column
    # The vocabulary maximum sums 16 columns (zeros included) instead of 4: equal up to rounding.
    assert got["most_activating_activation"] == pytest.approx(want["most_activating_activation"], rel=1e-6)
    assert direction_objective(direction[0], 2, label).depth == 2


def run(*args):
    return CliRunner().invoke(main, ["textualize", *map(str, args)])


def test_textualize_direction_files_end_to_end(tiny, tiny_folder, tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((3, H)).astype(np.float32)
    np.save(tmp_path / "probe.npy", rows)
    save_file({"w": rows[0]}, str(tmp_path / "sae.safetensors"))  # one 1-D direction
    fast = ["--model", tiny_folder, "--device", "cpu", "--steps", "10", "--lr", "1", "--json"]
    result = run("--direction", tmp_path / "probe.npy", "--layer", 3, *fast)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["direction"] for r in records] == ["L3.probe[0]", "L3.probe[1]", "L3.probe[2]"]
    for record, d in zip(records, rows):  # the activation is d . a_L at the optimized input, recomputed
        with torch.no_grad():
            _, acts = activations(tiny, torch.tensor(record["pre_ln_vector"]).view(1, 1, -1))
        want = float((acts[0, 2 * H:3 * H].double() * torch.from_numpy(d).double()).sum())
        assert record["activation"] == pytest.approx(want, rel=1e-4, abs=1e-5)
        assert record["activation"] > record["activation_trace"][0]  # ascent from the initial input
    single = run("--direction", tmp_path / "sae.safetensors", "--layer", 3, *fast)
    assert single.exit_code == 0, single.output
    (one,) = [json.loads(line) for line in single.stdout.strip().splitlines()]
    assert one["direction"] == "L3.sae[0]" and one["layer"] == 3 and one["row"] == 0
    with torch.no_grad():
        _, acts = activations(tiny, torch.tensor(one["pre_ln_vector"]).view(1, 1, -1))
    want = float((acts[0, 2 * H:3 * H].double() * torch.from_numpy(rows[0]).double()).sum())
    assert one["activation"] == pytest.approx(want, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("make, layer, message", [
    (lambda p: np.save(p / "d.npy", np.zeros((2, 5))), 1, "rows have 5 values but layer 1 has 16 neurons"),
    (lambda p: np.save(p / "d.npy", np.zeros((2, 2, 16))), 1, "shape (2, 2, 16)"),
    (lambda p: np.save(p / "d.npy", np.array([[0.0] * 15 + [np.nan]])), 1, "non-finite"),
    (lambda p: np.save(p / "d.npy", np.zeros(16)), 4, "--layer 4 is not a layer of this model (layers 1..3)"),
    (lambda p: np.save(p / "d.npy", np.zeros(16)), 0, "--layer 0 is not a layer"),
    (lambda p: (p / "d.npy").write_bytes(b"not numpy"), 1, "cannot read it"),
])
def test_bad_directions_are_refused_in_one_line(tiny_folder, tmp_path, make, layer, message):
    make(tmp_path)
    result = run("--direction", tmp_path / "d.npy", "--layer", layer, "--model", tiny_folder, "--device", "cpu",
                 "--steps", "1")
    assert result.exit_code == 1 and message in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_direction_needs_its_layer_and_stands_alone(tiny_folder, tmp_path):
    np.save(tmp_path / "d.npy", np.zeros(16))
    alone = run("--direction", tmp_path / "d.npy", "--model", tiny_folder)
    assert alone.exit_code == 1 and "--direction and --layer go together" in alone.stderr
    mixed = run("L1.N0", "--direction", tmp_path / "d.npy", "--layer", 1, "--model", tiny_folder)
    assert mixed.exit_code == 1 and "cannot be combined" in mixed.stderr
