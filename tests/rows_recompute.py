"""Every stored results number of an artifact, recomputed from its rows without the package.

Reads the artifact folder through plain `json`, `pyarrow.parquet` and the card's text; recomputes with
numpy. Used by tests/test_recompute.py (tiny artifact) and tests/test_demo_build.py (MiniLM demo).

Rows carrying a true `diverged` column value, or a non-finite activation or vector, are left out of every
mean; in the groups' top-1/top-20 shares they count as misses (the shares are over all words).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

# Stored figures are float32 columns averaged in float64 (build_info) or printed with 2-3 decimals (card).
REL = 1e-5


def read_rows(root: Path, config: str) -> list[dict]:
    files = sorted((Path(root) / "data" / config).glob("*.parquet"))
    assert files, f"no parquet files for {config} in {root}"
    return [row for f in files for row in pq.read_table(str(f)).to_pylist()]


def kept(rows: list[dict]) -> list[dict]:
    """Rows that count in means: all, except rows marked diverged or holding non-finite values."""
    def finite(r):
        values = [r["activation"], *(r.get("vector") or [])]
        return all(v is not None and np.isfinite(v) for v in values)

    return [r for r in rows if not r.get("diverged", False) and finite(r)]


def vocab_matrix(root: Path) -> tuple[np.ndarray, list[str]]:
    rows = sorted(read_rows(root, "vocabulary"), key=lambda r: r["token_id"])
    assert [r["token_id"] for r in rows] == list(range(len(rows)))
    return np.asarray([r["vector"] for r in rows], dtype=np.float64), [r["token"] for r in rows]


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def expected_single(root: Path) -> dict:
    """Table 1 from the neurons rows and the vocabulary rows."""
    vocab, _ = vocab_matrix(root)
    return single_from_rows(read_rows(root, "neurons"), np.linalg.norm(vocab, axis=1))


def single_from_rows(rows: list[dict], vocab_norms: np.ndarray) -> dict:
    good = kept(rows)
    act = np.array([r["activation"] for r in good], dtype=np.float64)
    return {
        "rows_all": len(rows),
        "rows_kept": len(good),
        "activation": act.mean(),
        "activation_std": act.std(ddof=1) if len(act) > 1 else None,
        "most_activating_activation": np.mean([r["most_activating_activation"] for r in good]),
        "closest_cosine": np.mean([r["nearest"][0]["cosine"] for r in good]),
        "norm": np.mean([r["norm"] for r in good]),
        "word_norm": np.mean(vocab_norms),
        "closest_differs": np.mean([r["nearest"][0]["token"] != r["most_activating_token"] for r in good]),
    }


def expected_groups(root: Path) -> dict[tuple[str, int], dict]:
    """Tables 3/4 from the word_groups rows: per (selection, k)."""
    return groups_from_rows(read_rows(root, "word_groups"))


def groups_from_rows(rows: list[dict]) -> dict[tuple[str, int], dict]:
    """Means over the kept rows of each (selection, k); shares over all its rows (a diverged one is a miss)."""
    good = kept(rows)
    out = {}
    for key in sorted({(r["selection"], r["k"]) for r in rows}):
        every = [r for r in rows if (r["selection"], r["k"]) == key]
        part = [r for r in good if (r["selection"], r["k"]) == key]
        hits = [r["target_rank"] for r in part]
        rank = np.array(hits + [0] * (len(every) - len(part)))  # 0: never a hit
        out[key] = {
            "words": len(every),
            "target_cosine": np.mean([r["target_cosine"] for r in part]),
            "activation": np.mean([r["activation"] for r in part]),
            "target_activation": np.mean([r["target_activation"] for r in part]),
            "top1": float(np.mean(rank == 1)),
            "top20": float(np.mean((rank >= 1) & (rank <= 20))),
        }
    return out


def expected_nonpositive(root: Path) -> int:
    return int(sum(r["a_max"] <= 0 for r in read_rows(root, "neuron_stats")))


def check_rows_themselves(root: Path) -> None:
    """The per-row figures the tables average: norm, nearest[0], target rank and cosine, most activating
    token and activation, each recomputed from the row's vector, the vocabulary and neuron_stats."""
    vocab, tokens = vocab_matrix(root)
    keys = unit(vocab)
    stats = {r["neuron"]: r for r in read_rows(root, "neuron_stats")}
    for config in ("neurons", "word_groups"):
        for row in read_rows(root, config):
            v = np.asarray(row["vector"], dtype=np.float64)
            assert row["norm"] == np.float32(np.linalg.norm(v)) or abs(row["norm"] - np.linalg.norm(v)) <= 1e-4 * row["norm"]
            cos = keys @ unit(v)
            near = row["nearest"]
            top = np.argpartition(-cos, len(near))[:len(near) + 1]
            order = top[np.argsort(-cos[top], kind="stable")]
            np.testing.assert_allclose([n["cosine"] for n in near], cos[order[:len(near)]], atol=1e-5)
            # the stored nearest token is the true nearest one (or an exact near-tie of it)
            assert cos[tokens.index(near[0]["token"])] >= cos[order[0]] - 1e-6, (row.get("neuron") or row["group"])
            if config == "neurons":
                s = stats[row["neuron"]]
                assert (row["most_activating_token"], row["most_activating_token_id"]) == (
                    s["most_activating_token"], s["most_activating_token_id"])
                assert row["most_activating_activation"] == s["a_max"]
            else:
                own = cos[row["target_token_id"]]
                assert abs(row["target_cosine"] - own) <= 1e-5
                # rank = 1 + tokens strictly closer; float32 storage allows near-ties within 1e-6 either way
                assert 1 + (cos > own + 1e-6).sum() <= row["target_rank"] <= 1 + (cos > own - 1e-6).sum(), row["group"]


