"""Model checks: factorized embeddings (ELECTRA-style) are refused by the BERT layout check (ELECTRA
loads as its own family), and the Hub
reachability check goes through huggingface_hub's own HTTP client, so HF_ENDPOINT, HTTP_PROXY and the
offline variables act on it. The proxy here is a loopback HTTP server; no traffic leaves 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from ft_artifacts.errors import ModelLoadError
from ft_artifacts.model import _check_layout, load_model

from artifact_fixtures import last_json, run_python, subprocess_env
from conftest import tiny_vocab


def _save_tokenizer(folder):
    from transformers import BertTokenizerFast

    (folder / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    BertTokenizerFast.from_pretrained(str(folder)).save_pretrained(folder)


def _electra(folder, embedding_size: int, hidden_size: int = 16):
    from transformers import ElectraConfig, ElectraModel

    config = ElectraConfig(vocab_size=len(tiny_vocab()), embedding_size=embedding_size, hidden_size=hidden_size,
                           num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                           max_position_embeddings=16)
    torch.manual_seed(0)
    model = ElectraModel(config)
    model.save_pretrained(folder)
    _save_tokenizer(folder)
    return model


def test_factorized_embeddings_are_refused_by_the_bert_layout_check_naming_the_sizes(tmp_path):
    model = _electra(tmp_path, embedding_size=8)
    assert hasattr(model, "embeddings_project")  # the layout the plain BERT check let through
    with pytest.raises(ModelLoadError) as err:
        _check_layout(model, tmp_path.name)
    message = str(err.value)
    assert "embedding size 8 differs from hidden size 16 (factorized embeddings)" in message, message
    assert "ElectraModel" in message and tmp_path.name in message and "\n" not in message


def test_factorized_electra_loads_as_its_own_family(tmp_path):
    _electra(tmp_path, embedding_size=8)
    lm = load_model(str(tmp_path))
    assert (lm.family.name, lm.num_layers, lm.hidden_size, lm.embedding_matrix.shape[1]) == ("electra", 2, 16, 8)


def test_electra_without_factorized_embeddings_loads(tmp_path):
    _electra(tmp_path, embedding_size=16)
    lm = load_model(str(tmp_path))
    assert (lm.num_layers, lm.hidden_size, lm.max_length) == (2, 16, 14)


def test_layer_output_of_another_size_is_refused():
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                                 intermediate_size=32, max_position_embeddings=16))
    model.encoder.layer[1].output.dense = torch.nn.Linear(32, 12)
    with pytest.raises(ModelLoadError, match=r"encoder\.layer\[1\]\.output\.dense has 12 outputs, not the hidden "
                                             r"size 16"):
        _check_layout(model, "odd-bert")


def test_max_length_fits_between_cls_and_sep(tiny):
    assert tiny.max_length == 16 - 2  # tiny BERT: max_position_embeddings 16


# --- Hub reachability --------------------------------------------------------------------------------------
# In a fresh interpreter (huggingface_hub reads its environment at import): run the check for one model
# id, or load_model when asked, and print the error it raised and how long it took.
PROBE = """
import json, sys, time
from ft_artifacts.errors import FTError
from ft_artifacts.model import load_model, probe_hub
start = time.monotonic()
try:
    (load_model if sys.argv[2] == "load" else probe_hub)(sys.argv[1])
    out = {"error": None}
except FTError as err:
    out = {"error": type(err).__name__, "message": str(err)}
