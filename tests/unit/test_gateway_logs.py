"""worker.logs: JSON lines with extra fields, text format, and the redaction filter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from worker.logs import configure_logging

SECRET = "sk-logs-test-secret-987654321"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


@pytest.mark.usefixtures("restore_root")
def test_json_lines_include_extra_fields() -> None:
    out = io.StringIO()
    configure_logging("info", "json", secrets=[SECRET], stream=out)
    logging.getLogger("tbatch.test").info(
        "gateway.call", extra={"event": "gateway.call", "job_id": 5, "usage": {"in": 1}}
    )
    logging.getLogger("tbatch.test").debug("hidden")
    (line,) = _lines(out)
    data = json.loads(line)
    assert data["msg"] == "gateway.call" and data["level"] == "INFO"
    assert data["logger"] == "tbatch.test" and data["ts"].endswith("+00:00")
    assert (data["event"], data["job_id"], data["usage"]) == ("gateway.call", 5, {"in": 1})


@pytest.mark.usefixtures("restore_root")
def test_configure_twice_keeps_one_handler() -> None:
    out1, out2 = io.StringIO(), io.StringIO()
    configure_logging("INFO", "json", secrets=[], stream=out1)
    configure_logging("INFO", "text", secrets=[], stream=out2)
    logging.getLogger("tbatch.test").warning("once", extra={"job_id": 3})
    assert _lines(out1) == []
    (line,) = _lines(out2)
    assert "WARNING tbatch.test once job_id=3" in line


@pytest.mark.usefixtures("restore_root")
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_redaction_everywhere(fmt: str) -> None:
    out = io.StringIO()
    configure_logging("DEBUG", fmt, secrets=[SECRET], stream=out)  # type: ignore[arg-type]
    log = logging.getLogger("tbatch.test")
    log.info("key is %s", SECRET, extra={"header": SECRET, "nested": {"a": [SECRET]}})
    try:
        raise ValueError(f"boom {SECRET}")
    except ValueError:
        log.exception("failed")
    text = out.getvalue()
    assert SECRET not in text
    assert text.count("[REDACTED]") >= 4


@pytest.mark.usefixtures("restore_root")
def test_redaction_defaults_to_settings_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.settings import reset_settings

    monkeypatch.setenv("ASSEMBLYAI_API_KEY", SECRET)
    reset_settings()
    try:
        out = io.StringIO()
        configure_logging("INFO", "json", stream=out)
        logging.getLogger("tbatch.test").info(f"oops {SECRET}")
        assert SECRET not in out.getvalue() and "[REDACTED]" in out.getvalue()
    finally:
        monkeypatch.delenv("ASSEMBLYAI_API_KEY")
        reset_settings()
