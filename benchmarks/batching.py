"""How far a row's result drifts with what it is batched with (MiniLM, float32, the paper's lr 100).

The same target rows (single neurons over all layers, and relative word groups) are optimized:
- alone: one `optimize` call per row (batch of one);
- in batch compositions: the targets among other objectives (different companions, sizes, orders);
- the same chunk twice: the first composition again (same rows, same order).

Each row's initial input depends only on (seed, objective label), so every difference comes from floating
point: batched kernels of different shapes round differently, and lr-100 SGD amplifies those differences.
Per target row and composition it prints the relative difference of the final activation, the cosine between
the two optimized (analysis-space) vectors, and the overlap of their 10 nearest vocabulary tokens; then the
worst and median over rows. It ends with whether the same chunk twice gave bit-identical rows.

Run:  .venv/bin/python benchmarks/batching.py --steps 300 [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ft_artifacts.metrics import cosine_topk
from ft_artifacts.model import load_model
from ft_artifacts.naming import Neuron
from ft_artifacts.objectives import neuron
from ft_artifacts.optimize import OptimConfig, optimize
from ft_artifacts.scan import scan_vocabulary
from ft_artifacts.textualize import group_objective

WORDS = ("crowd", "music", "water", "king")


def targets(lm, scan, per_layer: int, rng) -> list:
    singles = [neuron(Neuron(layer, int(i))) for layer in range(1, lm.num_layers + 1)
               for i in rng.choice(lm.hidden_size, per_layer, replace=False)]
    groups = [group_objective(lm, scan, w, "relative", 250) for w in WORDS]
    return singles + groups


def companions(lm, count: int, exclude: set, rng) -> list:
    out = []
    while len(out) < count:
        n = Neuron(int(rng.integers(1, lm.num_layers + 1)), int(rng.integers(lm.hidden_size)))
        if str(n) not in exclude:
            exclude.add(str(n))
            out.append(neuron(n))
    return out


def by_label(result) -> dict:
    return {label: (float(result.activation[i]), result.analysis[i, 0].double(), result.pre_ln[i])
            for i, label in enumerate(result.labels)}


def compare(base: dict, other: dict, keys: torch.Tensor, labels: list[str]) -> list[dict]:
    rows = []
    vec_a = torch.stack([base[lab][1] for lab in labels])
    vec_b = torch.stack([other[lab][1] for lab in labels])
    _, near_a = cosine_topk(vec_a.float(), keys, 10)
    _, near_b = cosine_topk(vec_b.float(), keys, 10)
    for j, lab in enumerate(labels):
        a, b = base[lab][0], other[lab][0]
        cos = float(torch.nn.functional.cosine_similarity(vec_a[j], vec_b[j], dim=0))
        overlap = len(set(near_a[j].tolist()) & set(near_b[j].tolist())) / 10
        rows.append({"row": lab, "alone": a, "batched": b, "rel_diff": abs(b - a) / max(abs(a), 1e-12),
                     "abs_diff": abs(b - a), "cosine": cos, "top10_overlap": overlap})
    return rows


def summarize(title: str, rows: list[dict]) -> None:
    rel = np.array([r["rel_diff"] for r in rows])
    cos = np.array([r["cosine"] for r in rows])
    ov = np.array([r["top10_overlap"] for r in rows])
    print(f"\n{title}:")
    print(f"  activation relative difference: max {rel.max():.2e}, median {np.median(rel):.2e}")
    print(f"  cosine between the optimized vectors: min {cos.min():.6f}, median {np.median(cos):.6f}")
    print(f"  top-10 nearest-token overlap: min {ov.min():.1f}, mean {ov.mean():.2f}")
    worst = max(rows, key=lambda r: r["rel_diff"])
    print(f"  worst row {worst['row']}: {worst['alone']:.4f} vs {worst['batched']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=100.0)
    parser.add_argument("--per-layer", type=int, default=2, help="target neurons per layer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    lm = load_model("minilm")
    scan = scan_vocabulary(lm)
    keys = torch.from_numpy(scan.analysis)
    config = OptimConfig(steps=args.steps, lr=args.lr, seed=args.seed, trace_every=max(args.steps, 1))
    objs = targets(lm, scan, args.per_layer, rng)
    labels = [o.label for o in objs]
    taken = set(labels)
    compositions = {
        # targets first, then 24 companions
        "targets + 24 neurons": objs + companions(lm, 24, taken, rng),
        # 56 other companions, everything shuffled
        "targets + 56 neurons, shuffled": [x for x in rng.permutation(objs + companions(lm, 56, taken, rng))],
        # only the targets, reversed
        "targets only, reversed": objs[::-1],
        # each target with one companion
        "pairs": None,
    }
    print(f"MiniLM, float32, lr {args.lr}, {args.steps} steps, {len(objs)} target rows "
          f"({len(objs) - len(WORDS)} neurons, {len(WORDS)} relative k=250 groups); torch {torch.__version__}, "
          f"{args.threads} thread(s)")
    start = time.perf_counter()
    alone = {}
    for obj in objs:
        alone.update(by_label(optimize(lm, [obj], config)))
    pair_mates = companions(lm, len(objs), taken, rng)
    results, report = {}, {}
    first = next(iter(compositions))
    for name, batch in compositions.items():
        if batch is None:  # pairs: one call per target, with its own companion
            results[name] = {}
            for obj, mate in zip(objs, pair_mates):
                results[name].update(by_label(optimize(lm, [mate, obj], config)))
            size = "2"
        else:
            results[name] = by_label(optimize(lm, batch, config))
            size = str(len(batch))
        for base_name, base in (("alone", alone), (first, results[first])):
            if name == base_name:
                continue
            rows = compare(base, results[name], keys, labels)
            report[f"{name} vs {base_name}"] = rows
            summarize(f"{name} ({size} rows) vs {base_name}", rows)
    again = by_label(optimize(lm, compositions[first], config))
    identical = all(torch.equal(again[lab][2], results[first][lab][2]) and again[lab][0] == results[first][lab][0]
                    for lab in again)
    print(f"\nsame chunk twice ({first}): bit-identical rows: {identical}")
    print(f"elapsed {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"steps": args.steps, "lr": args.lr, "compositions": report, "same_chunk_identical": identical},
                      handle, indent=2)


if __name__ == "__main__":
    main()
