"""`ft-artifacts textualize` end to end on the tiny BERT folder: JSON rows checked against independent
recomputations (brute-force cosine, fresh forward, the scan), human output, and clean one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ft_artifacts.cli import main
from ft_artifacts.hooks import activations
from ft_artifacts.naming import parse_neuron

FAST = ["--device", "cpu", "--steps", "20", "--lr", "1"]
KEYS = {"activation", "diverged", "most_activating_token", "most_activating_activation", "nearest", "vector",
        "pre_ln_vector", "seed"}


def run_cli(*args: str):
    return CliRunner().invoke(main, ["textualize", *args])


@pytest.fixture(scope="module")
def json_rows(tiny_folder):
    result = run_cli("L1.N3", "L3.N0", "--word", "crowd", "--group-size", "5", "--model", str(tiny_folder), *FAST, "--json")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3  # one JSON object per objective, nothing else on stdout
    return [json.loads(line) for line in lines]


def brute_force_nearest(vector: list[float], keys: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    q = np.asarray(vector, dtype=np.float64)
    x = keys.astype(np.float64)
    cos = (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    order = np.argsort(-cos, kind="stable")
    return order[:k].tolist(), cos


def label(row: dict) -> str:
    return row.get("neuron") or row["group"]


def members(row: dict) -> list[str]:
    return [row["neuron"]] if "neuron" in row else row["neurons"]


def columns(names: list[str], hidden: int) -> list[int]:
    """Scan columns of `L<layer>.N<index>` names (layer-major: layer 1's neurons first)."""
    return [(parse_neuron(n).layer - 1) * hidden + parse_neuron(n).index for n in names]


def test_json_rows_have_the_documented_keys(json_rows):
    assert [label(r) for r in json_rows] == ["L1.N3", "L3.N0", "crowd/relative/5"]
    for row in json_rows:
        assert KEYS <= row.keys() and row["diverged"] is False
        assert len(row["nearest"]) == 10
        cosines = [n["cosine"] for n in row["nearest"]]
        assert cosines == sorted(cosines, reverse=True)
        assert len(row["vector"]) == 16


def test_nearest_tokens_equal_brute_force_cosine(json_rows, tiny, tiny_scan):
    for row in json_rows:
        ids, cos = brute_force_nearest(row["vector"], tiny_scan.analysis, 10)
        assert [n["token"] for n in row["nearest"]] == [tiny.tokens[i] for i in ids]
        np.testing.assert_allclose([n["cosine"] for n in row["nearest"]], cos[ids], rtol=1e-5, atol=1e-6)


def test_activation_equals_fresh_forward_of_the_vector(json_rows, tiny):
    pre_ln = torch.tensor([[row["pre_ln_vector"]] for row in json_rows])  # [rows, 1, h]
    with torch.no_grad():
        analysis, acts = activations(tiny, pre_ln)
    for j, row in enumerate(json_rows):
        cols = columns(members(row), tiny.hidden_size)
        assert row["activation"] == pytest.approx(float(acts[j, cols].mean()), rel=1e-5, abs=1e-5)
        np.testing.assert_allclose(row["vector"], analysis[j, 1].numpy(), rtol=1e-5, atol=1e-5)


def test_most_activating_token_comes_from_the_scan(json_rows, tiny, tiny_scan):
    for row in json_rows:
        cols = columns(members(row), tiny.hidden_size)
        per_token = tiny_scan.acts[:, cols].astype(np.float64).mean(axis=1)
        best = int(per_token.argmax())
        assert row["most_activating_token"] == tiny.tokens[best]
        assert row["most_activating_activation"] == pytest.approx(per_token[best], rel=1e-5, abs=1e-5)
    # The optimized input beats every real token on its own objective (tiny model, 20 steps at lr 1).
    assert all(row["activation"] > row["most_activating_activation"] for row in json_rows)


def test_word_group_row(json_rows, tiny, tiny_scan):
    row = json_rows[2]
    crowd = tiny.token_id("crowd")
    assert row["neurons"] == [str(n) for n in tiny_scan.top_neurons(crowd, 5, "relative")]
    assert (row["word"], row["selection"], row["k"]) == ("crowd", "relative", 5)
    _, cos = brute_force_nearest(row["vector"], tiny_scan.analysis, 10)
    assert row["target_rank"] == int((cos > cos[crowd]).sum()) + 1
    assert row["target_cosine"] == pytest.approx(cos[crowd], abs=1e-5)


def test_human_output_names_every_objective(tiny_folder):
    result = run_cli("L2.N5", "--word", "house", "--selection", "absolute", "--group-size", "3",
                     "--nearest", "4", "--model", str(tiny_folder), *FAST)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "L2.N5: activation" in out and "house/absolute/3: activation" in out
    assert out.count("nearest:") == 2
    assert "target 'house': rank" in out
    nearest_line = next(line for line in out.splitlines() if "nearest:" in line)
    assert nearest_line.count("(") == 4  # --nearest 4


@pytest.mark.parametrize("args, message", [
    (["L3N7"], "malformed neuron name 'L3N7'"),
    (["L4.N0"], "layers 1..3, neurons 0..15"),
    (["L1.N16"], "layers 1..3, neurons 0..15"),
    (["--word", "zebra"], "'zebra' is not a single token"),
    (["--word", "crowds"], "not a single token"),
    ([], "name neurons"),
    (["--word", "crowd"], "--group-size must lie in 1.."),  # default 250 > 48 neurons of the tiny model
    (["L1.N0", "--length", "0"], "0 is not in the range x>=1"),
    (["L1.N0", "--length", "600"], "--length 600 does not fit"),
    (["L1.N0", "--steps", "-1"], "-1 is not in the range x>=0"),
    (["L1.N0", "--nearest", "-1"], "-1 is not in the range x>=1"),
    (["L1.N0", "--lr", "nan"], "lr must be finite"),
    (["L1.N0", "--lr", "inf"], "lr must be finite"),
    (["L1.N0", "--init-std", "inf"], "init_std finite"),
    (["L1.N0", "--device", "foo"], "--device 'foo' is not a device"),
    (["L1.N0", "--device", "CPU"], "--device 'CPU' is not a device"),
    (["L1.N0", "--device", "meta"], "--device 'meta' is not a device"),
    (["L1.N0", "--k", "3"], "No such option '--k'"),
])
def test_bad_input_is_one_clean_line(tiny_folder, args, message):
    result = run_cli("--model", str(tiny_folder), *FAST, *args)  # args last: they override FAST
    assert result.exit_code in (1, 2), result.output  # 2: a usage error click finds
    assert isinstance(result.exception, SystemExit)  # a handled exit, not an escaped exception
    # stderr may hold finished progress bars (errors found after the vocabulary scan); the error is
    # the last line, and it is a single line.
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and message in lines[-1]
    assert sum(line.startswith("Error") for line in lines) == 1
    assert "Traceback" not in result.output and result.stdout == ""


def test_missing_model_folder_is_one_clean_line(tmp_path):
    result = run_cli("L1.N0", "--model", str(tmp_path / "nope"), *FAST)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "does not exist" in result.stderr and "\n" not in result.stderr.strip()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_cuda_without_a_gpu_is_one_clean_line(tiny_folder):
    result = run_cli("L1.N0", "--model", str(tiny_folder), "--device", "cuda")
    assert result.exit_code == 1 and "--device cpu" in result.stderr


def test_installed_console_script_fails_cleanly(tiny_folder, tmp_path):
    # The real entry point in a real process: exit status 1, one line on stderr, no traceback.
    script = Path(sys.executable).with_name("ft-artifacts")
    assert script.is_file(), "the package's console script is not installed next to this interpreter"
    proc = subprocess.run([str(script), "textualize", "L3N7", "--model", str(tiny_folder), "--device", "cpu"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip().startswith("Error: malformed neuron name 'L3N7'")
    assert "Traceback" not in proc.stderr and "\n" not in proc.stderr.strip()


def test_a_diverged_optimization_is_named_and_exits_non_zero(tiny_folder):
    # lr 1e30 overflows float32 within a few steps: the rows are kept, marked, and never a hit.
    result = run_cli("L1.N3", "--word", "crowd", "--group-size", "5", "--model", str(tiny_folder), "--device", "cpu",
                     "--steps", "5", "--lr", "1e30", "--json")
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["diverged"] for r in rows] == [True, True]
    assert all(r["nearest"] == [] for r in rows) and rows[1]["target_rank"] is None
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: the optimization diverged") and "L1.N3, crowd/relative/5" in error
