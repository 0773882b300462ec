"""Shared helpers and session fixtures for the artifact tests: a tiny random-init BERT (hidden 160, so the
k = 450 group configs fit in its L*H = 480 neurons) saved with `save_pretrained`, and ONE tiny artifact
built from it with the real builder.

Use from a test module with `pytest_plugins = ["artifact_fixtures"]` (tests/ is on sys.path), or import the
helpers explicitly. Nothing here is mocked: the model is a real `BertModel` with a real `BertTokenizerFast`
built from the vocab.txt written below.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNUSED = [f"[unused{i}]" for i in range(8)]
# Lowercase whole words; must include the curated words the builder picks first (time, people, ...).
WORDS = """
time people year world day man city house water music life school family war game money night book car team
the a of and to in is it was for on with as at by from that this be or an are not but have had his her
they we you she he him them their our my your its who what when where which why how all any some many
more most other new old good great small large long little own right big high low few same last first
second next early young important public bad able crowd river king green dog church summer army bridge
paper light doctor island train garden tree stone fire wind rain snow sun moon star sea lake hill road
street field forest mountain village town country state nation law court police church ship boat plane
horse bird fish cat cow bread milk wine tea coffee sugar salt apple orange red blue black white yellow
brown gold silver iron steel glass wood wall door window room floor table chair bed kitchen office
market bank story word letter name voice song film art color shape line point number group party
company member leader friend mother father brother sister child son daughter wife husband girl boy
woman heart head hand eye face body blood bone skin hair foot arm leg
""".split()
PIECES = ["##s", "##ed", "##ing", "##er", "##ly", "##est", "##ness", "##ment", "##ion", "##al", "##ity",
          "##ful", "##less", "##able", "##ize", "##ous", "##ive", "##ic", "##a", "##e", "##o", "##i"]
DIGITS = list("0123456789")
PUNCT = list(".,!?'\"-/():;&%$#@+=*")
LAYERS, HIDDEN, HEADS, INTERMEDIATE = 3, 160, 4, 64


def tiny_vocab() -> list[str]:
    vocab = SPECIAL + UNUSED + list(dict.fromkeys(WORDS)) + PIECES + DIGITS + PUNCT
    assert len(set(vocab)) == len(vocab)
    return vocab


def make_tiny_bert(folder: Path, seed: int = 20240601) -> Path:
    """Save a random-init BertModel + BertTokenizerFast into `folder` and return it."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # from_pretrained on a folder holding vocab.txt: the path real BERT checkpoints take.
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)
    assert tokenizer.convert_ids_to_tokens(list(range(len(vocab)))) == vocab
    config = BertConfig(vocab_size=len(vocab), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                        num_attention_heads=HEADS, intermediate_size=INTERMEDIATE, max_position_embeddings=16,
                        # BERT's 0.02 leaves activations ~0.02; 0.2 makes them O(1), so relative tolerances bite.
                        initializer_range=0.2)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_build_config(model: Path | str, **overrides):
    """The one build configuration every artifact test uses (small chunks, so several chunks exist)."""
    from ft_artifacts.builders.presets import BuildConfig
    from ft_artifacts.optimize import OptimConfig

    settings = dict(model=str(model), random_words=3, curated_words=2,
                    optim=OptimConfig(steps=15, trace_every=5), chunk_rows=16)
    settings.update(overrides)
    return BuildConfig(**settings)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` except the hidden work folder, by posix relative path."""
    return {p.relative_to(root).as_posix(): sha256_bytes(p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(root).parts)}


def assert_same_neighbours(got_ids, got_cosines, query: np.ndarray, keys: np.ndarray, k: int) -> None:
    """(ids, cosines) found for one query equal a float64 brute-force cosine top-k over `keys`: cosines within
    1e-5, ids equal except where an exact near-tie (true cosines within 1e-6) lets two items swap places."""
    from ft_artifacts.metrics import brute_force_topk

    want_cos, want_ids = (a[0] for a in brute_force_topk(np.reshape(query, (1, -1)), keys, k))
    assert len(got_ids) == len(want_ids) == min(k, len(keys))
    assert len(set(map(int, got_ids))) == len(got_ids), "duplicate ids"
    np.testing.assert_allclose(np.asarray(got_cosines, dtype=np.float64), want_cos, rtol=0, atol=1e-5)
    x = keys.astype(np.float64) / np.linalg.norm(keys.astype(np.float64), axis=1, keepdims=True)
    q = np.asarray(query, dtype=np.float64).ravel()
    true = x @ (q / np.linalg.norm(q))
    for j, (got, want) in enumerate(zip(got_ids, want_ids)):
        if int(got) != int(want):
            assert abs(true[int(got)] - want_cos[j]) <= 1e-6, (
                f"position {j}: got id {got} (cosine {true[int(got)]:.8f}), expected {want} ({want_cos[j]:.8f})")


def assert_same_artifact(got: Path, want: Path) -> None:
    """Byte-identical data, index and card files, and the same build_info.json except its `runtime`
    section (processes, peak memory and wall time differ from run to run)."""
    info = "build_info.json"
    assert {k: v for k, v in file_hashes(got).items() if k != info} == \
        {k: v for k, v in file_hashes(want).items() if k != info}
    strip = (lambda p: {k: v for k, v in json.loads((p / info).read_text()).items() if k != "runtime"})
    assert strip(got) == strip(want)


def copy_artifact(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child Pythons: no HF_* leaking in from the outside, offline unless told otherwise.
    The package is installed editable, so no PYTHONPATH is needed (and the cwd must not be the repo root)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "PYTHONPATH"))}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_UPDATE_CHECK="1",
               TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


def run_python(code: str, *args: str, cwd: Path, env: dict | None = None, timeout: int = 180):
    """Run `code` in a fresh interpreter (the venv's) from `cwd`; return the CompletedProcess."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=env or subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


def last_json(stdout: str):
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """Folder of the saved tiny BERT (3 layers, hidden 160, ~300 tokens)."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert160"))


@pytest.fixture(scope="session")
def tiny_lm(tiny_bert):
    """The tiny BERT loaded through the real `load_model(folder)`."""
    from ft_artifacts.model import load_model

    return load_model(str(tiny_bert))


@pytest.fixture(scope="session")
def tiny_config(tiny_bert):
    """The BuildConfig of the shared artifact."""
    return tiny_build_config(tiny_bert)


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory, tiny_config) -> Path:
    """The shared tiny artifact, built once per session. Tests must not modify it: copy it first."""
    from ft_artifacts.builders.build import build

    out = tmp_path_factory.mktemp("artifact") / "tiny"
    return build(tiny_config, out)


@pytest.fixture(scope="session")
def tiny_loaded(tiny_artifact):
    """`ft_artifacts.load` of the shared artifact (checksums verified)."""
    import ft_artifacts

    return ft_artifacts.load(tiny_artifact)
