"""Neuron names: `L<layer>.N<index>` round trips, flat columns, and clear errors for bad names."""

from __future__ import annotations

import numpy as np
import pytest

from ft_artifacts.errors import FTError, NeuronNameError
from ft_artifacts.naming import Neuron, group_key, parse_neuron
from ft_artifacts.textualize import neuron_objectives

LAYERS, HIDDEN = 3, 16  # the tiny model's shape
RANGE = f"layers 1..{LAYERS}, neurons 0..{HIDDEN - 1}"


def test_every_name_round_trips():
    for layer in range(1, LAYERS + 1):
        for index in range(HIDDEN):
            n = Neuron(layer, index)
            name = str(n)
            assert name == f"L{layer}.N{index}"
            assert parse_neuron(name, LAYERS, HIDDEN) == n
            assert parse_neuron(name) == n  # without the model's shape too


def test_paper_style_name():
    assert parse_neuron("L12.N225") == Neuron(12, 225)
    assert str(Neuron(12, 225)) == "L12.N225"


def test_flat_column_matches_layer_major_layout():
    # The scan's activation matrix is [V, L*H] with layer 1's H neurons first, then layer 2's, ...
    columns = np.arange(LAYERS * HIDDEN).reshape(LAYERS, HIDDEN)
    for layer in range(1, LAYERS + 1):
        for index in range(HIDDEN):
            n = Neuron(layer, index)
            assert n.flat(HIDDEN) == columns[layer - 1, index]
            assert Neuron.from_flat(n.flat(HIDDEN), HIDDEN) == n


def test_neurons_sort_by_layer_then_index():
    names = ["L2.N0", "L1.N15", "L3.N1", "L1.N2"]
    assert [str(n) for n in sorted(parse_neuron(x) for x in names)] == ["L1.N2", "L1.N15", "L2.N0", "L3.N1"]


@pytest.mark.parametrize("name", ["L3N7", "l3.n7", "L3.N", "", "L3.N7x", "3.7", "L.N7", "L3.N-1", "L-1.N3", "N7.L3"])
def test_malformed_names_are_refused_with_the_valid_range(name):
    with pytest.raises(NeuronNameError) as err:
        parse_neuron(name, LAYERS, HIDDEN)
    message = str(err.value)
    assert "L<layer>.N<index>" in message
    assert RANGE in message
    assert repr(name) in message  # the message quotes what the user typed


@pytest.mark.parametrize("name", [None, 37, 3.7, ("L1", "N2"), b"L1.N2"])
def test_non_string_names_are_refused(name):
    with pytest.raises(NeuronNameError) as err:
        parse_neuron(name, LAYERS, HIDDEN)
    assert RANGE in str(err.value)


@pytest.mark.parametrize(
    "name, what",
    [("L0.N3", "layer 0"), (f"L{LAYERS + 1}.N3", f"layer {LAYERS + 1}"), (f"L1.N{HIDDEN}", f"index {HIDDEN}"),
     ("L99.N99999", "layer 99")],
)
def test_out_of_range_names_state_the_models_range(name, what):
    with pytest.raises(NeuronNameError) as err:
        parse_neuron(name, LAYERS, HIDDEN)
    message = str(err.value)
    assert what in message and "out of range" in message
    assert RANGE in message


def test_range_edges_are_accepted():
    assert parse_neuron("L1.N0", LAYERS, HIDDEN) == Neuron(1, 0)
    assert parse_neuron(f"L{LAYERS}.N{HIDDEN - 1}", LAYERS, HIDDEN) == Neuron(LAYERS, HIDDEN - 1)


def test_neuron_name_error_is_a_library_error():
    # The CLI turns FTError into one clean line; ValueError keeps `except ValueError` callers working.
    assert issubclass(NeuronNameError, FTError) and issubclass(NeuronNameError, ValueError)


def test_names_are_validated_against_the_loaded_model(tiny):
    assert [o.label for o in neuron_objectives(tiny, ["L1.N0", "L3.N15"])] == ["L1.N0", "L3.N15"]
    with pytest.raises(NeuronNameError) as err:
        neuron_objectives(tiny, ["L1.N0", "L4.N0"])
    assert f"layers 1..{tiny.num_layers}, neurons 0..{tiny.hidden_size - 1}" in str(err.value)


def test_group_key():
    assert group_key("crowd", "relative", 250) == "crowd/relative/250"


@pytest.mark.parametrize("name", ["L03.N7", "L3.N007", " L3.N7", "L3.N7 ", "L\u0663.N7"])
def test_only_the_canonical_form_is_accepted(name):
    """Names are compared as strings in artifacts, so `L03.N007` must not silently mean `L3.N7`."""
    with pytest.raises(NeuronNameError, match="malformed"):
        parse_neuron(name)
