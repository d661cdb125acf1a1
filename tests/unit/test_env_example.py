"""`.env.example` documents every setting and its defaults parse; settings read `.env`, and the
real environment wins over it (issue 13)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

import worker.settings as settings_module
from worker.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


def _documented() -> dict[str, str]:
    """NAME -> value of every ``NAME=value`` line of .env.example, commented out or not."""
    found = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if match := _LINE.match(line.strip()):
            found[match[1]] = match[2]
    return found


def _env_names(cls: type[BaseSettings]) -> list[str]:
    """The variable each field is read from: its first alias, else prefix + name."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names = []
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names.append(str(choices[0]) if choices else f"{prefix}{name}".upper())
    return names


def _settings_classes() -> list[type[BaseSettings]]:
    return [
        cls
        for _, cls in inspect.getmembers(settings_module, inspect.isclass)
        if issubclass(cls, BaseSettings) and cls is not BaseSettings
    ]


def test_every_setting_is_in_the_example() -> None:
    documented = _documented()
    classes = _settings_classes()
    assert Settings in classes
    missing = [name for cls in classes for name in _env_names(cls) if name not in documented]
    assert missing == []


def test_the_example_names_no_setting_that_does_not_exist() -> None:
    known = {name for cls in _settings_classes() for name in _env_names(cls)}
    assert set(_documented()) - known == set()


def test_the_examples_defaults_parse_to_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every line uncommented is a valid .env, and it changes nothing."""
    for name in _documented():
        monkeypatch.delenv(name, raising=False)
    env = tmp_path / ".env"
    env.write_text("\n".join(f"{k}={v}" for k, v in _documented().items()) + "\n")
    assert Settings(_env_file=env) == Settings(_env_file=None)


def test_dotenv_is_read_and_the_real_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("TBATCH_LEASE_S", "TBATCH_CANARY_CALLS", "ASSEMBLYAI_API_KEY", "TBATCH_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(
        "TBATCH_LEASE_S=33\nTBATCH_CANARY_CALLS=7\nASSEMBLYAI_API_KEY=from-dotenv\n"
    )
    monkeypatch.setenv("TBATCH_CANARY_CALLS", "2")
    settings = Settings()
    assert settings.lease_s == 33.0  # from ./.env
    assert settings.canary_calls == 2  # the environment wins
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "from-dotenv"
