"""Query latency as a user sees it, process start included: `ft-artifacts query --neuron/--group/--word`
and `Artifact.neurons_near`, each run as a fresh process against an artifact folder.

Each case runs `--repeats` times (after one untimed warm-up that fills the OS page cache and the
checksum cache); the table gives the median and the slowest wall time, plus `python -c pass` and the
CLI's own import as the floor every command pays.

Run:  .venv/bin/python benchmarks/query_latency.py demo-artifacts [--repeats 5] [--json out.json]
The neuron, group and word queried are the artifact's first sampled neuron, its first group and that
group's word, unless --neuron / --group / --word say otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(cmd: list[str], repeats: int) -> dict:
    subprocess.run(cmd, check=True, capture_output=True)  # warm-up: page cache, checksum cache
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
    return {"median_s": statistics.median(walls), "max_s": max(walls), "runs": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", help="an artifact folder (e.g. demo-artifacts)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--neuron")
    parser.add_argument("--group", help="word/selection/k")
    parser.add_argument("--word")
    parser.add_argument("--json", dest="json_out", help="also write the results as JSON")
    args = parser.parse_args()

    import pyarrow.parquet as pq

    folder = Path(args.artifact)
    neuron = args.neuron or pq.read_table(folder / "data/neurons/train-00000-of-00001.parquet",
                                          columns=["neuron"]).column(0)[0].as_py()
    group = args.group or pq.read_table(folder / "data/word_groups/train-00000-of-00001.parquet",
                                        columns=["group"]).column(0)[0].as_py()
    word, selection, k = group.rsplit("/", 2)
    word = args.word or word
    cli = [str(BIN / "ft-artifacts"), "query", str(folder), "-n", "10"]
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import ft_artifacts.cli": [sys.executable, "-c", "import ft_artifacts.cli"],
        f"query --neuron {neuron}": cli + ["--neuron", neuron],
        f"query --group {word} --selection {selection} --group-size {k}":
            cli + ["--group", word, "--selection", selection, "--group-size", k],
        f"query --word {word}": cli + ["--word", word],
        f"neurons_near(word={word!r}, k=5)": [sys.executable, "-c", "import sys, ft_artifacts; "
                                              "ft_artifacts.load(sys.argv[1]).neurons_near(word=sys.argv[2], k=5)",
                                              str(folder), word],
    }
    load = os.getloadavg()[0]
    print(f"artifact {folder}, {args.repeats} runs per case after one warm-up; load average {load:.2f}")
    print(f"{'case':<62} {'median s':>9} {'max s':>7}")
    results = {}
    for label, cmd in cases.items():
        results[label] = timed(cmd, args.repeats)
        print(f"{label:<62} {results[label]['median_s']:>9.3f} {results[label]['max_s']:>7.3f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"artifact": str(folder), "load_average": load,
                                                   "cases": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