# the evaluation's keys (report.json's and build_info.json's results) for the recomputed figures
TABLE1_KEYS = {"activation": "activation_mean", "activation_std": "activation_sd",
               "most_activating_activation": "most_activating_mean", "closest_cosine": "closest_cosine_mean",
               "norm": "norm_optimized_mean", "word_norm": "norm_vocabulary_mean"}
GROUP_KEYS = {"words": "words", "target_cosine": "cosine_target_mean", "activation": "activation_mean",
              "target_activation": "target_activation_mean", "top1": "top1_share", "top20": "top20_share"}


def check_build_info(root: Path, info: dict | None = None) -> None:
    """build_info.json's results and scan counts equal the recomputation."""
    info = info or json.loads((Path(root) / "build_info.json").read_text())
    results, want = info["results"], expected_single(root)
    rows = results["artifact"]["rows"]["neurons"]
    assert (rows, rows - results["artifact"]["diverged"]["neurons"]) == (want["rows_all"], want["rows_kept"])
    single = results["table1"]
    for key, stored in TABLE1_KEYS.items():
        assert single[stored] == _approx(want[key]), (key, single[stored], want[key])
    assert single["closest_is_most_activating_share"] == _approx(1 - want["closest_differs"])
    groups = expected_groups(root)
    stored = {(g["selection"], g["k"]): g for g in results["groups"]}
    assert set(stored) == set(groups)
    for key, want_g in groups.items():
        for name, value in want_g.items():
            assert stored[key][GROUP_KEYS[name]] == _approx(value), (key, name, stored[key][GROUP_KEYS[name]], value)
    assert info["nonpositive_max"] == expected_nonpositive(root)


def _approx(value):
    import pytest

    return pytest.approx(value, rel=REL, abs=1e-6)


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


