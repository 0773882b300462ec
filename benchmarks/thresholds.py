"""The distributions behind the statistical thresholds of the MiniLM integration tests, over seeds.

- tests/test_integration_minilm.py: 12 neurons (2 per layer, rng 2024) and the 20 words' relative groups at
  k = 10 and 250, 300 steps, one batch; per optimizer seed: top-1 counts at k = 10 and 250, how many neurons'
  final activation beats a_max, and sum(final) / sum(a_max).
- tests/test_demo_build.py (the demo preset's word groups): 10 words (6 random + 4 curated, word seed = s) at
  absolute k = 10, 450 and relative k = 10, 250, 300 steps, optimizer seed s; per seed: top-1 counts.

Run:  .venv/bin/python benchmarks/thresholds.py --seeds 8 [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ft_artifacts.builders.sampling import sample_words
from ft_artifacts.metrics import rank_of
from ft_artifacts.model import load_model
from ft_artifacts.naming import Neuron
from ft_artifacts.objectives import neuron
from ft_artifacts.optimize import OptimConfig, optimize
from ft_artifacts.scan import scan_vocabulary
from ft_artifacts.textualize import group_objective

INTEGRATION_WORDS = ("crowd music water house river king money green dog church summer army bridge paper light "
                     "school doctor island train garden").split()
# 20 more words, at k = 250 only (tests/test_integration_minilm.py's enlarged sample)
EXTRA_WORDS = ("time people year world day man city family war game night book car team life road tree fire horse "
               "ship").split()
DEMO_CELLS = (("absolute", 10), ("absolute", 450), ("relative", 10), ("relative", 250))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--extra", action="store_true", help="add EXTRA_WORDS at k = 250; skip the demo part")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model("minilm")
    scan = scan_vocabulary(lm)
    keys = torch.from_numpy(scan.analysis)
    rng = np.random.default_rng(2024)
    neurons = [Neuron(layer, int(i)) for layer in range(1, lm.num_layers + 1)
               for i in rng.choice(lm.hidden_size, 2, replace=False)]
    a_max = np.array([scan.a_max[n.flat(lm.hidden_size)] for n in neurons], dtype=np.float64)
    integration = [neuron(n) for n in neurons] + [group_objective(lm, scan, w, "relative", k)
                                                  for k in (10, 250) for w in INTEGRATION_WORDS]
    if args.extra:
        integration += [group_objective(lm, scan, w, "relative", 250) for w in EXTRA_WORDS]
    start = time.perf_counter()
    print(f"MiniLM, {args.steps} steps, lr 100; seeds 0..{args.seeds - 1}")
    for seed in range(args.seeds):
        words = sample_words(lm.tokens, 6, 4, seed)
        demo = [] if args.extra else [group_objective(lm, scan, w, s, k) for s, k in DEMO_CELLS for w in words]
        objs = integration + demo
        result = optimize(lm, objs, OptimConfig(steps=args.steps, seed=seed, trace_every=args.steps))
        vectors = result.analysis[:, 0].float()
        targets = [lm.token_id(o.label.split("/")[0]) if "/" in o.label else 0 for o in objs]
        ranks = rank_of(vectors, keys, torch.tensor(targets)).numpy()
        final = result.activation[:len(neurons)].double().numpy()
        n = len(neurons)
        top1_10 = int((ranks[n:n + 20] == 1).sum())
        top1_250 = int((ranks[n + 20:n + 40] == 1).sum())
        if args.extra:
            extra = int((ranks[n + 40:n + 60] == 1).sum())
            print(f"seed {seed}: k=10 {top1_10}/20, k=250 {top1_250}/20 + extra words {extra}/20 = "
                  f"{top1_250 + extra}/40; neurons beating a_max {int((result.activation[:n].double().numpy() > a_max).sum())}/{n}",
                  flush=True)
            continue
        demo_ranks = ranks[n + 40:].reshape(len(DEMO_CELLS), len(words))
        demo_top1 = {f"{s}{k}": int((r == 1).sum()) for (s, k), r in zip(DEMO_CELLS, demo_ranks)}
        print(f"seed {seed}: integration top-1 k=10 {top1_10}/20, k=250 {top1_250}/20; neurons beating a_max "
              f"{int((final > a_max).sum())}/{n}, sum ratio {final.sum() / a_max.sum():.2f} | demo words top-1 "
              f"(of 10) {demo_top1}", flush=True)
    print(f"elapsed {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
