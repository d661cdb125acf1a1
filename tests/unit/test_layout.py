"""The emulator is its own product: the worker never depends on it (only the CLI offers it).
Likewise the harness (worker processes, claims, waits) serves tests, benchmarks and the demo:
only the CLI's demo may import it, never the pipeline itself."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _importers_outside_the_cli(package: str) -> dict[str, list[str]]:
    """Modules of worker/ (the CLI aside) that import ``package``, with what they import."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _imports(path) if m.split(".")[0] == package)
        for path in (ROOT / "worker").rglob("*.py")
        if "cli" not in path.relative_to(ROOT / "worker").parts
    }
    return {p: m for p, m in offenders.items() if m}


def test_nothing_in_worker_but_the_cli_imports_the_emulator() -> None:
    assert _importers_outside_the_cli("emulator") == {}


def test_nothing_in_worker_but_the_cli_imports_the_harness() -> None:
    assert _importers_outside_the_cli("harness") == {}


def test_the_emulator_imports_nothing_of_tbatch() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in _imports(path) if m.split(".")[0] in {"worker", "models", "migrations"}
        )
        for path in (ROOT / "emulator").rglob("*.py")
    }
    assert {p: m for p, m in offenders.items() if m} == {}


def _module_graph(*packages: str) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports, lazy (function-level) imports too."""
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for package in packages
        for path in (ROOT / package).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import submodule` needs the submodule, not what pkg re-exports.
                subs = {f"{node.module}.{alias.name}" for alias in node.names} & modules.keys()
                found |= subs if len(subs) == len(node.names) else {node.module, *subs}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle, or [] (depth-first search with an explicit path)."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        for target in sorted(graph[node]):
            if found := visit(target, [*path, node]):
                return found
        done.add(node)
        return []

    for start in sorted(graph):
        if found := visit(start, []):
            return found
    return []


def test_no_import_cycle_in_worker_models_or_the_harness() -> None:
    assert _cycle(_module_graph("worker", "models", "harness")) == []


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
