"""The dataset card is built with huggingface_hub's DatasetCard: valid YAML for any model name, configs
naming the exact data files (so plain `load_dataset` reads exactly the listed rows), and user strings
escaped where they land in markdown tables."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from ft_artifacts.card import card_configs, md_cell, md_code, render_card, size_category

NAMES = [
    'my model: v2 #1 "q"',
    "it's a 'model'",
    "first line\nsecond: line\r\nthird",
    "modèle-français",
    "模型/中文: 测试",
    "- [x] *not* a list | or a table ---",
    "{{ not_jinja }} {% raw %} $dollar ${x}",
    "`tick` ``double``",
    "...: &anchor *alias !tag %directive @at",
    " leading and trailing spaces ",
]

NEURON_FILES = ["data/neurons/train-00000-of-00002.parquet", "data/neurons/train-00001-of-00002.parquet"]


def _configs():
    return [
        ("neurons", NEURON_FILES, 5, "one sampled neuron and its optimized input"),
        ("word_groups", ["data/word_groups/train-00000-of-00001.parquet"], 2, "one group | with a pipe"),
        ("vocabulary", ["data/vocabulary/train-00000-of-00001.parquet"], 30, "one token\nand its vectors"),
    ]


def _card(model_id: str, **overrides) -> str:
    kwargs = dict(
        model_id=model_id, model_revision="sha256:" + "ab" * 32, package_version="0.1.0",
        configs=_configs(), default_config="neurons",
        settings={"model": f"{model_id} (rev | 1)", "optimizer: lr": "100", "group configs": "relative × k ∈ {10}"},
        results_markdown="| metric | value |\n|---|---|\n| top-1 | 40% |\n",
        num_layers=3, hidden_size=16, nonpositive_max=2, repo_id=None,
        example_neuron="L2.N7", example_group=("crowd", "relative", 10), example_word="crowd",
    )
    kwargs.update(overrides)
    return render_card(**kwargs)


def _expected_configs():
    return [
        {"config_name": "neurons", "data_files": [{"split": "train", "path": NEURON_FILES}], "default": True},
        {"config_name": "word_groups",
         "data_files": [{"split": "train", "path": ["data/word_groups/train-00000-of-00001.parquet"]}]},
        {"config_name": "vocabulary",
         "data_files": [{"split": "train", "path": ["data/vocabulary/train-00000-of-00001.parquet"]}]},
    ]


@pytest.mark.parametrize("model_id", NAMES)
def test_yaml_parses_back_for_any_model_name(model_id):
    text = _card(model_id)
    data = DatasetCard(text).data
    assert data.pretty_name == f"Feature textualization of {model_id}"
    assert data.license == "apache-2.0"
    assert "interpretability" in data.tags and data.size_categories == ["n<1K"]
    assert data.to_dict()["configs"] == _expected_configs()  # exact files, no globs
    assert "*" not in str(data.to_dict()["configs"])


@pytest.mark.parametrize("model_id", NAMES)
def test_user_strings_do_not_break_markdown_tables(model_id):
    body = DatasetCard(_card(model_id)).text
    # The settings table has exactly two cells per row, whatever the model name holds.
    settings = body.split("## Build settings", 1)[1].split("## Results", 1)[0]
    rows = [line for line in settings.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 3
    for row in rows:
        cells = [c for c in _split_cells(row)]
        assert len(cells) == 2, row
    subsets = body.split("## Subsets", 1)[1].split("Vectors:", 1)[0]
    rows = [line for line in subsets.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 3 and all(len(_split_cells(r)) == 3 for r in rows), rows
    # The title is one line.
    title = next(line for line in body.splitlines() if line.startswith("# "))
    assert title.startswith("# Feature textualization of")


def _split_cells(row: str) -> list[str]:
    """Cells of a markdown table row, honouring backslash-escaped pipes."""
    cells, current, escaped = [], "", False
    for ch in row.strip()[1:-1]:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            current += ch
            escaped = True
        elif ch == "|":
            cells.append(current)
            current = ""
        else:
            current += ch
    return cells + [current]


def test_card_keeps_the_sections_and_keyword_usage():
    text = _card("bert-base-uncased", repo_id="org/ft-bert")
    for section in ("## Subsets", "## Build settings", "## Results", "## Usage"):
        assert section in text
    assert "**bert-base-uncased**" in text and "`sha256:" in text and "ft-artifacts 0.1.0" in text
    assert "layer 1..3, index 0..15" in text and "(2 here)" in text
    assert "| `neurons` | 5 | one sampled neuron and its optimized input |" in text
    assert "| top-1 | 40% |" in text  # the results markdown goes in as it is
    assert 'load_dataset("org/ft-bert", "neurons", split="train")' in text
    assert 'ft_artifacts.load("org/ft-bert")' in text
    assert 'art.nearest_words(neuron="L2.N7", k=10)' in text
    assert 'art.nearest_words(group=("crowd", "relative", 10))' in text
    assert 'art.neurons_near(word="crowd", k=5)' in text
    assert "{{" not in text.replace("{{ not_jinja }}", "") and "{%" not in text
    assert 'load_dataset("ORG/NAME", "neurons"' in _card("x", repo_id=None)


def test_usage_snippet_literals_are_valid_python():
    import ast

    text = _card("m", example_neuron='L1.N0"); import os; ("', example_word='w"\\', repo_id="o/n")
    code = text.split("```python", 2)[2].split("```", 1)[0]
    tree = ast.parse(code)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "nearest_words"]
    assert calls[0].keywords[0].value.value == 'L1.N0"); import os; ("'
    assert not any(isinstance(n, ast.Import) and n.names[0].name == "os" for n in ast.walk(tree))


def test_markdown_helpers():
    assert md_cell("a | b\nc") == "a \\| b c"
    assert md_code("x`y") == "``x`y``" and md_code("`a") == "`` `a ``"
    assert size_category(999) == "n<1K" and size_category(1000) == "1K<n<10K" and size_category(57_000) == "10K<n<100K"


@pytest.mark.parametrize("files", [["data/neurons/train-*.parquet"], ["/abs/x.parquet"], ["data/../x.parquet"],
                                   ["data/neurons/train-[0].parquet"], []])
def test_configs_refuse_globs_and_paths_outside(files):
    with pytest.raises(ValueError):
        card_configs([("neurons", files, 1, "")], "neurons")


def test_default_config_must_exist():
    with pytest.raises(ValueError, match="default config"):
        card_configs([("neurons", ["data/neurons/a.parquet"], 1, "")], "vocabulary")


def _write_parquet(path, start: int, count: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"neuron": [f"L1.N{i}" for i in range(start, start + count)],
                             "activation": [float(i) for i in range(start, start + count)]}), path)


@pytest.mark.parametrize("model_id", ['my model: v2 #1 "q"', "模型\nmodèle"])
def test_plain_load_dataset_reads_exactly_the_listed_files(tmp_path, model_id):
    import datasets

    folder = tmp_path / "artifact"
    _write_parquet(folder / NEURON_FILES[0], 0, 3)
    _write_parquet(folder / NEURON_FILES[1], 3, 2)
    _write_parquet(folder / "data/neurons/train-x.parquet", 100, 7)  # an unlisted file a glob would pick up
    configs = [("neurons", NEURON_FILES, 5, "one neuron")]
    (folder / "README.md").write_text(_card(model_id, configs=configs), encoding="utf-8")
    ds = datasets.load_dataset(str(folder), "neurons", split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 5
    assert sorted(ds["neuron"]) == sorted(f"L1.N{i}" for i in range(5))
    # The default config is the neurons one too.
    assert datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "cache")).num_rows == 5
