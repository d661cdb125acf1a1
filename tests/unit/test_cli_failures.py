"""Environment problems become one line naming what failed, and never a credential."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from pydantic import BaseModel, ValidationError
from sqlalchemy import exc as sa_exc

from worker.cli.failures import describe, strip_credentials
from worker.settings import Settings, reset_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql+psycopg://alice:s3cret@db:5432/x", "postgresql+psycopg://db:5432/x"),
        ("redis://:s3cret@cache:6379/0", "redis://cache:6379/0"),
        ("redis://default:p%40ss@cache/1 and http://u@h/", "redis://cache/1 and http://h/"),
        ("host=db password='a b' user=x", "host=db password=*** user=x"),
        ("host=db password=s3cret", "host=db password=***"),
        ("sqlite:///tbatch.sqlite3", "sqlite:///tbatch.sqlite3"),
        ("no url here", "no url here"),
    ],
)
def test_strip_credentials(text: str, expected: str) -> None:
    assert strip_credentials(text) == expected


@pytest.fixture()
def database_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = "postgresql+psycopg://alice:s3cret@127.0.0.1:1/tbatch"
    monkeypatch.setenv("TBATCH_DATABASE_URL", url)
    monkeypatch.setenv("TBATCH_REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
    reset_settings()
    yield url
    reset_settings()


def test_an_unreachable_database_is_named_without_its_password(database_url: str) -> None:
    orig = Exception('connection failed: connection to server at "127.0.0.1", port 1 failed\nIs')
    line = describe(sa_exc.OperationalError("SELECT 1", {}, orig))
    assert line == (
        "database unreachable (postgresql+psycopg://127.0.0.1:1/tbatch): connection failed: "
        'connection to server at "127.0.0.1", port 1 failed'
    )


def test_a_missing_schema_says_to_migrate(database_url: str) -> None:
    orig = Exception('relation "jobs" does not exist')
    line = describe(sa_exc.ProgrammingError("SELECT", {}, orig)) or ""
    assert "run `tbatch migrate`" in line and "s3cret" not in line


def test_an_unreachable_redis_is_named_without_its_password(database_url: str) -> None:
    line = describe(redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Refused."))
    assert line == (
        "Redis unreachable (redis://127.0.0.1:1/0): Error 111 connecting to 127.0.0.1:1. Refused."
    )


def test_bad_settings_name_each_variable_not_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TBATCH_LEASE_S", "soon")
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "sk-abc def")
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    line = describe(info.value) or ""
    assert line.startswith("invalid settings: ")
    assert "TBATCH_LEASE_S: Input should be a valid number" in line
    assert "ASSEMBLYAI_API_KEY: Value error, ASSEMBLYAI_API_KEY contains whitespace" in line
    assert "soon" not in line and "sk-abc" not in line


def test_anything_else_is_not_an_environment_problem() -> None:
    assert describe(KeyError("x")) is None
    assert describe(ValueError("bug")) is None

    class Answer(BaseModel):
        score: int

    with pytest.raises(ValidationError) as info:
        Answer.model_validate({"score": "high"})
    assert describe(info.value) is None  # not a setting: keeps its traceback
