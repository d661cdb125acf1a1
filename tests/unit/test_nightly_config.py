"""The pipelines file: every error names the file, the pipeline and the field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest

from worker.errors import ConfigError
from worker.nightly.config import AssemblyAISource, FileSource, ReportKind, load_config
from worker.nightly.cron import parse_cron

GOOD = """
[[pipeline]]
name = "support-nightly"
schedule = "30 2 * * *"
source = { type = "assemblyai", status = "completed" }
template = "t.j2"
schema = "s.json"
model = "claude-sonnet-4-6"
fallbacks = ["gemini-2.5-flash"]
region = "us"
priority = 1
global_routing = true
max_tokens = 3000
"""


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "t.j2").write_text("[user]\n{{ transcript }}\n")
    (tmp_path / "s.json").write_text('{"type": "object"}')
    return tmp_path


def write(folder: Path, text: str, name: str = "pipelines.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def pipeline(**fields: Any) -> str:
    """One [[pipeline]] table: GOOD's values with ``fields`` replaced (None drops a key)."""
    values: dict[str, Any] = {
        "name": '"support-nightly"',
        "schedule": '"30 2 * * *"',
        "source": '{ type = "assemblyai" }',
        "template": '"t.j2"',
        "schema": '"s.json"',
        "model": '"claude-sonnet-4-6"',
    }
    values.update(fields)
    body = "\n".join(f"{k} = {v}" for k, v in values.items() if v is not None)
    return f"[[pipeline]]\n{body}\n"


def error_of(folder: Path, text: str) -> str:
    path = write(folder, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_good_config_loads_typed_with_paths_relative_to_the_file(folder: Path) -> None:
    config = load_config(write(folder, GOOD))
    p = config.get("support-nightly")
    assert isinstance(p.source, AssemblyAISource)
    assert p.template == (folder / "t.j2").resolve()
    assert p.schema_path == (folder / "s.json").resolve()
    assert (p.fallbacks, p.region, p.priority, p.global_routing, p.max_tokens) == (
        ("gemini-2.5-flash",),
        "us",
        1,
        True,
        3000,
    )
    assert p.source_region == "us"
    assert p.out_dir("2026-01-02") == (folder / "reports" / "support-nightly" / "2026-01-02")


def test_file_source_path_is_relative_to_the_config_and_takes_the_date(folder: Path) -> None:
    text = pipeline(source='{ type = "file", path = "ids/{date}.txt" }')
    p = load_config(write(folder, text)).get("support-nightly")
    assert isinstance(p.source, FileSource)
    assert p.source.path_for("2026-03-04") == folder / "ids" / "2026-03-04.txt"


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ('"30 2 * *"', "5 fields"),
        ('"61 2 * * *"', "minute: 61 is out of range 0-59"),
        ('"0 24 * * *"', "hour: 24 is out of range 0-23"),
        ('"0 2 * * funday"', "day of week: 'funday' is not a number or a name"),
        ('"*/0 2 * * *"', "minute: bad step"),
        ('"0 2 30 2 *"', "never matches a day"),
        ('"0 5-2 * * *"', "runs backwards"),
    ],
)
def test_bad_cron_names_file_pipeline_field(folder: Path, schedule: str, problem: str) -> None:
    message = error_of(folder, pipeline(schedule=schedule))
    assert message.startswith(f"{folder / 'pipelines.toml'}: pipeline 'support-nightly': ")
    assert "field 'schedule': " in message
    assert problem in message


def test_unknown_source_type(folder: Path) -> None:
    message = error_of(folder, pipeline(source='{ type = "ftp", host = "x" }'))
    assert "pipeline 'support-nightly': field 'source': " in message
    assert "'ftp'" in message and "'assemblyai'" in message and "'file'" in message


def test_file_source_without_path_names_the_nested_field(folder: Path) -> None:
    message = error_of(folder, pipeline(source='{ type = "file" }'))
    assert "pipeline 'support-nightly': field 'source.path': required" in message


def test_missing_template_file(folder: Path) -> None:
    message = error_of(folder, pipeline(template='"nope.j2"'))
    assert "pipeline 'support-nightly': field 'template': file not found: " in message
    assert str(folder / "nope.j2") in message


def test_missing_schema_file_is_reported_under_its_toml_key(folder: Path) -> None:
    message = error_of(folder, pipeline(schema='"missing.json"'))
    assert "field 'schema': file not found" in message


def test_more_than_two_fallbacks(folder: Path) -> None:
    message = error_of(folder, pipeline(fallbacks='["a", "b", "c"]'))
    assert "pipeline 'support-nightly': field 'fallbacks': " in message
    assert "at most 2" in message


def test_repeated_fallback(folder: Path) -> None:
    message = error_of(folder, pipeline(fallbacks='["a", "a"]'))
    assert "field 'fallbacks': fallbacks repeat a model" in message


