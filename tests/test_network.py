"""Real Hugging Face Hub checks (opt-in: `pytest -m network`)."""

from __future__ import annotations

import pytest

from ft_artifacts.model import load_model

pytestmark = pytest.mark.network


def test_paper_model_loads_from_the_hub():
    lm = load_model("bert-base-uncased")
    assert (lm.num_layers, lm.hidden_size, lm.vocab_size) == (12, 768, 30522)
    assert lm.revision and not lm.revision.startswith("sha256:")
