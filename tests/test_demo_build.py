"""The demo preset end to end on the packaged pretrained MiniLM (what `make demo` runs): the artifact
it builds reproduces the paper's findings in miniature, and reads back through every interface."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import ft_artifacts
from ft_artifacts.cli import main

pytestmark = pytest.mark.integration
pytest_plugins = ["demo_fixture"]  # the demo artifact, built once per session


@pytest.fixture(scope="module")
def demo(demo_artifact):
    return ft_artifacts.load(demo_artifact)


def test_single_neurons_reproduce_table_1(demo):
    ev = demo.manifest.evaluation
    single = ev.table1
    assert ev.artifact.rows["neurons"] == 228  # round(0.1 * 384) neurons in each of 6 layers
    # Optimized inputs activate neurons far beyond their most activating token (paper: 42.5 vs 1.28) ...
    # Measured: 9.2x on this artifact; sum(final)/sum(a_max) of 12 MiniLM neurons at 300 steps was 7.6-9.5 over
    # optimizer seeds 0-5 (benchmarks/thresholds.py). The bar, 4x, is under half of every measurement.
    assert single.activation_mean >= 4 * single.most_activating_mean, single
    # ... and the closest word is almost never the most activating word (paper: 99.7% differ).
    # Measured: 99.1% (226 of 228 neurons); the bar allows 22 neurons.
    assert 1 - single.closest_is_most_activating_share >= 0.9, single


def test_word_groups_reproduce_the_table_4_trend(demo):
    rates = {(g.selection, g.k): g.top1_share for g in demo.manifest.evaluation.groups}
    assert set(rates) == {(s, k) for s in ("absolute", "relative") for k in (10, 100, 250, 450)}
    # A vector unrelated to a word has it as nearest token with probability ~1/30,522: with 10 words,
    # 2 more top-1 hits at k = 250 than at k = 10 cannot be chance (~5e-8; paper, relative: 0% vs 67%).
    # Measured with the demo's settings over word and optimizer seeds 0-5 (benchmarks/thresholds.py; seed 0 is
    # this artifact): top-1 of 10 words, relative k = 250: 7 6 6 7 8 5 vs k = 10: 0 0 0 1 1 1 (differences
    # 4-7); absolute k = 450: 5 4 6 4 8 6 vs k = 10: 0 in every seed (4-8). The bar, 2 words (was 3), leaves a
    # margin of 2 below the smallest difference measured.
    assert rates[("relative", 250)] >= rates[("relative", 10)] + 0.2, rates
    assert rates[("absolute", 450)] >= rates[("absolute", 10)] + 0.2, rates


def test_rows_agree_with_the_stored_summary_and_the_index(demo):
    groups = demo.word_groups
    for row in groups.select(range(0, len(groups), 7)):
        hits = demo.nearest_words(group=row["group"], k=10)
        assert [h["token"] for h in hits] == [n["token"] for n in row["nearest"]]
        assert (row["target_rank"] == 1) == (hits[0]["token"] == row["word"])
    result = CliRunner().invoke(main, ["query", str(demo.path), "--neuron", demo.neurons[0]["neuron"], "--json"])
    assert result.exit_code == 0
    assert [h["token"] for h in json.loads(result.stdout)] == [n["token"] for n in demo.neurons[0]["nearest"]]


def test_stored_results_equal_the_rows(demo):
    """build_info.json, the card and `info` recomputed from the demo artifact's rows (tests/rows_recompute.py)."""
    import rows_recompute

    rows_recompute.check_all(demo.path)
    result = CliRunner().invoke(main, ["info", str(demo.path)])
    assert result.exit_code == 0, result.output
    rows_recompute.check_evaluation_text(demo.path, result.stdout)
