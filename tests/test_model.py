"""Model loading: local folders, the packaged MiniLM, frozen eval mode, and clear errors for models
that are not BERT-layout encoders, missing folders, and an unreachable or offline Hub."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from ft_artifacts.errors import FTError, ModelLoadError
from ft_artifacts.model import load_model, sha256_file

from conftest import tiny_vocab


def _assert_frozen(lm):
    assert not lm.model.training
    assert all(not m.training for m in lm.model.modules())  # dropout off everywhere
    params = list(lm.model.parameters())
    assert params and all(not p.requires_grad for p in params)


def test_local_folder_loads_the_saved_weights_and_vocabulary(tiny_folder, tiny):
    from safetensors.torch import load_file

    assert (tiny.num_layers, tiny.hidden_size, tiny.vocab_size) == (3, 16, len(tiny_vocab()))
    assert tiny.num_neurons == 3 * 16
    assert tiny.tokens == tiny_vocab()
    assert tiny.tokens[tiny.cls_id] == "[CLS]" and tiny.tokens[tiny.sep_id] == "[SEP]"
    assert tiny.token_id("crowd") == tiny_vocab().index("crowd")
    assert tiny.dtype == torch.float32 and tiny.device.type == "cpu"
    # The weights are the saved ones (not a fresh random init).
    saved = load_file(str(tiny_folder / "model.safetensors"))
    key = next(k for k in saved if k.endswith("embeddings.word_embeddings.weight"))
    assert torch.equal(tiny.embedding_matrix, saved[key])
    assert tiny.revision == "sha256:" + sha256_file(tiny_folder / "model.safetensors")
    assert tiny.model_id == tiny_folder.name and tiny.source == str(tiny_folder)


def test_local_model_is_frozen_in_eval_mode(tiny, tiny64):
    _assert_frozen(tiny)
    _assert_frozen(tiny64)
    assert tiny64.dtype == torch.float64
    assert torch.equal(tiny64.embedding_matrix.float(), tiny.embedding_matrix)


def test_word_that_is_not_one_token_is_a_clear_error(tiny):
    with pytest.raises(FTError, match="not a single token"):
        tiny.token_id("crowds")  # two word pieces: crowd ##s
    with pytest.raises(FTError, match="not a single token"):
        tiny.token_id("Crowd")  # the tokenizer's casing is lower case


@pytest.mark.integration
def test_packaged_minilm_loads(minilm):
    assert (minilm.num_layers, minilm.hidden_size, minilm.vocab_size) == (6, 384, 30522)
    assert len(minilm.tokens) == 30522
    assert minilm.tokens[minilm.cls_id] == "[CLS]" and minilm.tokens[minilm.sep_id] == "[SEP]"
    assert minilm.tokens[minilm.token_id("crowd")] == "crowd"
    assert minilm.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert minilm.revision.startswith("sha256:")
    _assert_frozen(minilm)


def _tiny_tokenizer(folder):
    from transformers import BertTokenizerFast

    (folder / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    BertTokenizerFast.from_pretrained(str(folder)).save_pretrained(folder)


def test_an_unsupported_family_is_refused_in_one_line_naming_the_supported_ones(tmp_path):
    from transformers import MPNetConfig, MPNetModel

    config = MPNetConfig(vocab_size=len(tiny_vocab()), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=16)
    MPNetModel(config).save_pretrained(tmp_path)
    _tiny_tokenizer(tmp_path)  # a usable tokenizer, so the refusal is about the model
    with pytest.raises(ModelLoadError) as err:
        load_model(str(tmp_path))
    message = str(err.value)
    assert "MPNetModel" in message and "'mpnet'" in message and "\n" not in message, message
    for family in ("bert", "roberta", "distilbert", "electra", "albert", "deberta-v2", "modernbert", "gpt2", "llama"):
        assert family in message.split("supported families:")[1], message


def test_a_decoder_whose_tokenizer_has_no_bos_is_refused(tmp_path):
    from transformers import GPT2Config, GPT2Model

    config = GPT2Config(vocab_size=len(tiny_vocab()), n_embd=16, n_layer=2, n_head=2, n_positions=16)
    GPT2Model(config).save_pretrained(tmp_path)
    _tiny_tokenizer(tmp_path)  # BERT's tokenizer: [CLS]/[SEP], no BOS
    with pytest.raises(ModelLoadError, match="tokenizer defines no BOS token"):
        load_model(str(tmp_path))


def test_a_model_missing_its_family_layout_is_refused_naming_the_missing_parts(tmp_path):
    from transformers import DistilBertConfig, DistilBertModel

    from ft_artifacts.model import _family

    model = DistilBertModel(DistilBertConfig(vocab_size=len(tiny_vocab()), dim=16, n_layers=2, n_heads=2,
                                             hidden_dim=32, max_position_embeddings=16))
    del model.transformer.layer[1].ffn.lin2
    with pytest.raises(ModelLoadError) as err:
        _family(model, "odd-distilbert")
    message = str(err.value)
    assert "transformer.layer[i].ffn.lin2" in message and "DistilBertModel" in message, message
    assert "embeddings.word_embeddings" not in message  # it names only what is missing


@pytest.mark.parametrize("spec", ["/nonexistent/ft-artifacts-model", "./no-such-model-folder", "~/no/such/model"])
def test_missing_folder_is_a_clear_error(spec):
    with pytest.raises(ModelLoadError) as err:
        load_model(spec)
    assert "does not exist" in str(err.value) and "--model minilm" in str(err.value)


def test_folder_without_config_is_a_clear_error(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def _mutate(case, folder):
    if case == "corrupt weights":
        (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    elif case == "truncated weights":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif case == "no weights":
        (folder / "model.safetensors").unlink()
    elif case == "config does not match weights":
        config = json.loads((folder / "config.json").read_text())
        config["intermediate_size"] *= 2
        (folder / "config.json").write_text(json.dumps(config))
    elif case == "invalid config":
        (folder / "config.json").write_text("{not json")


@pytest.mark.parametrize(
    "case", ["corrupt weights", "truncated weights", "no weights", "config does not match weights", "invalid config"]
)
def test_broken_folder_is_a_clear_error(case, tiny_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_folder, broken)
    _mutate(case, broken)
    with pytest.raises(ModelLoadError, match="could not load a model from"):
        load_model(str(broken))


def test_folder_without_tokenizer_is_refused(tiny_folder, tmp_path):
    # transformers would build a specials-only tokenizer here, giving [CLS]/[SEP] ids that are wrong
    # for the model; load_model must refuse instead of running with them.
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_folder / name, bare / name)
    with pytest.raises(ModelLoadError, match="tokenizer") as err:
        load_model(str(bare))
    assert str(len(tiny_vocab())) in str(err.value)  # it states the model's vocabulary size


def test_vocabulary_without_cls_is_refused(tiny_folder, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_folder, other)
    (other / "tokenizer.json").unlink()
    (other / "vocab.txt").write_text("[PAD]\n[UNK]\ncrowd\n")  # no [CLS]/[SEP]: not this model's vocabulary
    with pytest.raises(ModelLoadError, match="tokenizer"):
        load_model(str(other))


# Runs load_model on each spec in a fresh interpreter (huggingface_hub reads its environment at import
# time) and prints one JSON list: the error each load raised and how long it took.
LOAD = """
import json, sys, time
from ft_artifacts.errors import FTError
from ft_artifacts.model import load_model
results = []
for spec in sys.argv[1:]:
    start = time.monotonic()
    try:
        load_model(spec)
        out = {"error": None}
    except FTError as err:
        out = {"error": type(err).__name__, "message": str(err)}
    out["seconds"] = time.monotonic() - start
    results.append(out)
