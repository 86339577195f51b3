"""The package's layers, read from its import statements (every one, including imports inside
functions): contracts and shared modules (the lake, commits, the cycle lock, settings) at the
bottom, the three stages on them and never on each other, reconciliation and the whole-cycle
command above; development tools outside."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "lambdas" / "totes"
STAGES = {"extract", "transform", "load"}
ABOVE = {"check", "pipeline", "cli"}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _area(module: str) -> str:
    """``totes.extract.capture`` -> ``extract``; ``totes.lake`` -> ``lake``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


GRAPH = {_module(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_graph_was_read() -> None:
    assert "totes.extract.extractor" in GRAPH
    assert "totes.contracts.ingestion" in GRAPH["totes.extract.extractor"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_of_the_lambda_package_imports_the_dev_tools(module: str) -> None:
    assert not {i for i in GRAPH[module] if i.split(".")[0] == "totes_dev"}, module


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _area(m) in STAGES))
def test_a_stage_imports_no_other_stage_and_nothing_above(module: str) -> None:
    own = _area(module)
    reached = {_area(i) for i in GRAPH[module] if i.startswith("totes.")}
    assert reached & (STAGES - {own}) == set(), module
    assert reached & ABOVE == set(), module


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _area(m) not in STAGES | ABOVE))
def test_shared_modules_and_contracts_import_no_stage(module: str) -> None:
    reached = {_area(i) for i in GRAPH[module] if i.startswith("totes.")}
    assert reached & (STAGES | ABOVE) == set(), module
