"""Shared fixtures. Each fixture module registers itself here, one line each."""

pytest_plugins = [
    "tests.fixtures.emulator",
    "tests.fixtures.services",
    "tests.fixtures.pipeline",
]