def table_rows(markdown: str) -> list[list[str]]:
    """Every markdown table row as its cells (header separators dropped)."""
    rows = []
    for line in markdown.splitlines():
        line = line.strip()
        if line.startswith("|") and line.endswith("|") and not re.fullmatch(r"\|[-|: ]+\|", line):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def shown(cell: str, *values, percent: bool = False) -> None:
    """The cell's leading numbers equal `values` (times 100 with `percent`) rounded to the digits printed."""
    nums = re.findall(r"-?\d+(?:\.\d+)?", cell)
    assert len(nums) >= len(values), (cell, values)
    for s, v in zip(nums, values):
        v = 100 * v if percent else v
        decimals = len(s.split(".")[1]) if "." in s else 0
        # printed rounding, plus float32 slack for values printed at many digits
        assert abs(float(s) - v) <= 0.5 * 10 ** -decimals + 1e-6 * abs(v), (cell, s, v)


def _sample_sd(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def check_evaluation_text(root: Path, text: str) -> None:
    """The card's results section (the report's tables): every printed figure of Table 1 and Tables 3/4,
    means with sample sd, recomputed from the rows; the paper's own figures beside them."""
    vocab, _ = vocab_matrix(root)
    good = kept(read_rows(root, "neurons"))
    by_label = {r[0]: r for r in table_rows(text) if len(r) >= 3}
    columns = {
        "activation of the optimized input": [r["activation"] for r in good],
        "activation of the most activating token": [r["most_activating_activation"] for r in good],
        "cosine of the optimized input to its closest token": [r["nearest"][0]["cosine"] for r in good],
    }
    for label, values in columns.items():
        assert label in by_label, (label, list(by_label))
        shown(by_label[label][1], np.mean(values), _sample_sd(values))
    shown(by_label["mean norm, optimized inputs"][1], np.mean([r["norm"] for r in good]))
    shown(by_label["mean norm, vocabulary vectors"][1], np.linalg.norm(vocab, axis=1).mean())
    shown(by_label["share whose closest token is the most activating token"][1],
           np.mean([r["nearest"][0]["token"] == r["most_activating_token"] for r in good]))
    assert "42.523" in by_label["activation of the optimized input"][2]  # the paper's Table 1 (DESIGN.md)
    assert re.search(rf"\b{len(good)} neurons", text), "row count"

    every = read_rows(root, "word_groups")
    rows = kept(every)
    group_rows = [r for r in table_rows(text) if len(r) == 13 and r[0] in ("absolute", "relative")]
    assert sorted((r[0], int(r[1])) for r in group_rows) == sorted({(g["selection"], g["k"]) for g in every})
    for r in group_rows:
        part = [g for g in rows if (g["selection"], g["k"]) == (r[0], int(r[1]))]
        words = sum((g["selection"], g["k"]) == (r[0], int(r[1])) for g in every)
        rank = np.array([g["target_rank"] for g in part] + [0] * (words - len(part)))  # a diverged word: a miss
        assert int(r[2]) == words
        for cell, key in ((r[3], "target_cosine"), (r[5], "activation"), (r[7], "target_activation")):
            values = [g[key] for g in part]
            shown(cell, np.mean(values), *([_sample_sd(values)] if len(part) > 1 else []))
        shown(r[9], np.mean(rank == 1))
        shown(r[11], np.mean((rank >= 1) & (rank <= 20)))
        if (r[0], r[1]) == ("relative", "250"):  # the paper's Tables 3 and 4 beside ours
            assert (r[4], r[10], r[12]) == ("0.207 (0.09)", "0.67", "0.75"), r


def check_card(root: Path) -> None:
    """The card shows one results section, the report's, and its numbers are the rows' own."""
    card = (Path(root) / "README.md").read_text(encoding="utf-8")
    results = card.split("## Results", 1)[1].split("## Usage", 1)[0]
    assert results.count("| single neurons |") == 1 and results.count("| selection | k |") == 1
    check_evaluation_text(root, results)
    match = re.search(r"≤ 0 \((\d+) here\)", card)
    assert match, "the card states the count of neurons with a_max <= 0"
    assert int(match[1]) == expected_nonpositive(root)


def check_all(root: Path) -> None:
    check_rows_themselves(root)
    check_build_info(root)
    check_card(root)
