"""The `paper` preset's plan on a bert-base-shaped model: 924 neurons (77 per layer), 100 words, 800 group
objectives, lr 100, 5,000 steps. No optimization runs.

The model is `BertConfig()`'s bert-base shape (12 layers x 768 hidden, 12 heads, 3,072 intermediate) with
random weights, saved to a temporary folder with the tiny vocabulary of tests/artifact_fixtures.py (about 300
tokens, 250 of them whole words, every curated word among them): the plan needs the shape, and the words,
not bert-base's 30,522-token vocabulary, whose scan matrix alone would take 1.1 GB.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

import outside
from artifact_fixtures import tiny_vocab

PAPER = {"layers": 12, "hidden": 768, "per_layer": 77, "words": 100, "random": 80, "curated": 20,
         "ks": (10, 100, 250, 450), "selections": ("absolute", "relative")}


@pytest.fixture(scope="module")
def bert_base_folder(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("bert-base-shape")
    (folder / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)
    config = BertConfig(vocab_size=len(tiny_vocab()))  # every other setting: bert-base-uncased's shape
    assert (config.num_hidden_layers, config.hidden_size) == (PAPER["layers"], PAPER["hidden"])
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def planned(bert_base_folder, tmp_path_factory):
    from ft_artifacts.builders.build import validate
    from ft_artifacts.builders.plan import make_plan
    from ft_artifacts.builders.presets import preset
    from ft_artifacts.model import load_model

    config = preset("paper", model=str(bert_base_folder))
    lm = load_model(str(bert_base_folder))
    validate(config, lm)
    return config, lm, make_plan(lm, config, tmp_path_factory.mktemp("work"))


def test_paper_preset_settings():
    from ft_artifacts.builders.presets import preset

    config = preset("paper")
    assert config.model == "bert-base-uncased"
    assert (config.optim.lr, config.optim.steps, config.optim.init_std) == (100.0, 5000, 1.0)
    assert (config.optim.length, config.optim.position) == (1, 1)
    assert (config.random_words, config.curated_words) == (PAPER["random"], PAPER["curated"])
    assert tuple(config.ks) == PAPER["ks"] and tuple(config.selections) == PAPER["selections"]
    assert config.neuron_fraction == 0.1


def test_paper_plan_on_a_bert_base_shaped_model(planned):
    from ft_artifacts.builders.sampling import curated_words

    config, lm, plan = planned
    # 924 neurons: 77 distinct per layer, in range
    names = [outside.parse(n) for n in plan.sampled]
    assert len(names) == 924 == len(set(names))
    assert Counter(layer for layer, _ in names) == {layer: PAPER["per_layer"] for layer in range(1, 13)}
    assert all(0 <= index < PAPER["hidden"] for _, index in names)
    assert [[str(n) for n in s.objective.neurons] for s in plan.rows["neurons"]] == [[n] for n in plan.sampled]
    # 100 words: 80 drawn whole Latin-letter words, then the 20 curated ones
    assert len(plan.words) == PAPER["words"] == len(set(plan.words))
    assert plan.words[PAPER["random"]:] == curated_words()[:PAPER["curated"]]
    assert all(w.isalpha() and w.isascii() for w in plan.words[:PAPER["random"]])
    # 800 group objectives: every word x selection x k once, each a group of k distinct neurons
    groups = plan.rows["word_groups"]
    assert len(groups) == 800
    assert Counter((g.word, g.selection, g.k) for g in groups) == {
        (w, s, k): 1 for w in plan.words for s in PAPER["selections"] for k in PAPER["ks"]}
    assert all(len(g.objective.neurons) == len(set(g.objective.neurons)) == g.k for g in groups)
    assert config.optim.lr == 100.0 and config.optim.steps == 5000
    assert len(plan.rows["neurons"]) + len(groups) == 1724  # the paper's optimizations


def test_paper_plan_groups_equal_an_independent_scan(planned, bert_base_folder):
    """The groups, most activating tokens and a_max <= 0 count from a scan written in tests/outside.py."""
    config, lm, plan = planned
    model, tokenizer = outside.load_bert(str(bert_base_folder))
    _, acts = outside.scan(model, tokenizer.cls_token_id, tokenizer.sep_token_id)
    a_max = acts.max(axis=0)
    np.testing.assert_allclose(plan.a_max, a_max, rtol=1e-4, atol=1e-6)
    assert plan.nonpositive_max == int((plan.a_max <= 0).sum())
    hidden = PAPER["hidden"]

    def flat(name):
        layer, index = outside.parse(name)
        return (layer - 1) * hidden + index

    positive = a_max > 0
    for g in plan.rows["word_groups"][::7]:  # every 7th: all selections and ks occur
        row = acts[g.target_token_id]
        score = row if g.selection == "absolute" else np.where(positive, row / np.where(positive, a_max, 1), -np.inf)
        chosen = np.array([flat(str(n)) for n in g.objective.neurons])
        if g.selection == "relative":
            assert positive[chosen].all(), g.objective.label
        # the chosen neurons are the top-k (up to float32 near-ties at the boundary)
        kth = np.sort(score)[::-1][g.k - 1]
        assert score[chosen].min() >= kth - 1e-5 * abs(kth), g.objective.label
        # the most activating token of the group and its value
        values = acts[:, chosen].mean(axis=1)
        assert g.most_activating_activation == pytest.approx(values.max(), rel=1e-4, abs=1e-6)
    for s in plan.rows["neurons"][::50]:
        col = flat(str(s.objective.neurons[0]))
        assert s.most_activating_token_id == int(acts[:, col].argmax())
