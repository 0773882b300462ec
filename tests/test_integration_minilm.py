"""The paper's findings, reproduced in miniature on the packaged pretrained MiniLM (CPU, default run).

One batched optimization serves both tests: 12 single neurons (Table 1: optimized inputs activate a
neuron far more than its most activating vocabulary token) and words' relative top-k groups, 20 at
k = 10 and 40 at k = 250 (Tables 3/4: with large groups the optimized input's nearest token is the word).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ft_artifacts.metrics import rank_of
from ft_artifacts.naming import Neuron
from ft_artifacts.objectives import neuron
from ft_artifacts.optimize import OptimConfig, optimize
from ft_artifacts.textualize import group_objective

pytestmark = pytest.mark.integration

WORDS = ("crowd music water house river king money green dog church summer army bridge paper light "
         "school doctor island train garden").split()
# 20 more words at k = 250 only: the top-1 count of 20 words varied from 3 to 8 over optimizer seeds, too few
# for a margin (see test_large_relative_groups_recover_the_word).
EXTRA_WORDS = ("time people year world day man city family war game night book car team life road tree fire horse "
               "ship").split()
NEURONS_PER_LAYER = 2
# The paper's lr and init (100, N(0, 1)); 300 steps instead of 5,000 keep this near 30 s on 2 CPU cores
# and already show both effects clearly.
CONFIG = OptimConfig(steps=300, trace_every=10, seed=0)


@pytest.fixture(scope="module")
def neurons(minilm):
    rng = np.random.default_rng(2024)  # any seed: the claims hold for neurons in general
    return [Neuron(layer, int(i)) for layer in range(1, minilm.num_layers + 1)
            for i in rng.choice(minilm.hidden_size, NEURONS_PER_LAYER, replace=False)]


@pytest.fixture(scope="module")
def run(minilm, minilm_scan, neurons):
    groups = [group_objective(minilm, minilm_scan, w, "relative", 10) for w in WORDS]
    groups += [group_objective(minilm, minilm_scan, w, "relative", 250) for w in WORDS + EXTRA_WORDS]
    singles = [neuron(n) for n in neurons]
    result = optimize(minilm, singles + groups, CONFIG)  # one batch: rows never interact
    return result, len(singles)


def test_optimized_input_beats_the_most_activating_token(minilm, minilm_scan, neurons, run):
    result, count = run
    assert result.labels[:count] == [str(n) for n in neurons]
    final = result.activation[:count].double().numpy()
    best = np.maximum(result.trace[:count].double().numpy().max(axis=1), final)
    a_max = np.array([minilm_scan.a_max[n.flat(minilm.hidden_size)] for n in neurons], dtype=np.float64)
    table = list(zip(map(str, neurons), final.round(2), a_max.round(2)))
    # Every neuron: an input found by the ascent activates it more than any real token does.
    assert (best > a_max).all(), table
    # Plain SGD at lr 100 is not monotone: a row can be caught in a transient collapse at the last
    # step (seen here: one neuron of 12 dropped from 6.6 to 0.8 and took hundreds of steps to
    # recover), so the final iterate must beat a_max for all neurons but at most two. Measured over
    # optimizer seeds 0-5 (benchmarks/thresholds.py): 11 12 12 12 12 11 of 12; in the demo artifact
    # 8 of 228 neurons (3.5%) end below a_max, which would put 2 or more of 12 here at ~6%, 3 or more at ~0.8%.
    assert (final > a_max).sum() >= len(neurons) - 2, table
    # By a large factor on average (paper, Table 1: 42.5 vs 1.28 after 5,000 steps on BERT-base).
    # Measured over seeds 0-5: 7.6 9.1 9.1 9.4 9.5 9.2; the bar is about half the smallest.
    assert final.sum() / a_max.sum() >= 4, table
    # And the ascent is what got it there: every row started far lower.
    assert (best > result.trace[:count, 0].double().numpy() + 1).all()


def test_large_relative_groups_recover_the_word(minilm, minilm_scan, run):
    result, count = run
    vectors = result.analysis[count:, CONFIG.position - 1].float()  # the optimized token's analysis vector
    words = {10: WORDS, 250: WORDS + EXTRA_WORDS}
    targets = torch.tensor([minilm.token_id(w) for w in words[10] + words[250]])
    ranks = rank_of(vectors, torch.from_numpy(minilm_scan.analysis), targets)
    ranks = {10: ranks[:len(words[10])], 250: ranks[len(words[10]):]}
    top1 = {k: int((r == 1).sum()) for k, r in ranks.items()}
    # A vector unrelated to the word has it as nearest token with probability ~1/30,522, so even one
    # top-1 hit is far beyond chance; 8 of 40 at k = 250, and 8 more than of 20 at k = 10, cannot be luck.
    # Measured over optimizer seeds 0-5 (benchmarks/thresholds.py --extra): k = 250, 40 words: 23 14 20 16 19 16;
    # k = 10, 20 words: 0 in every seed (paper, relative k = 250: 67%). The first 20 words alone gave
    # 8 4 7 5 6 3 of 20 against the former bar of 6: the sample was enlarged and the bar set to about half
    # of the smallest count measured.
    print(f"top-1 count per k: {top1}")  # shown with -s, for comparing with the paper
    assert top1[250] >= 8, (top1, {k: r.tolist() for k, r in ranks.items()})
    assert top1[250] >= top1[10] + 8, (top1, {k: r.tolist() for k, r in ranks.items()})