print(json.dumps(results))
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens here once the socket is closed


def _load_in_subprocess(specs: list[str], tmp_path, **env_overrides) -> list[dict]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_")) and k != "PYTHONPATH"}
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    env.update(HF_HOME=str(hf_home), **env_overrides)  # an empty cache: nothing can come from disk
    proc = subprocess.run([sys.executable, "-c", LOAD, *specs], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_unreachable_hub_fails_fast_pointing_to_minilm(tmp_path):
    port = _closed_port()
    specs = ["bert-base-uncased", "google-bert/bert-base-uncased"]
    for spec, out in zip(specs, _load_in_subprocess(specs, tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{port}")):
        assert out["error"] == "ModelLoadError", out
        assert spec in out["message"] and "--model minilm" in out["message"]
        assert "127.0.0.1" in out["message"]  # it says which Hub it could not reach
        assert out["seconds"] < 10, out  # seconds, not minutes of retries


def test_offline_hub_fails_fast_pointing_to_minilm(tmp_path):
    (out,) = _load_in_subprocess(["bert-base-uncased"], tmp_path, HF_HUB_OFFLINE="1",
                                 HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}")
    assert out["error"] == "ModelLoadError", out
    assert "HF_HUB_OFFLINE" in out["message"] and "--model minilm" in out["message"]
    assert out["seconds"] < 10, out
