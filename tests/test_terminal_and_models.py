"""Untrusted strings reach the terminal escaped (a model id or token carrying OSC/CSI sequences), and
BERT configs whose forward the method does not reproduce (decoder, cross-attention, relative
positions) are refused in one line, while the plain encoder still matches its own forward."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from artifact_fixtures import subprocess_env
from test_hostile_reading import VOCAB, parquet_bytes, reseal, with_column

pytest_plugins = ["artifact_fixtures"]

CLI = str(Path(sys.executable).with_name("ft-artifacts"))
EVIL = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\u202e"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env=subprocess_env(), cwd=cwd, capture_output=True, text=True, timeout=120)


def test_escape_leaves_printable_text_and_escapes_controls() -> None:
    from ft_artifacts.terminal import escape

    assert escape("crowd ##ing café 中文") == "crowd ##ing café 中文"
    assert escape(EVIL) == "\\x1b]0;owned\\x07\\x1b[2J\\x1b[31mred\\u202e"
    assert escape("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"
    assert escape("forged\nError: fine") == "forged\\nError: fine"


def test_info_and_query_print_untrusted_strings_escaped(tiny_artifact: Path, tmp_path: Path) -> None:
    from ft_artifacts.manifest import read_manifest

    art = Path(shutil.copytree(tiny_artifact, tmp_path / "art"))
    table = pq.read_table(art / VOCAB)
    tokens = table.column("token").to_pylist()
    tokens[tokens.index("people")] = EVIL
    reseal(art, VOCAB, parquet_bytes(with_column(table, "token", pa.array(tokens))))
    data = json.loads((art / "build_info.json").read_text())
    data["model"]["id"] = "org/" + EVIL
    (art / "build_info.json").write_text(json.dumps(data))
    assert read_manifest(art).model.id == "org/" + EVIL
    for args in (["info", str(art)], ["query", str(art), "--word", EVIL, "--top", "3"]):
        proc = cli(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout and "\u202e" not in proc.stdout
        assert "\\x1b]0;owned\\x07" in proc.stdout, proc.stdout


def variant(tiny_bert: Path, tmp_path: Path, **settings) -> Path:
    folder = Path(shutil.copytree(tiny_bert, tmp_path / "variant"))
    config = json.loads((folder / "config.json").read_text())
    config.update(settings)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("settings,named", [
    ({"is_decoder": True}, "is_decoder=True (causal attention)"),
    ({"add_cross_attention": True, "is_decoder": True}, "add_cross_attention=True"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type='relative_key'"),
])
def test_configs_that_change_attention_are_refused(tiny_bert: Path, tmp_path: Path, settings, named) -> None:
    from ft_artifacts.errors import ModelLoadError
    from ft_artifacts.model import load_model

    with pytest.raises(ModelLoadError) as error:
        load_model(str(variant(tiny_bert, tmp_path, **settings)))
    assert named in str(error.value) and "changes attention" in str(error.value) and "\n" not in str(error.value)


def test_the_decoder_config_really_computes_something_else(tiny_bert: Path, tmp_path: Path) -> None:
    """Why it is refused: the same weights as a decoder give another forward on [CLS] w [SEP]."""
    import torch
    from transformers import BertModel

    ids = torch.tensor([[2, 40, 3]])
    encoder = BertModel.from_pretrained(tiny_bert, attn_implementation="eager").eval()
    decoder = BertModel.from_pretrained(variant(tiny_bert, tmp_path, is_decoder=True), attn_implementation="eager").eval()
    with torch.no_grad():
        a, b = encoder(ids).last_hidden_state, decoder(ids).last_hidden_state
    assert (a - b).abs().max() > 0.1
