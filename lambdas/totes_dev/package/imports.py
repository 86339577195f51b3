"""Which modules of a source tree a handler can reach, read from the import statements (pure).

Every import counts, including those inside functions (a lazy import still runs on some path),
except those under ``if TYPE_CHECKING:``, which never run. A function's code zip holds exactly
the modules its handler reaches, so a change to the load does not redeploy the extract.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModuleImports:
    path: Path
    eager: frozenset[str]  # imported when the module is imported
    lazy: frozenset[str] = field(default=frozenset())  # imported inside a function


def module_name(root: Path, path: Path) -> str:
    """``root/totes/load/loader.py`` -> ``totes.load.loader``; a package is its ``__init__``."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _named(node: ast.Import | ast.ImportFrom, package: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:  # relative: resolved against the importing module's package
        base = package.split(".")
        base = base[: len(base) - node.level + 1]
        module = ".".join([*base, node.module] if node.module else base)
    else:
        module = node.module or ""
    yield module
    # ``from package import name`` may name a submodule; unknown names are dropped later.
    yield from (f"{module}.{alias.name}" for alias in node.names if alias.name != "*")


def read_imports(root: Path, path: Path) -> ModuleImports:
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    eager: set[str] = set()
    lazy: set[str] = set()

    def visit(nodes: Iterable[ast.stmt], inside_function: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                (lazy if inside_function else eager).update(_named(node, package))
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse, inside_function)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(ast.iter_child_nodes(node), True)  # type: ignore[arg-type]
            else:
                visit(ast.iter_child_nodes(node), inside_function)  # type: ignore[arg-type]

    visit(ast.parse(path.read_text(encoding="utf-8")).body, False)
    return ModuleImports(path, frozenset(eager), frozenset(lazy))


def read_tree(root: Path, package: str) -> dict[str, ModuleImports]:
    """Every module of ``root/package`` by dotted name."""
    return {
        module_name(root, path): read_imports(root, path)
        for path in sorted((root / package).rglob("*.py"))
    }


def _parents(module: str) -> Iterator[str]:
    parts = module.split(".")
    for end in range(1, len(parts)):
        yield ".".join(parts[:end])


@dataclass(frozen=True)
class Reach:
    modules: frozenset[str]  # modules of the tree, with every package above them
    external_eager: frozenset[str]  # top-level names of other distributions imported on import
    external_lazy: frozenset[str]  # ... imported only inside functions


def reach(tree: dict[str, ModuleImports], roots: Iterable[str], stdlib: frozenset[str]) -> Reach:
    """What importing ``roots`` and calling anything in them can import, within ``tree`` and
    outside it (standard library modules aside)."""
    seen: set[str] = set()
    eager_out: set[str] = set()
    lazy_out: set[str] = set()
    pending = [(root, True) for root in roots]
    eager_seen: set[str] = set()
    while pending:
        module, eager = pending.pop()
        if module not in tree:
            top = module.split(".")[0]
            if top not in stdlib and top not in {m.split(".")[0] for m in tree}:
                (eager_out if eager else lazy_out).add(top)
            continue
        if module in seen and (not eager or module in eager_seen):
            continue
        seen.add(module)
        if eager:
            eager_seen.add(module)
        for parent in _parents(module):
            pending.append((parent, eager))
        found = tree[module]
        pending.extend((name, eager) for name in found.eager)
        pending.extend((name, False) for name in found.lazy)
    return Reach(frozenset(seen), frozenset(eager_out), frozenset(lazy_out - eager_out))