def test_bad_region_value(folder: Path) -> None:
    message = error_of(folder, pipeline(region='"ap"'))
    assert "pipeline 'support-nightly': field 'region': Input should be 'us' or 'eu'" in message


def test_bad_source_region_names_the_nested_field(folder: Path) -> None:
    message = error_of(folder, pipeline(source='{ type = "assemblyai", region = "asia" }'))
    assert "field 'source.region': " in message


def test_duplicate_pipeline_names(folder: Path) -> None:
    message = error_of(folder, pipeline() + pipeline(model='"gpt-5"'))
    assert message == (
        f"{folder / 'pipelines.toml'}: pipeline 'support-nightly': field 'name': "
        "duplicate pipeline name"
    )


def test_missing_required_fields_and_unknown_keys(folder: Path) -> None:
    message = error_of(folder, pipeline(model=None, colour='"blue"'))
    assert "pipeline 'support-nightly': field 'model': required" in message
    assert "pipeline 'support-nightly': field 'colour': unknown key" in message


def test_a_pipeline_without_a_name_is_named_by_position(folder: Path) -> None:
    message = error_of(folder, pipeline() + pipeline(name=None))
    assert "pipeline #2: field 'name': required" in message


def test_bad_name_priority_and_max_tokens(folder: Path) -> None:
    message = error_of(folder, pipeline(name='"has spaces"', priority="9", max_tokens="0"))
    assert "pipeline 'has spaces': field 'name': String should match pattern" in message
    assert "field 'priority': Input should be less than or equal to 4" in message
    assert "field 'max_tokens': Input should be greater than or equal to 1" in message


def test_report_fields_are_checked(folder: Path) -> None:
    fields = '[{ path = "sentiment" }, { path = "topics", kind = "histogram" }]'
    message = error_of(folder, pipeline(report=f"{{ fields = {fields} }}"))
    assert "field 'report.fields.0.kind': required" in message
    assert "field 'report.fields.1.kind': Input should be 'enum', 'number'" in message


def test_report_kinds_are_the_report_builders_kinds() -> None:
    spec = pytest.importorskip("worker.reports.spec")
    assert set(get_args(ReportKind)) == set(spec.KINDS)


def test_every_problem_of_every_pipeline_is_reported_at_once(folder: Path) -> None:
    text = pipeline(schedule='"bad"') + pipeline(name='"other"', region='"mars"')
    lines = error_of(folder, text).splitlines()
    assert len(lines) == 2
    assert "pipeline 'support-nightly': field 'schedule'" in lines[0]
    assert "pipeline 'other': field 'region'" in lines[1]


def test_invalid_toml_names_the_file_and_line(folder: Path) -> None:
    message = error_of(folder, "[[pipeline]]\nname = \n")
    assert message.startswith(f"{folder / 'pipelines.toml'}: not valid TOML: ")
    assert "line 2" in message


def test_no_pipelines_and_unknown_top_level_keys(folder: Path) -> None:
    message = error_of(folder, "[pipelines]\nname = 'x'\n")
    assert "field 'pipelines': unknown key" in message
    assert "expected one or more [[pipeline]] tables" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pipelines\.toml: cannot read pipelines config"):
        load_config(tmp_path / "pipelines.toml")


def test_unknown_pipeline_lists_the_known_ones(folder: Path) -> None:
    config = load_config(write(folder, GOOD))
    with pytest.raises(ConfigError, match=r"no pipeline 'x' \(known: support-nightly\)"):
        config.get("x")


def test_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "pipelines.toml"
    config = load_config(example)
    assert set(config.pipelines) == {"support-nightly", "sales-eu-nightly"}
    assert config.get("sales-eu-nightly").region == "eu"


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("30 2 * * *", "2026-03-04T02:30", ["2026-03-05T02:30", "2026-03-06T02:30"]),
        ("30 2 * * *", "2026-03-04T02:29", ["2026-03-04T02:30", "2026-03-05T02:30"]),
        ("0 3 * * mon-fri", "2026-11-27T04:00", ["2026-11-30T03:00", "2026-12-01T03:00"]),
        ("*/20 1 * * *", "2026-01-01T00:00", ["2026-01-01T01:00", "2026-01-01T01:20"]),
        ("0 0 29 feb *", "2026-01-01T00:00", ["2028-02-29T00:00", "2032-02-29T00:00"]),
        ("0 6 * * 7", "2026-11-26T00:00", ["2026-11-29T06:00", "2026-12-06T06:00"]),
    ],
)
def test_cron_next_times(expression: str, after: str, expected: list[str]) -> None:
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    got = parse_cron(expression).next_times(start, count=2)
    assert [t.strftime("%Y-%m-%dT%H:%M") for t in got] == expected


def test_global_routing_is_refused_for_an_eu_pipeline(folder: Path) -> None:
    message = error_of(folder, pipeline(region='"eu"', global_routing="true"))
    assert "pipeline 'support-nightly'" in message and "cannot be used with region eu" in message
