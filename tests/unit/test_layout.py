"""The emulator is its own product: the worker never depends on it (only the CLI offers it)."""

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


def test_nothing_in_worker_but_the_cli_imports_the_emulator() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in _imports(path) if m.split(".")[0] == "emulator"
        )
        for path in (ROOT / "worker").rglob("*.py")
        if "cli" not in path.relative_to(ROOT / "worker").parts
    }
    assert {p: m for p, m in offenders.items() if m} == {}


def test_the_emulator_imports_nothing_of_tbatch() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in _imports(path) if m.split(".")[0] in {"worker", "models", "migrations"}
        )
        for path in (ROOT / "emulator").rglob("*.py")
    }
    assert {p: m for p, m in offenders.items() if m} == {}
