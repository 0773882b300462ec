"""A non-BERT encoder (ELECTRA, with its embedding projection) and a decoder (GPT-2) through the whole
pipeline: `build --preset demo --model FOLDER`, the loader, `query` and `report`, with the family
recorded in build_info.json."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from artifact_fixtures import WORDS as ARTIFACT_WORDS
from family_models import save_tiny

import ft_artifacts
from ft_artifacts.cli import main


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0 and result.exception is None, (result.output, result.exception)
    return result.stdout


@pytest.mark.parametrize("model_type", ["electra", "gpt2"])
def test_build_load_query_and_report_on_a_family(model_type, tmp_path):
    folder = save_tiny(model_type, tmp_path / model_type, hidden=160, words=ARTIFACT_WORDS)  # 480 neurons: k=450 fits
    out = tmp_path / "artifact"
    stdout = cli("build", "--preset", "demo", "--model", folder, "--steps", "3", "--out", out, "--device", "cpu")
    assert stdout.splitlines()[-1] == f"built {out}"
    art = ft_artifacts.load(out)  # checksums verified
    assert art.manifest.model.family == model_type
    assert json.loads((out / "build_info.json").read_text())["model"]["family"] == model_type
    assert (art.manifest.model.num_layers, art.manifest.model.hidden_size) == (3, 160)
    assert set(art.neurons["steps"]) == {3} and len(art.word_groups) == 10 * 2 * 4
    neuron = art.neurons[0]["neuron"]
    hits = json.loads(cli("query", out, "--neuron", neuron, "--json"))
    assert hits == [{"token": h["token"], "cosine": h["cosine"]} for h in art.nearest_words(neuron=neuron)]
    report = tmp_path / "report"
    cli("report", out, "--out", report)
    assert (report / "report.md").is_file() and (report / "report.json").is_file()
