"""Every stored results number recomputed from rows, with code independent of the package.

- build_info.json's results and scan count, the card's tables and `ft-artifacts info` (text and --json) of the
  shared tiny artifact, from its parquet rows (tests/rows_recompute.py: json, pyarrow, numpy only);
- `ft-artifacts textualize --json` rows of a tiny BERT, from a scan and forward passes written here
  (tests/outside.py: the model's own modules only).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import outside
import rows_recompute as rr
from ft_artifacts.cli import main

pytest_plugins = ["artifact_fixtures"]


def ok(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0 and result.exception is None, (result.output, result.exception)
    return result.stdout


def test_rows_hold_what_the_summaries_average(tiny_artifact):
    rr.check_rows_themselves(tiny_artifact)


def test_build_info_results_equal_the_rows(tiny_artifact):
    rr.check_build_info(tiny_artifact)


def test_card_results_equal_the_rows(tiny_artifact):
    rr.check_card(tiny_artifact)


def test_info_results_equal_the_rows(tiny_artifact):
    rr.check_evaluation_text(tiny_artifact, ok("info", tiny_artifact))
    info = json.loads(ok("info", tiny_artifact, "--json"))
    rr.check_build_info(tiny_artifact, info)


def test_the_tiny_artifact_can_tell_the_mistakes_apart(tiny_artifact):
    """The checks above only catch a wrong top-1 / closest / count if the data tells them apart."""
    groups = rr.expected_groups(tiny_artifact)
    assert any(g["top1"] != g["top20"] for g in groups.values()), groups
    assert rr.expected_nonpositive(tiny_artifact) > 0  # a miscount shows (the doctored-rows test covers closest_differs)
    neurons = rr.read_rows(tiny_artifact, "neurons")
    closest = [r["nearest"][0]["cosine"] for r in neurons]
    tenth = [r["nearest"][-1]["cosine"] for r in neurons]
    assert np.mean(closest) - np.mean(tenth) > 1e-3  # printed to 3 decimals on the card


# --- textualize --json -------------------------------------------------------------------------------------------

NEURONS = ["L1.N3", "L2.N11", "L3.N7"]
WORD, SELECTION, K = "crowd", "relative", 10


@pytest.fixture(scope="module")
def textualized(tiny_folder):
    out = ok("textualize", "--model", tiny_folder, *NEURONS, "--word", WORD, "--selection", SELECTION, "--group-size", K,
             "--steps", 40, "--json", "--device", "cpu")
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="module")
def reference(tiny_folder):
    model, tokenizer = outside.load_bert(str(tiny_folder))
    ids = (tokenizer.cls_token_id, tokenizer.sep_token_id)
    vectors, acts = outside.scan(model, *ids)
    return model, tokenizer, ids, vectors, acts


def test_textualize_json_rows_recomputed(textualized, reference):
    model, tokenizer, ids, vectors, acts = reference
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(vectors))))
    hidden = model.config.hidden_size
    keys = rr.unit(vectors)
    assert [r.get("neuron") or r["group"] for r in textualized] == [*NEURONS, f"{WORD}/{SELECTION}/{K}"]
    for row in textualized:
        members = [row["neuron"]] if "neuron" in row else row["neurons"]
        cols = [(layer - 1) * hidden + index for layer, index in map(outside.parse, members)]
        values = acts[:, cols].mean(axis=1)  # the objective of every vocabulary token alone
        # most activating token and its activation
        assert row["most_activating_token"] == tokens[int(values.argmax())]
        assert row["most_activating_activation"] == pytest.approx(values.max(), rel=1e-5, abs=1e-6)
        # the stored vector is the analysis-space image of the stored pre-LN vector
        pre_ln = np.asarray(row["pre_ln_vector"])[None]
        word = model.embeddings.word_embeddings.weight
        import torch

        with torch.no_grad():
            seq = torch.cat([word[ids[0]][None], torch.as_tensor(pre_ln, dtype=word.dtype), word[ids[1]][None]])[None]
            analysis = model.embeddings(inputs_embeds=seq)[0, 1].double().numpy()
        np.testing.assert_allclose(row["vector"], analysis, rtol=1e-5, atol=1e-5)
        assert row["norm"] == pytest.approx(np.linalg.norm(analysis), rel=1e-5)
        # final activation: the named neuron (group: mean) for that input
        got = outside.activation(model, pre_ln, members, *ids)[0]
        assert row["activation"] == pytest.approx(got, rel=1e-4, abs=1e-5)
        # nearest tokens
        cos = keys @ rr.unit(np.asarray(row["vector"]))
        order = np.argsort(-cos, kind="stable")[:10]
        np.testing.assert_allclose([n["cosine"] for n in row["nearest"]], cos[order], atol=1e-5)
        assert cos[tokens.index(row["nearest"][0]["token"])] >= cos[order[0]] - 1e-6
        if "target_rank" in row:
            target = tokenizer.convert_tokens_to_ids(WORD)
            assert (row["word"], row["selection"], row["k"]) == (WORD, SELECTION, K)
            own = cos[target]
            assert row["target_cosine"] == pytest.approx(own, abs=1e-5)
            assert 1 + (cos > own + 1e-6).sum() <= row["target_rank"] <= 1 + (cos > own - 1e-6).sum()
            assert row["target_activation"] == pytest.approx(values[target], rel=1e-5, abs=1e-6)
            # the group is the word's relative top-k: largest a / a_max among neurons with a_max > 0
            a_max = acts.max(axis=0)
            score = np.where(a_max > 0, acts[target] / np.where(a_max > 0, a_max, 1), -np.inf)
            want = set(np.argsort(-score, kind="stable")[:K].tolist())
            assert set(cols) == want


# --- the summary code on rows doctored to separate near-miss mistakes ---------------------------------------------

def test_summaries_of_doctored_rows_equal_the_recomputation(tiny_artifact):
    """Real rows, edited so that every boundary matters: the most activating token equals the 1st, the 10th or
    no nearest token, and target ranks sit on both sides of 1 and 20."""
    import datasets
    import pyarrow.parquet as pq

    from ft_artifacts.report import compute_evaluation

    neurons = rr.read_rows(tiny_artifact, "neurons")
    for i, row in enumerate(neurons):
        if i % 3 < 2:
            row["most_activating_token"] = row["nearest"][0 if i % 3 == 0 else -1]["token"]
    # every k for absolute, all but the largest for relative: a config whose ks differ by selection
    groups = [g for g in rr.read_rows(tiny_artifact, "word_groups") if (g["selection"], g["k"]) != ("relative", 450)]
    ranks = [1, 2, 19, 20, 21, 1, 3000, 1, 20]
    for i, row in enumerate(groups):
        row["target_rank"] = ranks[i % len(ranks)]
    vocab, _ = rr.vocab_matrix(tiny_artifact)
    norms = np.linalg.norm(vocab, axis=1)

    vocabulary = pq.read_table(tiny_artifact / "data/vocabulary/train-00000-of-00001.parquet")
    ev = compute_evaluation(datasets.Dataset.from_list(neurons), datasets.Dataset.from_list(groups), vocabulary, "m", 1)
    results = ev.to_dict()
    want = rr.single_from_rows(neurons, norms)
    assert (ev.artifact.rows["neurons"], ev.artifact.diverged["neurons"]) == (want["rows_all"], 0)
    for key, stored in rr.TABLE1_KEYS.items():
        assert results["table1"][stored] == rr._approx(want[key]), key
    assert results["table1"]["closest_is_most_activating_share"] == rr._approx(1 - want["closest_differs"])
    assert 0 < want["closest_differs"] < 1

    got = {(g["selection"], g["k"]): g for g in results["groups"]}
    want = rr.groups_from_rows(groups)
    assert got.keys() == want.keys()
    for key, values in want.items():
        for name, value in values.items():
            assert got[key][rr.GROUP_KEYS[name]] == rr._approx(value), (key, name)
    assert any(0 < w["top1"] < w["top20"] < 1 for w in want.values())
