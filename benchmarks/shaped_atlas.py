"""A bert-base-shaped atlas for read-side benchmarks: the files, sizes and manifest of `build paper
--neurons all` on bert-base-uncased (30,522 vocabulary rows of 768 floats, 36,864 neuron rows, 800
group rows, 36,864 neuron_stats rows), written by the real packer, with seeded random vectors and
rows instead of optimized ones.

Its numbers mean nothing; its shape is what a query pays for (manifest, checksums, parquet footers,
columns, FAISS indexes), so `query_latency.py` can time an atlas that a 2-core machine cannot build.
The tokens are the demo artifact's when one is given (`--tokens-from`), else `tok<i>`.

Run:  .venv/bin/python benchmarks/shaped_atlas.py OUT [--tokens-from demo-artifacts]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYERS, HIDDEN, FFN, VOCAB = 12, 768, 3072, 30522
WORDS, SELECTIONS, KS = 100, ("absolute", "relative"), (10, 100, 250, 450)
NEAREST, TRACE = 10, 51


def _tokens(source: str | None) -> list[str]:
    if source:
        import pyarrow.parquet as pq

        tokens = pq.read_table(Path(source) / "data/vocabulary/train-00000-of-00001.parquet",
                               columns=["token"]).column(0).to_pylist()
        if len(tokens) == VOCAB:
            return tokens
    return [f"tok{i}" for i in range(VOCAB)]


def _optimized(rng, n: int, tokens: list[str]) -> dict:
    vectors = rng.standard_normal((n, HIDDEN), dtype=np.float32)
    ids = rng.integers(0, VOCAB, size=n)
    nearest_ids = rng.integers(0, VOCAB, size=(n, NEAREST))
    return {
        "vector": list(vectors), "pre_ln_vector": list(rng.standard_normal((n, HIDDEN), dtype=np.float32)),
        "norm": np.linalg.norm(vectors, axis=1), "activation": rng.gamma(2.0, 2.0, n).astype(np.float32),
        "diverged": np.zeros(n, dtype=bool), "most_activating_token": [tokens[i] for i in ids],
        "most_activating_token_id": ids.astype(np.int32), "most_activating_activation": rng.gamma(2.0, 1.0, n),
        "nearest": [[{"token": tokens[i], "cosine": float(c)} for i, c in zip(row, np.linspace(0.5, 0.1, NEAREST))]
                    for row in nearest_ids],
        "activation_trace": list(np.cumsum(rng.random((n, TRACE), dtype=np.float32), axis=1)),
        "seed": np.arange(n, dtype=np.int64), "steps": np.full(n, 5000, dtype=np.int32),
        "lr": np.full(n, 100.0, dtype=np.float32), "init_std": np.full(n, 0.01, dtype=np.float32),
        "method": ["sgd"] * n,
    }


def tables(seed: int, tokens: list[str]) -> tuple[dict, list[str]]:
    import datasets

    from ft_artifacts.schema import features

    rng = np.random.default_rng(seed)
    names = [(layer, index) for layer in range(1, LAYERS + 1) for index in range(FFN)]
    neurons = {"neuron": [f"L{l}.N{i}" for l, i in names], "layer": [l for l, _ in names],
               "index": [i for _, i in names], **_optimized(rng, len(names), tokens)}
    words = [t for t in tokens if t.isalpha()][:WORDS] or [f"tok{i}" for i in range(WORDS)]
    keys = [(w, s, k) for w in words for s in SELECTIONS for k in KS]
    members = [[f"L{l}.N{i}" for l, i in (names[j] for j in rng.choice(len(names), k, replace=False))]
               for _, _, k in keys]
    groups = {"group": [f"{w}/{s}/{k}" for w, s, k in keys], "word": [w for w, _, _ in keys],
              "selection": [s for _, s, _ in keys], "k": [k for _, _, k in keys], "neurons": members,
              "target_token_id": [tokens.index(w) for w, _, _ in keys],
              "target_rank": rng.integers(1, 1000, len(keys)).astype(np.int32),
              "target_cosine": rng.random(len(keys), dtype=np.float32),
              "target_activation": rng.gamma(2.0, 1.0, len(keys)).astype(np.float32),
              **_optimized(rng, len(keys), tokens)}
    vocabulary = {"token_id": np.arange(VOCAB, dtype=np.int32), "token": tokens,
                  "vector": list(rng.standard_normal((VOCAB, HIDDEN), dtype=np.float32)),
                  "pre_ln_vector": list(rng.standard_normal((VOCAB, HIDDEN), dtype=np.float32))}
    top = rng.integers(0, VOCAB, size=(len(names), 10))
    stats = {"neuron": neurons["neuron"], "layer": neurons["layer"], "index": neurons["index"],
             "a_max": rng.gamma(2.0, 2.0, len(names)).astype(np.float32),
             "most_activating_token": [tokens[r[0]] for r in top], "most_activating_token_id": top[:, 0].astype(np.int32),
             "sampled": np.ones(len(names), dtype=bool), "top_tokens": [[tokens[i] for i in r] for r in top],
             "top_activations": list(np.sort(rng.gamma(2.0, 2.0, (len(names), 10)).astype(np.float32), axis=1)[:, ::-1])}
    data = {"neurons": neurons, "word_groups": groups, "vocabulary": vocabulary, "neuron_stats": stats}
    return {name: datasets.Dataset.from_dict(columns, features=features(name)) for name, columns in data.items()}, words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--tokens-from", help="an artifact of a bert-base-uncased-vocabulary model (demo-artifacts)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from builders.presets import preset
    from ft_artifacts.manifest import ModelInfo
    from ft_artifacts.pack import pack_artifact

    tokens = _tokens(args.tokens_from)
    built, words = tables(args.seed, tokens)
    config = preset("paper", neuron_fraction=1.0)
    model = ModelInfo(id="bert-base-shaped (random rows)", revision="none", source="benchmarks/shaped_atlas.py",
                      num_layers=LAYERS, hidden_size=HIDDEN, vocab_size=VOCAB)
    pack_artifact(args.out, tables=built, model=model, settings=config.to_dict(),
                  settings_table={"shape": "bert-base-uncased atlas, random rows"}, words=words, nonpositive_max=0)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {size / 2**20:.0f} MiB, {len(built['neurons'])} neurons, {len(built['word_groups'])} groups")


if __name__ == "__main__":
    main()
