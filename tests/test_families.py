"""Every supported family against the model's own forward, on tiny random-init models built offline:
a one-hot x for token t through the adapter equals the model's forward on the token ids at every
neuron of every layer, the vocabulary scan equals it on every token, the analysis space is the
model's first hidden state, and optimizing (stopped at the deepest target layer, preconditioned in
E's space) computes what the full forward computes."""

from __future__ import annotations

import pytest
import torch

from family_models import DECODERS, FAMILY_OF, own_forward, save_tiny
from ft_artifacts.hooks import activations
from ft_artifacts.model import load_model
from ft_artifacts.naming import Neuron
from ft_artifacts.objectives import group, neuron
from ft_artifacts.optimize import OptimConfig, optimize
from ft_artifacts.scan import scan_vocabulary

MODEL_TYPES = sorted(FAMILY_OF)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {t: save_tiny(t, root / t) for t in MODEL_TYPES}


def _framed(lm, model_type: str, ids: torch.Tensor) -> torch.Tensor:
    """The token ids [V, t] the model itself sees for each token alone: [CLS] w [SEP], or BOS w."""
    tokenizer_frame = [torch.full_like(ids, lm.cls_id), ids]
    if model_type not in DECODERS:
        tokenizer_frame.append(torch.full_like(ids, lm.sep_id))
    return torch.stack(tokenizer_frame, dim=1)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_one_hot_input_and_vocabulary_scan_equal_the_models_own_forward(folders, model_type):
    lm = load_model(str(folders[model_type]))
    assert lm.family.name == FAMILY_OF[model_type] and lm.family.decoder == (model_type in DECODERS)
    assert (lm.num_layers, lm.hidden_size) == (3, 16)
    ids = torch.arange(lm.vocab_size)
    own, own_analysis = own_forward(model_type, lm.model, _framed(lm, model_type, ids))
    assert own.shape == (lm.vocab_size, lm.num_neurons) and own.abs().mean() > 0.05  # not a dead model

    x = torch.eye(lm.vocab_size)  # one-hot rows: x @ E is the continuous path the optimizer takes
    with torch.no_grad():
        analysis, acts = activations(lm, (x @ lm.embedding_matrix).unsqueeze(1))
    # RoBERTa's padding token takes no position when it is a token id; a continuous x always takes
    # the next position, so the one-hot comparison leaves that one token out (the scan covers it).
    keep = ids != lm.model.config.pad_token_id if lm.family.name == "roberta" else ids >= 0
    torch.testing.assert_close(acts[keep], own[keep], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(analysis[keep, 1], own_analysis[keep], rtol=1e-5, atol=1e-5)

    scan = scan_vocabulary(lm, batch_size=17)  # several batches
    torch.testing.assert_close(torch.from_numpy(scan.acts), own, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(scan.analysis), own_analysis, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_type", ["electra", "albert", "gpt2", "llama", "modernbert"])
def test_optimizing_equals_the_full_forward_and_preconditioning_is_exact(folders, model_type):
    lm = load_model(str(folders[model_type]), dtype=torch.float64)
    objectives = [neuron(Neuron(1, 3)), neuron(Neuron(3, 5)), group([Neuron(2, 0), Neuron(3, 1)], "g")]
    config = dict(steps=4, lr=1.0, trace_every=1, seed=7)
    pre = optimize(lm, objectives, OptimConfig(method="preconditioned", **config))
    plain = optimize(lm, objectives, OptimConfig(method="plain", **config))
    assert pre.pre_ln.shape == (3, 1, lm.embedding_matrix.shape[1]) and pre.analysis.shape == (3, 1, 16)
    torch.testing.assert_close(pre.pre_ln, plain.pre_ln, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(pre.activation, plain.activation, rtol=1e-9, atol=1e-9)
    assert (pre.trace[:, -1] > pre.trace[:, 0]).all()  # ascent
    with torch.no_grad():  # the rows stopped at their deepest layer read what the whole model computes
        analysis, acts = activations(lm, pre.pre_ln.to(lm.device))
    want = torch.stack([acts[0, 3], acts[1, 2 * 16 + 5], (acts[2, 16] + acts[2, 2 * 16 + 1]) / 2])
    torch.testing.assert_close(pre.activation, want, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(pre.analysis[:, 0], analysis[:, 1], rtol=1e-9, atol=1e-9)


def test_albert_reads_its_shared_ffn_output_once_per_layer_position(folders):
    lm = load_model(str(folders["albert"]))
    shared = lm.model.encoder.albert_layer_groups[0].albert_layers[0].ffn_output
    assert lm.family.neuron_modules(lm.model) == [shared] and lm.num_layers == 3
    with torch.no_grad():
        _, acts = activations(lm, lm.embedding_matrix[5:7].unsqueeze(1))
    layers = acts.view(2, 3, 16)
    assert not torch.allclose(layers[:, 0], layers[:, 1])  # three calls, three different readings


def test_the_family_is_recorded_and_older_manifests_read_as_bert():
    from ft_artifacts.manifest import ModelInfo, _Reader

    model = dict(id="m", revision="r", source="s", num_layers=3, hidden_size=16, vocab_size=45)
    assert _Reader("build_info.json").model(model).family == "bert"  # written before families existed
    assert _Reader("build_info.json").model({**model, "family": "gpt2"}) == ModelInfo(**model, family="gpt2")
    with pytest.raises(Exception, match="'family' has the wrong type"):
        _Reader("build_info.json").model({**model, "family": 3})


def test_an_unsupported_model_type_names_the_supported_families():
    from transformers import T5Config, T5EncoderModel

    from ft_artifacts.errors import ModelLoadError
    from ft_artifacts.families import detect

    model = T5EncoderModel(T5Config(vocab_size=40, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2))
    with pytest.raises(ModelLoadError) as err:
        detect(model, "tiny-t5")
    message = str(err.value)
    assert "T5EncoderModel" in message and "'t5'" in message and "\n" not in message
    assert "llama (llama/mistral/qwen2)" in message and "roberta (roberta/xlm-roberta)" in message


def test_the_length_limit_counts_the_familys_frame(folders):
    from ft_artifacts.errors import ObjectiveError
    from ft_artifacts.commands import check_length

    roberta, gpt2 = load_model(str(folders["roberta"])), load_model(str(folders["gpt2"]))
    assert roberta.max_length == 20 - 2 - 2  # positions start at padding_idx + 1 = 2; <s> and </s>
    assert gpt2.max_length == 20 - 1  # BOS only
    check_length(gpt2, 19)
    with pytest.raises(ObjectiveError, match="at most 19 optimized tokens after BOS"):
        check_length(gpt2, 20)
    with pytest.raises(ObjectiveError, match=r"at most 16 optimized tokens between \[CLS\] and \[SEP\]"):
        check_length(roberta, 17)


@pytest.mark.parametrize("model_type", ["deberta-v2", "llama"])
def test_cli_textualize_on_a_family_folder(folders, model_type):
    import json

    from click.testing import CliRunner

    from ft_artifacts.cli import main

    result = CliRunner().invoke(main, ["textualize", "L2.N3", "--word", "crowd", "--group-size", "5", "--model",
                                       str(folders[model_type]), "--device", "cpu", "--steps", "5", "--lr", "1",
                                       "--json"])
    assert result.exit_code == 0, result.output
    single, grouped = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert single["neuron"] == "L2.N3" and grouped["word"] == "crowd" and len(grouped["neurons"]) == 5
    lm = load_model(str(folders[model_type]))
    with torch.no_grad():  # the printed activation is the neuron at the printed input, recomputed
        _, acts = activations(lm, torch.tensor(single["pre_ln_vector"]).view(1, 1, -1))
    assert single["activation"] == pytest.approx(float(acts[0, 16 + 3]), rel=1e-5, abs=1e-6)
