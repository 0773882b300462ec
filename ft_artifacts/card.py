"""An artifact's facts in, its dataset card (README.md) out, through huggingface_hub's DatasetCard.

The YAML header is written by `DatasetCardData` (a YAML dumper, so any model name gives valid YAML),
its `configs` name each subset's exact data files (no globs, so plain `load_dataset` reads exactly
the built rows), and the body is the jinja2 template `cards/dataset_card.md` shipped as package data.
Strings that came from users (model ids, settings) are escaped where they land in markdown.
"""

from __future__ import annotations

import json
import re
from importlib import resources

from .errors import PublishError

CARD_TEMPLATE = "dataset_card.md"
LICENSE = "apache-2.0"
TAGS = ["interpretability", "feature-textualization", "activation-maximization", "bert"]
TASK_CATEGORIES = ["feature-extraction"]  # rows are vectors in a model's embedding space, with their nearest tokens
LANGUAGE = ["en"]
OPTIMIZED = ("neurons", "word_groups")  # the rows the method computes; size_categories counts these
# The paper as its text gives it (title and authors; the text states no year or venue, so none is cited).
CITATION = """@misc{baeumel-feature-textualization,
  title  = {Investigating the Encoding of Words in {BERT}'s Neurons using Feature Textualization},
  author = {Baeumel, Tanja and Vijayakumar, Soniya and van Genabith, Josef and Neumann, Guenter and Ostermann, Simon}
}"""
_GLOB = re.compile(r"[*?\[\]{}]")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def check_space_id(space_id: str) -> str:
    """A Space id as the Hub spells them (ORG/NAME), so that it is safe inside the card's markdown and URL."""
    if not isinstance(space_id, str) or not _HUB_ID.match(space_id) or ".." in space_id:
        raise PublishError(f"{space_id!r} is not a Space id; give it as ORG/NAME (letters, digits, '.', '_', '-')")
    return space_id


def size_category(rows: int) -> str:
    """The Hub's size_categories bucket for a dataset of `rows` rows in all."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                        (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")):
        if rows < limit:
            return name
    return "100M<n<1B"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def md_text(text: str) -> str:
    """`text` as one line of inline markdown that renders literally (emphasis, links, pipes escaped)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _one_line(text))


def md_cell(text: str) -> str:
    """`text` as the content of one markdown table cell: one line, pipes escaped."""
    return md_text(text)


def md_code(text: str) -> str:
    """`text` as an inline code span, whatever backticks it holds."""
    text = _one_line(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def py_str(text: str) -> str:
    """A Python string literal of `text` (double-quoted; JSON's escapes are Python's)."""
    return json.dumps(str(text), ensure_ascii=False)


def card_configs(configs: list[tuple[str, list[str], int, str]], default_config: str) -> list[dict]:
    """The card's `configs` metadata: every config with its exact data files, the default one marked."""
    names = [name for name, *_ in configs]
    if default_config not in names:
        raise ValueError(f"default config {default_config!r} is not one of {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"config names repeat: {names}")
    out = []
    for name, files, _rows, _description in configs:
        if not files:
            raise ValueError(f"config {name!r} lists no data files")
        for path in files:
            if path.startswith("/") or "\\" in path or ".." in path.split("/") or _GLOB.search(path):
                raise ValueError(f"config {name!r}: {path!r} is not an exact relative data file path")
        entry = {"config_name": name, "data_files": [{"split": "train", "path": list(files)}]}
        if name == default_config:
            entry["default"] = True
        out.append(entry)
    return out


def render_card(*, model_id: str, model_revision: str, package_version: str,
                configs: list[tuple[str, list[str], int, str]],
                default_config: str, settings: dict[str, str], results_markdown: str,
                num_layers: int, hidden_size: int, nonpositive_max: int,
                repo_id: str | None, example_neuron: str, example_group: tuple[str, str, int], example_word: str,
                space_id: str | None = None) -> str:
    """The dataset card (README.md text) of an artifact.

    `configs` holds (config name, exact data file paths, rows, description) per subset; `settings` the
    build settings table; `results_markdown` is inserted as markdown; `space_id` (ORG/NAME), when the
    explorer is published beside the dataset, is linked.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    pretty_name = f"Feature textualization of {model_id}"
    card_data = DatasetCardData(
        pretty_name=pretty_name,
        license=LICENSE,
        tags=list(TAGS),
        size_categories=[size_category(sum(int(rows) for name, _, rows, _ in configs if name in OPTIMIZED))],
        task_categories=list(TASK_CATEGORIES),
        language=list(LANGUAGE),
        configs=card_configs(configs, default_config),
    )
    word, selection, k = example_group
    template = resources.files("ft_artifacts.cards").joinpath(CARD_TEMPLATE)
    with resources.as_file(template) as template_path:
        card = DatasetCard.from_template(
            card_data,
            template_path=str(template_path),
            title=md_text(pretty_name),
            model_id=md_text(model_id),
            model_revision=md_code(model_revision),
            package_version=md_text(package_version or "unknown"),
            subsets=[(name, int(rows), md_cell(description)) for name, _, rows, description in configs],
            num_layers=int(num_layers),
            max_index=int(hidden_size) - 1,
            nonpositive_max=int(nonpositive_max),
            settings=[(md_cell(key), md_cell(value)) for key, value in settings.items()],
            results_markdown=results_markdown.strip(),
            repo_literal=py_str(repo_id or "ORG/NAME"),
            space_id=md_text(check_space_id(space_id)) if space_id else None,
            space_url=f"https://huggingface.co/spaces/{check_space_id(space_id)}" if space_id else None,
            neuron_literal=py_str(example_neuron),
            group_literal=f"({py_str(word)}, {py_str(selection)}, {int(k)})",
            word_literal=py_str(example_word),
            citation=CITATION,
        )
    return str(card)
