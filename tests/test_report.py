"""`ft-artifacts report`: statistics against known answers, every number of report.json recomputed here from
the tiny artifact's parquet files (pyarrow + numpy, no ft_artifacts code), valid PNG figures, the CLI end to
end, progress, and no torch import on the report's own path."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

pytest.register_assert_rewrite("artifact_fixtures")
from artifact_fixtures import subprocess_env  # noqa: E402

from ft_artifacts.cli import main  # noqa: E402
from ft_artifacts.errors import ArtifactError  # noqa: E402
from ft_artifacts.figures import FIGURES  # noqa: E402
from ft_artifacts.report import card_section, compute_report, markdown, mean_sd, ols, write_report  # noqa: E402

pytest_plugins = ["artifact_fixtures"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- independent recomputation helpers (numpy and scipy.special only) -------------------------------------
def parquet(artifact: Path, config: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted((artifact / "data" / config).glob("*.parquet"))])


def vectors(table: pa.Table) -> np.ndarray:
    return np.array(table.column("vector").to_pylist(), dtype=np.float64)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def hand_ols(x, y) -> dict:
    """Textbook OLS: slope Sxy/Sxx, se = sqrt(SSE/(n-2)/Sxx), two-sided p = I_{df/(df+t^2)}(df/2, 1/2)."""
    from scipy.special import betainc

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, df = len(x), len(x) - 2
    sxx = ((x - x.mean()) ** 2).sum()
    slope = ((x - x.mean()) * (y - y.mean())).sum() / sxx
    intercept = y.mean() - slope * x.mean()
    sse = ((y - intercept - slope * x) ** 2).sum()
    t = slope / math.sqrt(sse / df / sxx)
    return {"slope": slope, "intercept": intercept, "t": t, "df": df, "p": betainc(df / 2, 0.5, df / (df + t * t)), "n": n}


def clopper_pearson(hits: int, n: int) -> list[float]:
    """The exact 95% binomial interval, by inverting the regularized incomplete beta function."""
    from scipy.special import betaincinv

    low = 0.0 if hits == 0 else betaincinv(hits, n - hits + 1, 0.025)
    high = 1.0 if hits == n else betaincinv(hits + 1, n - hits, 0.975)
    return [low, high]


def close(got, want, tol=1e-6):
    return got == pytest.approx(want, rel=tol, abs=tol)


# --- statistics with known answers --------------------------------------------------------------------------
def test_ols_recovers_an_exact_slope_with_known_residuals():
    """y = 2 + 3x + e with residuals orthogonal to 1 and x: slope 3, SSE 10, t = 3*sqrt(3) on 3 df, whose
    two-sided p has the closed form 1 - (2/pi) (atan u + u / (1 + u^2)) with u = t / sqrt(3) = 3."""
    x = np.arange(1, 6)
    e = np.array([1, -2, 0, 2, -1])
    fit = ols(x, 2 + 3 * x + e)
    assert close(fit["slope"], 3.0, 1e-12) and close(fit["intercept"], 2.0, 1e-12)
    assert close(fit["t"], 3 * math.sqrt(3), 1e-12)
    assert fit["df"] == 3 and fit["n"] == 5
    assert close(fit["p"], 1 - 2 / math.pi * (math.atan(3) + 3 / 10), 1e-10)


def test_ols_matches_the_textbook_formula_on_noisy_layers():
    rng = np.random.default_rng(7)
    layers = np.repeat(np.arange(1, 13), 77)  # the paper's 924 neurons
    y = 40 - 1.9 * layers + rng.normal(0, 10, len(layers))
    fit, want = ols(layers, y), hand_ols(layers, y)
    for key in ("slope", "intercept", "t", "p"):
        assert close(fit[key], want[key], 1e-9), key
    assert fit["df"] == 922
    assert -2.6 < fit["slope"] < -1.2  # the known true slope -1.9, within noise


def test_ols_undefined_cases_and_sample_sd():
    assert ols([3, 3, 3, 3], [1, 2, 3, 4])["slope"] is None  # one layer: no slope
    assert ols([1, 2], [1, 2])["t"] is None  # df = 0
    assert ols([1, 2, 3], [5, 5, 5])["t"] is None  # flat and exact: t = 0/0
    assert ols([1, 2, 3], [1, 3, 5])["t"] == math.inf  # exact nonzero slope
    import statistics

    values = [1.5, 2.0, 4.25, 8.0]
    assert close(mean_sd(values)[1], statistics.stdev(values), 1e-12) and mean_sd([2.0]) == (2.0, None)


# --- the tiny artifact ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def written(tiny_artifact, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    calls = []
    result = write_report(tiny_artifact, out, progress=lambda name: (lambda d, t: calls.append((name, d, t))))
    return out, result, calls


def test_report_json_is_recomputed_from_the_parquet_files(tiny_artifact, written):
    out, result, _ = written
    report = json.loads((out / "report.json").read_text())
    assert report == json.loads(json.dumps(result["report"]))
    info = json.loads((tiny_artifact / "build_info.json").read_text())
    neurons, groups, vocab = (parquet(tiny_artifact, c) for c in ("neurons", "word_groups", "vocabulary"))

    assert report["artifact"] == {"model": info["model"]["id"], "steps": info["settings"]["optim"]["steps"],
                                  "rows": {"neurons": neurons.num_rows, "word_groups": groups.num_rows,
                                           "vocabulary": vocab.num_rows},
                                  "diverged": {"neurons": 0, "word_groups": 0}}

    # Table 1, with the closest token found by brute force in float64 from the vectors
    v, nv = vectors(vocab), vectors(neurons)
    tokens = np.array(vocab.column("token").to_pylist(), dtype=object)
    cos = unit(nv) @ unit(v).T
    act = np.array(neurons.column("activation").to_pylist())
    most = np.array(neurons.column("most_activating_activation").to_pylist())
    want = {"activation_mean": act.mean(), "activation_sd": act.std(ddof=1), "most_activating_mean": most.mean(),
            "most_activating_sd": most.std(ddof=1), "closest_cosine_mean": cos.max(1).mean(),
            "closest_cosine_sd": cos.max(1).std(ddof=1), "norm_optimized_mean": np.linalg.norm(nv, axis=1).mean(),
            "norm_vocabulary_mean": np.linalg.norm(v, axis=1).mean(),
            "closest_is_most_activating_share": np.mean(tokens[cos.argmax(1)] ==
                                                        np.array(neurons.column("most_activating_token").to_pylist()))}
    intervals = {"activation_ci": act, "most_activating_ci": most, "closest_cosine_ci": cos.max(1),
                 "norm_optimized_ci": np.linalg.norm(nv, axis=1)}
    assert set(report["table1"]) == set(want) | set(intervals) | {"closest_is_most_activating_ci"}
    for key, value in want.items():
        assert close(report["table1"][key], value, 1e-5), key
    assert 0 <= report["table1"]["closest_is_most_activating_share"] <= 1
    for key, values in intervals.items():  # a bootstrap interval of the mean: around it, inside the values' range
        low, high = report["table1"][key]
        assert values.min() - 1e-9 <= low <= values.mean() <= high <= values.max() + 1e-9, key
    hits = int(round(want["closest_is_most_activating_share"] * len(act)))
    assert report["table1"]["closest_is_most_activating_ci"] == pytest.approx(clopper_pearson(hits, len(act)), abs=1e-9)

    # build_info.json's results are this evaluation: the same keys and values
    for key in ("artifact", "table1", "by_layer", "groups"):
        assert info["results"][key] == report[key], key

    # Figures 2-4: OLS over neurons by layer, and the per-layer means
    layer = np.array(neurons.column("layer").to_pylist())
    for key, values in (("activation", act), ("most_activating", most), ("closest_cosine", cos.max(1))):
        got, fit = report["by_layer"][key], hand_ols(layer, values)
        assert got["df"] == len(values) - 2 == fit["df"]
        for stat in ("slope", "t", "p"):
            assert close(got[stat], fit[stat], 1e-4), (key, stat)
        assert [row["layer"] for row in got["layers"]] == sorted(set(layer))
        for row in got["layers"]:
            assert row["n"] == (layer == row["layer"]).sum()
            assert close(row["mean"], values[layer == row["layer"]].mean(), 1e-5)

    # Table 2: the lowest-index sampled neurons of the first and the last layer, 3 closest tokens each
    index = np.array(neurons.column("index").to_pylist())
    names = neurons.column("neuron").to_pylist()
    want_rows = []
    for lay in (layer.min(), layer.max()):
        for i in sorted(np.flatnonzero(layer == lay), key=lambda i: index[i])[:3]:
            top = np.argsort(-cos[i])[:3]
            want_rows.append((names[i], [tokens[j] for j in top], cos[i, top]))
    assert [(r["neuron"], [n["token"] for n in r["nearest"]]) for r in report["table2"]] == [(a, b) for a, b, _ in want_rows]
    for r, (_, _, c) in zip(report["table2"], want_rows):
        assert np.allclose([n["cosine"] for n in r["nearest"]], c, atol=1e-5)

    # Tables 3 and 4: target cosine and rank by brute force from the group vectors and the target's id
    gv = vectors(groups)
    target = np.array(groups.column("target_token_id").to_pylist())
    gcos = unit(gv) @ unit(v).T
    tcos = gcos[np.arange(len(gv)), target]
    rank = (gcos > tcos[:, None]).sum(1) + 1
    sel, ks = np.array(groups.column("selection").to_pylist()), np.array(groups.column("k").to_pylist())
    gact, tact = (np.array(groups.column(c).to_pylist()) for c in ("activation", "target_activation"))
    configs = sorted(set(zip(sel, ks)))
    assert [(g["selection"], g["k"]) for g in report["groups"]] == [(s, int(k)) for s, k in configs]
    for g, (s, k) in zip(report["groups"], configs):
        m = (sel == s) & (ks == k)
        assert g["words"] == m.sum()
        for key, values in (("cosine_target", tcos), ("activation", gact), ("target_activation", tact)):
            assert close(g[f"{key}_mean"], values[m].mean(), 1e-5) and close(g[f"{key}_sd"], values[m].std(ddof=1), 1e-5)
        assert close(g["top1_share"], np.mean(rank[m] == 1)) and close(g["top20_share"], np.mean(rank[m] <= 20))
        for key, hits in (("top1_ci", int((rank[m] == 1).sum())), ("top20_ci", int((rank[m] <= 20).sum()))):
            assert g[key] == pytest.approx(clopper_pearson(hits, int(m.sum())), abs=1e-9), key
        assert 0 <= g["top1_share"] <= g["top20_share"] <= 1

    # Table 5: relative (k nearest 250): the 3 groups closest to their target word, then the 3 farthest
    t5 = report["table5"]
    k5 = min({int(k) for s, k in configs if s == "relative"}, key=lambda k: (abs(k - 250), k))
    m = np.flatnonzero((sel == "relative") & (ks == k5))
    order = sorted(m, key=lambda i: (-tcos[i], groups.column("word")[int(i)].as_py()))
    chosen = order if len(order) <= 6 else order[:3] + order[-3:]
    assert (t5["selection"], t5["k"]) == ("relative", k5)
    assert [e["word"] for e in t5["examples"]] == [groups.column("word")[int(i)].as_py() for i in chosen]
    for e, i in zip(t5["examples"], chosen):
        assert e["target_rank"] == rank[i] and close(e["target_cosine"], tcos[i], 1e-5)
        assert [n["token"] for n in e["nearest"]] == [tokens[j] for j in np.argsort(-gcos[i])[:4]]

    # Figure 5: PCA by the covariance's eigen-decomposition (the report uses an SVD of the data)
    allv = np.concatenate([v, nv, gv])
    centred = allv - allv.mean(0)
    eigval, eigvec = np.linalg.eigh(centred.T @ centred)
    eigval, eigvec = eigval[::-1], eigvec[:, ::-1]
    assert np.allclose(report["pca"]["explained_variance_ratio"], eigval[:2] / eigval.sum(), atol=1e-6)
    proj = centred @ eigvec[:, :2]
    parts = {"vocabulary": proj[:len(v)], "neurons": proj[len(v):len(v) + len(nv)], "word_groups": proj[len(v) + len(nv):]}
    for kind, p in parts.items():
        assert report["pca"]["points"][kind] == len(p)
        assert np.allclose(np.abs(report["pca"]["centroids"][kind]), np.abs(p.mean(0)), atol=1e-5)


def hand_traces(labels, finals, traces) -> dict:
    peaks = [max(list(t) + [f]) for t, f in zip(traces, finals)]
    fell = [(p - f, lab, p, f) for lab, p, f in zip(labels, peaks, finals) if p > 0 and f < p / 2]
    return {"rows": len(finals), "ended_below_half_peak": len(fell), "never_above_zero": sum(p <= 0 for p in peaks),
            "examples": [{"row": lab, "peak": p, "final": f} for _, lab, p, f in sorted(fell, key=lambda x: (-x[0], x[1]))[:5]]}


def test_trace_endings_are_counted_from_each_rows_trace(tiny_artifact):
    neurons, groups, vocab = (parquet(tiny_artifact, c) for c in ("neurons", "word_groups", "vocabulary"))
    act = neurons.column("activation").to_pylist()
    traces = neurons.column("activation_trace").to_pylist()
    act[3], traces[3] = 0.1, [5.0, 6.0]      # rose to 6, ended at 0.1: a late collapse
    act[4], traces[4] = 2.0, [1.0, 3.9]      # 2.0 is above half of 3.9: not one
    act[6], traces[6] = -1.0, [-2.0, -1.5]   # never above 0
    neurons = neurons.set_column(neurons.schema.get_field_index("activation"), "activation", pa.array(act, pa.float32()))
    neurons = neurons.set_column(neurons.schema.get_field_index("activation_trace"), "activation_trace",
                                 pa.array(traces, neurons.schema.field("activation_trace").type))
    got = compute_report(neurons, groups, vocab, model="m", steps=15)["traces"]
    f32 = np.array(act, dtype=np.float32).astype(np.float64).tolist()
    want = hand_traces(neurons.column("neuron").to_pylist(), f32, traces)
    assert got["neurons"]["ended_below_half_peak"] == want["ended_below_half_peak"] >= 1
    assert got["neurons"]["never_above_zero"] == want["never_above_zero"] >= 1
    labels = [f"{w}/{s}/{k}" for w, s, k in zip(*(groups.column(c).to_pylist() for c in ("word", "selection", "k")))]
    for name, expected in (("neurons", want), ("word_groups", hand_traces(
            labels, groups.column("activation").to_pylist(), groups.column("activation_trace").to_pylist()))):
        assert {k: v for k, v in got[name].items() if k != "examples"} == {
            k: v for k, v in expected.items() if k != "examples"}
        assert [e["row"] for e in got[name]["examples"]] == [e["row"] for e in expected["examples"]]
        for e, w in zip(got[name]["examples"], expected["examples"]):
            assert close(e["peak"], w["peak"]) and close(e["final"], w["final"]), (e, w)
    assert got["neurons"]["examples"][0]["row"] == neurons.column("neuron")[3].as_py()  # the largest fall


def test_report_says_how_the_artifact_was_built(tiny_artifact, written):
    out, _, _ = written
    info = json.loads((tiny_artifact / "build_info.json").read_text())
    report = json.loads((out / "report.json").read_text())
    assert report["build"] == {"settings": info["settings"], "versions": info["versions"], "runtime": info["runtime"]}
    section = (out / "report.md").read_text().split("## How this artifact was built", 1)[1]
    run = info["runtime"]
    assert f"| optim.steps | {info['settings']['optim']['steps']} |" in section
    assert f"| ks | {', '.join(map(str, info['settings']['ks']))} |" in section
    assert f"| processes | {run['processes']} |" in section
    assert f"{run['chunks_timed']} of {run['chunks']} chunks timed" in section and run["chunks_timed"] > 0
    assert f"| machine.cpus | {run['machine']['cpus']} |" in section
    assert f"rss {run['peak_memory_bytes'][0]['rss'] / 2**30:.2f} GiB" in section
    assert all(f"{name} {version}" in section for name, version in info["versions"].items())


def test_diverged_rows_are_left_out_and_counted(tiny_artifact):
    neurons, groups, vocab = (parquet(tiny_artifact, c) for c in ("neurons", "word_groups", "vocabulary"))
    flagged = np.zeros(neurons.num_rows, dtype=bool)
    flagged[[0, 5]] = True
    act = neurons.column("activation").to_numpy().copy()
    act[7] = np.nan  # not flagged, but not finite: left out too
    neurons = neurons.set_column(neurons.schema.get_field_index("activation"), "activation", pa.array(act, pa.float32()))
    neurons = neurons.set_column(neurons.schema.get_field_index("diverged"), "diverged", pa.array(flagged))
    gflag = np.zeros(groups.num_rows, dtype=bool)
    gflag[-1] = True
    groups = groups.set_column(groups.schema.get_field_index("diverged"), "diverged", pa.array(gflag))
    report = compute_report(neurons, groups, vocab, model="m", steps=15)
    assert report["artifact"]["diverged"] == {"neurons": 3, "word_groups": 1}
    assert report["artifact"]["rows"]["neurons"] == neurons.num_rows
    keep = np.ones(neurons.num_rows, dtype=bool)
    keep[[0, 5, 7]] = False
    assert close(report["table1"]["activation_mean"], act[keep].mean(), 1e-6)
    assert report["by_layer"]["activation"]["df"] == keep.sum() - 2
    # the diverged group is still one of its configuration's words, and a miss in both shares
    assert sum(g["words"] for g in report["groups"]) == groups.num_rows
    sel, ks = groups.column("selection").to_pylist(), groups.column("k").to_pylist()
    rank = np.array([r if r is not None else 0 for r in groups.column("target_rank").to_pylist()])
    for g in report["groups"]:
        m = (np.array(sel) == g["selection"]) & (np.array(ks) == g["k"])
        assert (g["words"], g["diverged"]) == (m.sum(), (m & gflag).sum())
        hits = m & ~gflag
        assert close(g["top1_share"], (rank[hits] == 1).sum() / m.sum())
        assert close(g["top20_share"], ((rank[hits] >= 1) & (rank[hits] <= 20)).sum() / m.sum())
    flagged_config = next(g for g in report["groups"] if g["diverged"])
    assert (flagged_config["selection"], flagged_config["k"]) == (sel[-1], ks[-1])


def test_datasets_and_pyarrow_tables_give_the_same_report(tiny_artifact, tiny_loaded):
    tables = [parquet(tiny_artifact, c) for c in ("neurons", "word_groups", "vocabulary")]
    from_arrow = compute_report(*tables, model="m", steps=1)
    from_datasets = compute_report(tiny_loaded.neurons, tiny_loaded.word_groups, tiny_loaded.vocabulary, model="m", steps=1)
    assert from_arrow == from_datasets


def test_empty_or_foreign_tables_are_one_line_errors(tiny_artifact):
    neurons, groups, vocab = (parquet(tiny_artifact, c) for c in ("neurons", "word_groups", "vocabulary"))
    with pytest.raises(ArtifactError, match="neurons table is empty"):
        compute_report(neurons.slice(0, 0), groups, vocab, model="m", steps=1)
    with pytest.raises(ArtifactError, match="word_groups table lacks column"):
        compute_report(neurons, groups.drop_columns(["target_rank"]), vocab, model="m", steps=1)


# --- figures and markdown -------------------------------------------------------------------------------
def test_every_figure_is_a_valid_nonblank_png(written, tmp_path):
    from matplotlib.image import imread

    out, result, _ = written
    assert [f for f in result["files"] if f.endswith(".png")] == list(FIGURES.values())
    for rel in FIGURES.values():
        data = (out / rel).read_bytes()
        assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", rel
        at = data.index(b"pHYs")  # pixels per metre, x and y: 200 dpi is 7874
        assert min(struct.unpack(">II", data[at + 4:at + 12])) >= 7874, rel
        svg = (out / rel[:-4]).with_suffix(".svg").read_text(encoding="utf-8")
        assert svg.startswith("<?xml") and "<svg" in svg and "</svg>" in svg, rel
        assert "<dc:date>" not in svg and "Matplotlib v" not in svg, rel  # no date or version: same bytes every run
        width, height = struct.unpack(">II", data[16:24])
        assert width > 200 and height > 200, rel
        pixels = imread(out / rel)
        assert pixels.shape[:2] == (height, width)
        rgb = np.round(pixels[..., :3].reshape(-1, 3) * 255).astype(np.int64)
        assert len(np.unique(rgb @ np.array([65536, 256, 1]))) > 50, f"{rel} is (nearly) blank"
        assert (rgb.min(axis=1) < 128).mean() > 0.005, f"{rel} has almost nothing drawn on it"


def test_markdown_and_card_show_every_table_beside_the_paper(written):
    out, result, _ = written
    report, figures = result["report"], [f for f in result["files"] if f.endswith(".png")]
    text = (out / "report.md").read_text()
    assert text == markdown(report, figures)
    for heading in ("Table 1", "Figures 2-4", "Table 2", "Figure 5", "Tables 3 and 4", "Table 5",
                    "How the optimizations ended", "How this artifact was built"):
        assert heading in text, heading
    assert text.count("paper (bert-base-uncased)") >= 6
    for rel in figures:
        assert f"]({rel})" in text
    for g in report["groups"]:
        assert f"| {g['selection']} | {g['k']} | {g['words']} | {g['cosine_target_mean']:.3f}" in text
    card = card_section(report, figures)
    headings = [line for line in card.splitlines() if line.startswith("#")]
    assert headings and all(h.startswith("### ") for h in headings)  # it sits under the card's "## Results"
    assert "| share whose closest token is the most activating token" in card
    assert all(f"]({rel})" in card for rel in figures) and "](/" not in card
    assert "![" not in card_section(report, [])  # no figures, no image links


# --- CLI, progress, imports -----------------------------------------------------------------------------
def test_cli_report_end_to_end(tiny_artifact, written, tmp_path):
    result = CliRunner().invoke(main, ["report", str(tiny_artifact), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert f"wrote {2 + 2 * len(FIGURES)} files" in result.stdout  # report.json, report.md, each figure as PNG and SVG
    assert "report: figures" in result.stderr and "4/4" in result.stderr
    out = written[0]
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == json.loads((out / "report.json").read_text())
    svgs = [rel[:-4] + ".svg" for rel in FIGURES.values()]
    for rel in [*FIGURES.values(), *svgs]:  # same inputs, same bytes, PNG and SVG alike
        assert hashlib.sha256((tmp_path / "r" / rel).read_bytes()).digest() == hashlib.sha256((out / rel).read_bytes()).digest()


def test_cli_report_errors_are_one_line(tiny_artifact, tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "no such artifact folder" in result.output
    # an artifact whose word_groups config is empty (manifest updated, so checksums pass)
    art = shutil.copytree(tiny_artifact, tmp_path / "empty")
    info = json.loads((art / "build_info.json").read_text())
    rel = info["configs"]["word_groups"]["files"][0]
    pq.write_table(pq.read_table(art / rel).slice(0, 0), art / rel)
    data = (art / rel).read_bytes()
    info["files"][rel] = {**info["files"][rel], "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    info["configs"]["word_groups"]["rows"] = 0
    info["indexes"]["word_groups"].update(rows=0, sources=[["word_groups", 0]])
    (art / "build_info.json").write_text(json.dumps(info))
    result = CliRunner().invoke(main, ["report", str(art), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "word_groups table is empty" in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: ") and "Traceback" not in result.output


def test_progress_stages_start_at_zero_and_finish(written):
    calls = written[2]
    stages = list(dict.fromkeys(name for name, _, _ in calls))
    assert stages == ["report: read tables", "report: statistics", "report: figures"]
    for name in stages:
        seen = [(d, t) for n, d, t in calls if n == name]
        assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] > 0
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)


REPORT_WITHOUT_LOADER = """
import sys, pyarrow.parquet as pq, glob
from ft_artifacts.report import ReportData, evaluate
from ft_artifacts.figures import write_figures
art, out = sys.argv[1], sys.argv[2]
tables = [pq.read_table(glob.glob(f"{art}/data/{c}/*.parquet")[0]) for c in ("neurons", "word_groups", "vocabulary")]
data = ReportData.from_tables(*tables)
write_figures(evaluate(data, "m", 1), data, out)
print(sorted(m for m in ("torch", "transformers", "matplotlib.pyplot") if m in sys.modules))
"""


def test_the_report_itself_imports_no_torch(tiny_artifact, tmp_path):
    result = subprocess.run([sys.executable, "-c", REPORT_WITHOUT_LOADER, str(tiny_artifact), str(tmp_path)],
                            cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_report_command_imports_no_torch(tmp_path):
    """Everything `ft-artifacts report` imports: the CLI, the report, its figures and the loader."""
    code = ("import sys, ft_artifacts.cli, ft_artifacts.report, ft_artifacts.figures, ft_artifacts.loader\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=subprocess_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_activation_figure_stays_readable_with_one_outlier(tiny_artifact):
    """One neuron near 100 among values near 1: the axis keeps the bulk (the outlier is marked at its edge
    with its value), instead of squeezing every other point into the bottom of the panel."""
    from ft_artifacts.figures import _activation_by_layer, outlier_limits
    from ft_artifacts.report import ReportData, evaluate

    neurons, groups, vocab = (parquet(tiny_artifact, c) for c in ("neurons", "word_groups", "vocabulary"))
    act = np.array(neurons.column("activation").to_pylist())
    act[2] = 100.0 * np.abs(act).max()
    neurons = neurons.set_column(neurons.schema.get_field_index("activation"), "activation", pa.array(act, pa.float32()))
    data = ReportData.from_tables(neurons, groups, vocab)
    fig = _activation_by_layer(evaluate(data, "m", 1), data)
    low, high = fig.axes[0].get_ylim()
    rest = np.delete(act, 2)
    assert high < act[2] / 10 and low <= rest.min() and high >= rest.max()  # the bulk fills the panel
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("1 above the axis" in t and f"{np.float32(act[2]):.4g}" in t for t in labels), labels
    assert outlier_limits(rest) is None or outlier_limits(rest)[1] >= rest.max()  # no outlier: all values shown


def test_group_figure_draws_the_intervals(written):
    """The group top-1/top-20 figure draws each share's 95% interval (one error bar per selection, k and share)."""
    from ft_artifacts.figures import _group_top_k

    _, result, _ = written
    ev = result["evaluation"]
    fig = _group_top_k(ev, None)
    drawn = []
    for ax in fig.axes:
        for container in ax.containers:
            segments = container.lines[2][0].get_segments()  # the vertical bars
            drawn += [(round(seg[0][1], 9), round(seg[1][1], 9)) for seg in segments]
    want = [(round(lo, 9), round(hi, 9)) for g in ev.groups for lo, hi in (g.top1_ci, g.top20_ci)]
    assert sorted(drawn) == sorted(want)
