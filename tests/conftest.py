"""Shared fixtures: a tiny random-init BERT saved to a folder (loaded through the real local-folder path
of `load_model`, in float32 and float64), and the packaged pretrained MiniLM with its vocabulary scan.

No test here mocks the model: the tiny BERT is a real `transformers.BertModel` with a real
`BertTokenizerFast`, so every code path (tokenizer, embeddings, hooks) is the one users run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

# The tests' caches (textualize's vocabulary scans under $HF_HOME/ft-artifacts) stay out of the user's
# Hugging Face folder: one fresh HF_HOME per run, set before any test imports huggingface_hub.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="ft-artifacts-tests-hf-")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Run the tests on one intra-op thread.

    The test models are small (3-token inputs), so a second thread gains little, and on a busy
    2-core machine OpenMP threads waiting for each other make every op cost a scheduler slice:
    measured here while other jobs ran, the MiniLM integration file took 234 s with 2 threads and
    35 s with 1, and the float32 reference scan 18 s instead of under 1 s.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Whole words (the CLI tests use "crowd" and "house"), then `##` pieces, then single letters.
WORDS = (
    "crowd house river king money green dog church summer army bridge paper light school doctor island "
    "train garden music water the a of and to in is it was for on with as at by from that this be or"
).split()
PIECES = ["##s", "##ed", "##ing", "##er", "##ly", "##est", "##ness", "##ment", "##ion", "##al"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz")
TINY_LAYERS, TINY_HIDDEN = 3, 16


def tiny_vocab() -> list[str]:
    vocab = SPECIAL + WORDS + PIECES
    vocab += [c for c in LETTERS if c not in vocab]
    vocab += ["##" + c for c in LETTERS if "##" + c not in vocab]
    assert len(set(vocab)) == len(vocab)
    return vocab


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """A saved tiny random-init BERT (3 layers, hidden 16, ~120 tokens) with its tokenizer."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(tiny_vocab()) + "\n")
    # `from_pretrained` on a folder holding only vocab.txt: the path real BERT checkpoints take.
    # (In transformers 5, `BertTokenizerFast(vocab_file=...)` silently ignores the file.)
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)
    assert len(tokenizer) == len(tiny_vocab())
    config = BertConfig(
        vocab_size=len(tiny_vocab()),
        hidden_size=TINY_HIDDEN,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        # Larger than BERT's 0.02 so the random layers are far from linear and activations are O(1).
        initializer_range=0.2,
    )
    torch.manual_seed(1234)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny(tiny_folder):
    """The tiny BERT loaded through `load_model(folder)` in float32."""
    from ft_artifacts.model import load_model

    return load_model(str(tiny_folder))


@pytest.fixture(scope="session")
def tiny64(tiny_folder):
    """The same tiny BERT in float64, for comparisons at tight tolerance."""
    from ft_artifacts.model import load_model

    return load_model(str(tiny_folder), dtype=torch.float64)


@pytest.fixture(scope="session")
def tiny_scan(tiny):
    from ft_artifacts.scan import scan_vocabulary

    return scan_vocabulary(tiny, batch_size=32)


@pytest.fixture(scope="session")
def minilm():
    """The packaged pretrained all-MiniLM-L6-v2 (6 layers, hidden 384, vocabulary 30,522)."""
    from ft_artifacts.model import load_model

    return load_model("minilm")


@pytest.fixture(scope="session")
def minilm_scan(minilm):
    """Vocabulary scan of MiniLM (30,522 x 2,304 activations; about 10 s on CPU)."""
    from ft_artifacts.scan import scan_vocabulary

    return scan_vocabulary(minilm)