out["seconds"] = time.monotonic() - start
print(json.dumps(out))
"""

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def _probe(tmp_path, model_id="bert-base-uncased", how="probe", **env) -> dict:
    base = {k: v for k, v in subprocess_env().items()
            if k.upper() not in _PROXY_VARS and k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir(exist_ok=True)
    base.update(HF_HOME=str(hf_home), **env)  # an empty cache: nothing can come from disk
    proc = run_python(PROBE, model_id, how, cwd=tmp_path, env=base, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return last_json(proc.stdout)


class _Proxy:
    """A loopback HTTP proxy stand-in: answers every (absolute-URI) request itself with `status`."""

    def __init__(self, status: int):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                seen.append((self.command, self.path))
                body = b'{"error": "stand-in"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens here once the socket is closed


def _assert_unreachable(out: dict, host: str, model_id: str = "bert-base-uncased", seconds: float = 10):
    assert out["error"] == "ModelLoadError", out
    message = out["message"]
    assert message.startswith("cannot reach the Hugging Face Hub") and host in message, message
    assert model_id in message and "--model minilm" in message and "\n" not in message, message
    assert out["seconds"] < seconds, out  # seconds, not minutes of retries


@pytest.mark.parametrize("status", [200, 401, 404])
def test_hub_check_goes_through_the_proxy(tmp_path, status):
    with _Proxy(status) as proxy:
        out = _probe(tmp_path, "google-bert/bert-base-uncased", HF_ENDPOINT="http://hub.invalid",
                     HTTP_PROXY=proxy.url)
    assert out["error"] is None, out  # any HTTP answer means reachable
    assert proxy.seen == [("HEAD", "http://hub.invalid/api/models/google-bert/bert-base-uncased")]


def test_lowercase_proxy_variable_is_honoured(tmp_path):
    with _Proxy(404) as proxy:
        out = _probe(tmp_path, HF_ENDPOINT="http://hub.invalid", http_proxy=proxy.url)
    assert out["error"] is None, out
    assert len(proxy.seen) == 1 and proxy.seen[0][1].startswith("http://hub.invalid/")


def test_gateway_error_from_the_proxy_means_unreachable(tmp_path):
    with _Proxy(502) as proxy:
        out = _probe(tmp_path, HF_ENDPOINT="http://hub.invalid", HTTP_PROXY=proxy.url)
    _assert_unreachable(out, "hub.invalid")
    assert "HTTP 502" in out["message"] and len(proxy.seen) == 1


def test_without_the_proxy_the_hub_check_fails_fast(tmp_path):
    port = _closed_port()
    _assert_unreachable(_probe(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{port}"), "127.0.0.1")


def test_proxy_that_is_down_fails_fast(tmp_path):
    out = _probe(tmp_path, HF_ENDPOINT="http://hub.invalid", HTTP_PROXY=f"http://127.0.0.1:{_closed_port()}")
    _assert_unreachable(out, "hub.invalid")


def test_proxy_that_never_answers_times_out_in_seconds(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        out = _probe(tmp_path, HF_ENDPOINT="http://hub.invalid",
                     HTTP_PROXY=f"http://127.0.0.1:{silent.getsockname()[1]}")
    _assert_unreachable(out, "hub.invalid", seconds=10)
    assert out["seconds"] >= 2.5, out  # it waited for the 3 s timeout, not a refused connection


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
@pytest.mark.parametrize("how", ["probe", "load"])
def test_offline_variables_fail_at_once_without_a_request(tmp_path, variable, how):
    with _Proxy(200) as proxy:
        out = _probe(tmp_path, how=how, HF_ENDPOINT="http://hub.invalid", HTTP_PROXY=proxy.url, **{variable: "1"})
    assert proxy.seen == []
    assert out["error"] == "ModelLoadError", out
    message = out["message"]
    assert variable in message and "bert-base-uncased" in message and "--model minilm" in message, message
    assert "\n" not in message
    assert out["seconds"] < 5, out


def test_load_model_goes_through_the_proxy_to_the_hub(tmp_path):
    # The check passes through the proxy; the download then asks the same proxy and gets its 404.
    with _Proxy(404) as proxy:
        out = _probe(tmp_path, how="load", HF_ENDPOINT="http://hub.invalid", HTTP_PROXY=proxy.url)
    assert out["error"] == "ModelLoadError", out
    assert out["message"].startswith("could not load bert-base-uncased from the Hugging Face Hub"), out
    assert "--model minilm" in out["message"] and "\n" not in out["message"], out
    assert proxy.seen[0] == ("HEAD", "http://hub.invalid/api/models/bert-base-uncased")
    assert len(proxy.seen) >= 2 and all(path.startswith("http://hub.invalid/") for _, path in proxy.seen)


def test_many_odd_layers_keep_the_message_short():
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=6, num_attention_heads=2,
                                 intermediate_size=32, max_position_embeddings=16))
    for layer in model.encoder.layer:
        layer.output.dense = torch.nn.Linear(32, 12)
    with pytest.raises(ModelLoadError) as err:
        _check_layout(model, "odd-bert")
    message = str(err.value)
    assert message.count("has 12 outputs") == 3 and "3 more layers alike" in message, message
