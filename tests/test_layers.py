"""The package's layers read naturally: readers never import writers or torch, the core never imports the
builders, and no module imports another that (directly or not) imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"ft_artifacts": REPO / "ft_artifacts", "ft_artifacts.builders": REPO / "builders"}

# Reading an artifact: no torch, no transformers, no model, no writer.
READERS = {"errors", "files", "settings", "sources", "naming", "progress", "manifest", "rows", "schema", "index", "evaluation", "records",
           "card", "publish", "loader", "report", "report_markdown", "report_paper", "figures", "words",
           "hub", "terminal", "parquet_bounds", "safejson", "explore"}
TOP = {"commands", "session", "cli"}  # the only core modules that may reach the builders (session: commands' old name)


def modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            out[name] = path
    return out


def imports(name: str, path: Path) -> set[str]:
    """Every module this one imports, at any level (function bodies too), resolved to absolute names."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}  # `from . import loader`
    known = modules()
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    return {name: imports(name, path) for name, path in modules().items()}


def test_readers_import_no_writer_and_no_torch() -> None:
    for name, path in modules().items():
        short = name.removeprefix("ft_artifacts.")
        if short not in READERS:
            continue
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        external = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        external |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        assert not external & {"torch", "transformers"}, (name, external & {"torch", "transformers"})
        inner = {m.removeprefix("ft_artifacts.") for m in graph()[name]}
        assert inner <= READERS, (name, inner - READERS)


def test_the_core_never_imports_the_builders() -> None:
    for name, deps in graph().items():
        if name.startswith("ft_artifacts.builders") or name.removeprefix("ft_artifacts.") in TOP:
            continue
        assert not any(d.startswith("ft_artifacts.builders") for d in deps), name


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
