"""The environment every clone gets: each dependency and dev tool pinned in constraints.txt."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def test_every_dependency_and_dev_tool_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pins = _pins()
    problems = []
    for spec in wanted:
        req = Requirement(re.sub(r"\s*#.*", "", spec))
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name}: not in constraints.txt")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} outside pyproject's {req.specifier}")
    assert problems == []


def test_bootstrap_and_the_image_install_with_the_constraints() -> None:
    assert "-c constraints.txt" in (ROOT / "scripts" / "bootstrap").read_text()
    assert "-c constraints.txt" in (ROOT / "Dockerfile").read_text()


def test_no_formatter_escapes_without_a_reason() -> None:
    """``# fmt: skip`` / ``# fmt: off`` only with a comment on the same line saying why."""
    bare = re.compile(r"#\s*fmt:\s*(skip|off)\s*$")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("worker", "models", "emulator", "harness", "migrations", "scripts", "tests")
        for path in (ROOT / folder).rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if bare.search(line)
    ]
    assert found == []


def test_pytest_turns_warnings_into_errors() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["filterwarnings"][0] == "error"
