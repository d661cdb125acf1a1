"""Report arithmetic without a database: specs from schemas, field aggregation on a known set of
results, job facts, trends, CSV rows, and bounded memory over 200,000 results."""

from __future__ import annotations

import csv
import io
import json
import random
import statistics
from pathlib import Path

import pytest

from tests.fixtures.reports import EVIL_TOPIC, result_data
from worker.reports import Aggregator, FieldSpec, JobFacts, compare, fields_from_schema
from worker.reports.aggregate import ITEM_CAPACITY
from worker.reports.csvout import write_csv
from worker.reports.stats import RESERVOIR_SIZE, NumberSummary, TopCounter

CALL_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "worker/assets/call_analytics.schema.json").read_text()
)


def kinds(specs: list[FieldSpec]) -> list[tuple[str, str]]:
    return [(s.path, s.kind) for s in specs]


# --- specs from schemas ------------------------------------------------------------------------


def test_call_analytics_schema_gives_one_spec_per_useful_field() -> None:
    specs = fields_from_schema(CALL_SCHEMA)
    assert kinds(specs) == [
        ("sentiment", "enum"),
        ("sentiment_score", "number"),
        ("topics", "array_items"),
        ("resolution", "enum"),
        ("action_items", "count"),
        ("action_items[].owner", "enum"),
        ("compliance_flags.identity_verified", "boolean"),
        ("compliance_flags.recording_disclosed", "boolean"),
        ("compliance_flags.pii_shared", "boolean"),
    ]  # summary, task and due are free strings: skipped
    by_path = {s.path: s for s in specs}
    assert by_path["sentiment"].values == ("positive", "neutral", "negative", "mixed")
    assert (by_path["sentiment_score"].minimum, by_path["sentiment_score"].maximum) == (-1, 1)
    assert (by_path["action_items"].minimum, by_path["action_items"].maximum) == (0, 8)
    assert by_path["action_items[].owner"].values == ("agent", "customer", "team")
    assert [s.title for s in specs[:5]] == [
        "Sentiment",
        "Sentiment score",
        "Top topics",
        "Resolution",
        "Action items per call",
    ]


def test_refs_defs_nullable_unions_and_nested_arrays_of_objects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "call": {"$ref": "#/$defs/call"},
            "score": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 5}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"$ref": "#/definitions/tag"}},
            "legs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "channel": {"enum": ["phone", "chat", None]},
                        "holds": {
                            "type": "array",
                            "items": {
                                "allOf": [{"$ref": "#/$defs/hold"}],
                                "properties": {"note": {"type": "string"}},
                            },
                        },
                    },
                },
            },
            "flag": {"const": True},
            "level": {"enum": [1, 2, 3]},
            "loop": {"$ref": "#"},  # recursive: must stop, not hang
            "notes": {"type": "string"},
        },
        "$defs": {
            "call": {"type": "object", "properties": {"mood": {"$ref": "#/$defs/mood"}}},
            "mood": {"type": "string", "enum": ["calm", "angry"]},
            "hold": {"type": "object", "properties": {"seconds": {"type": ["number", "null"]}}},
        },
        "definitions": {"tag": {"type": "string"}},
    }
    specs = {s.path: s for s in fields_from_schema(schema)}
    assert specs["call.mood"].kind == "enum" and specs["call.mood"].values == ("calm", "angry")
    assert specs["score"].kind == "number" and specs["score"].integer
    assert (specs["score"].minimum, specs["score"].maximum) == (1, 5)
    assert specs["tags"].kind == "array_items"
    assert specs["legs"].kind == "count"
    assert specs["legs[].channel"].values == ("phone", "chat")
    assert specs["legs[].holds"].kind == "count"
    assert specs["legs[].holds[].seconds"].kind == "number"
    assert specs["flag"].kind == "boolean"
    assert specs["level"].values == ("1", "2", "3")
    assert "notes" not in specs
    assert "loop.call.mood" in specs  # followed a few levels, then stopped
    assert max(s.path.count(".") for s in specs.values()) <= 13


@pytest.mark.parametrize("schema", [True, False, {}, {"type": "string"}, [], None])
def test_schemas_without_aggregatable_fields_give_no_specs(schema: object) -> None:
    assert fields_from_schema(schema) == []


def test_root_array_schema_and_explicit_spec_checks() -> None:
    specs = fields_from_schema(
        {"type": "array", "items": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}
    )
    assert kinds(specs) == [("", "count"), ("[].ok", "boolean")]
    with pytest.raises(ValueError, match="unknown field kind"):
        FieldSpec("x", "median")  # type: ignore[arg-type]


# --- aggregation on a known set of results ---------------------------------------------------


@pytest.fixture(scope="module")
def known() -> dict[str, dict]:  # type: ignore[type-arg]
    aggregator = Aggregator(fields_from_schema(CALL_SCHEMA))
    for i in range(16):
        aggregator.add(result_data(i))
    out = aggregator.finish()
    assert out["results"] == 16
    return out["fields"]  # type: ignore[no-any-return]


def test_enum_counts_and_shares_in_schema_order(known: dict) -> None:  # type: ignore[type-arg]
    sentiment = known["sentiment"]
    assert sentiment["counts"] == {"positive": 6, "neutral": 4, "negative": 5, "mixed": 1}
    assert sentiment["shares"]["negative"] == pytest.approx(5 / 16)
    assert known["resolution"]["counts"] == {
        "resolved": 9,
        "unresolved": 3,
        "escalated": 3,
        "follow_up": 1,
    }
    owner = known["action_items[].owner"]
    assert owner["counts"] == {"agent": 15, "customer": 0, "team": 0}
    assert (owner["n"], owner["present"], owner["missing"]) == (15, 10, 6)


def test_number_mean_percentiles_and_bounded_histogram(known: dict) -> None:  # type: ignore[type-arg]
    score = known["sentiment_score"]
    values = [result_data(i)["sentiment_score"] for i in range(16)]
    assert score["n"] == 16
    assert score["mean"] == pytest.approx(0.140625)
    assert score["stdev"] == pytest.approx(statistics.pstdev(values), abs=1e-6)
    assert (score["min"], score["max"]) == (-0.5, 0.75)
    assert score["percentiles"]["p50"] == 0.0
    assert score["percentiles"]["p90"] == 0.75
    assert score["histogram"]["edges"] == pytest.approx([-1 + 0.2 * k for k in range(11)])
    assert score["histogram"]["counts"] == [0, 0, 5, 0, 0, 4, 1, 0, 6, 0]
    assert score["histogram"]["estimated"] is False


def test_top_items_count_once_per_call_ignoring_case_and_spaces(known: dict) -> None:  # type: ignore[type-arg]
    topics = known["topics"]
    assert [(t["item"], t["count"]) for t in topics["top"]] == [
        ("billing", 12),
        ("Refund", 6),
        (EVIL_TOPIC, 1),
        ("late delivery", 1),
    ]
    assert topics["top"][0]["share"] == 0.75
    assert (topics["n"], topics["items"], topics["distinct"]) == (16, 27, 4)
    assert topics["mean_items"] == pytest.approx(27 / 16)


def test_array_length_counts_and_booleans(known: dict) -> None:  # type: ignore[type-arg]
    items = known["action_items"]
    assert (items["n"], items["total"], items["mean"]) == (16, 15, 0.9375)
    assert items["histogram"]["edges"] == list(range(10))  # 0..8 items, one bin each
    assert items["histogram"]["counts"] == [6, 5, 5, 0, 0, 0, 0, 0, 0]
    assert known["compliance_flags.identity_verified"]["counts"] == {"true": 12, "false": 4}
    assert known["compliance_flags.pii_shared"]["shares"]["true"] == 0.125


def test_missing_and_ill_typed_values_are_not_counted() -> None:
    specs = [FieldSpec("a.b", "number"), FieldSpec("flag", "boolean"), FieldSpec("tags", "count")]
    aggregator = Aggregator(specs)
    data: object
    for data in ({"a": {"b": 2}}, {"a": {"b": "2"}}, {"a": None}, {"flag": 1}, [], None):
        aggregator.add(data)
    fields = aggregator.finish()["fields"]
    assert (fields["a.b"]["n"], fields["a.b"]["present"], fields["a.b"]["missing"]) == (1, 2, 4)
    assert fields["flag"]["counts"] == {"true": 0, "false": 0}
    assert fields["tags"]["n"] == 0 and fields["tags"]["mean"] is None


def test_explicit_specs_pick_fields_and_limits() -> None:
    aggregator = Aggregator(
        [FieldSpec("topics", "array_items", top=1), FieldSpec("topics", "count")]
    )
    for i in range(16):
        aggregator.add(result_data(i))
    fields = aggregator.finish()["fields"]
    assert [t["item"] for t in fields["topics"]["top"]] == ["billing"]
    assert fields["topics:count"]["total"] == 27


def test_enum_values_outside_the_schema_are_shown_then_grouped_as_other() -> None:
    aggregator = Aggregator([FieldSpec("s", "enum", values=("a", "b"), top=1)])
    for value in ["a", "x", "x", "y", 3]:
        aggregator.add({"s": value})
    field = aggregator.finish()["fields"]["s"]
    assert field["counts"] == {"a": 1, "b": 0, "x": 2}
    assert field["other"] == 2


# --- numbers at scale --------------------------------------------------------------------------


def test_percentiles_from_the_reservoir_are_close_and_the_histogram_exact() -> None:
    rng = random.Random(7)
    values = [rng.random() for _ in range(100_000)]
    summary = NumberSummary(bins=10, minimum=0, maximum=1)
    for v in values:
        summary.add(v)
    out = summary.finish()
    ordered = sorted(values)
    assert out["mean"] == pytest.approx(statistics.fmean(values), abs=1e-6)
    for q in (10, 25, 50, 75, 90):
        assert out["percentiles"][f"p{q}"] == pytest.approx(ordered[q * 1000], abs=0.03)
    assert out["percentiles_exact"] is False
    expected = [0] * 10
    for v in values:
        expected[min(int(v * 10), 9)] += 1
    assert out["histogram"]["counts"] == expected


def test_unbounded_numbers_get_nice_bins_scaled_from_the_sample() -> None:
    small = NumberSummary(bins=5)
    for v in [1, 2, 2, 3, 10]:
        small.add(v)
    hist = small.finish()["histogram"]
    assert hist["edges"] == [0, 2, 4, 6, 8, 10]
    assert hist["counts"] == [1, 3, 0, 0, 1]
    assert hist["estimated"] is False

    big = NumberSummary(bins=10)
    for i in range(50_000):
        big.add(float(i % 100))
    hist = big.finish()["histogram"]
    assert hist["estimated"] is True
    assert sum(hist["counts"]) == 50_000
    assert all(abs(c - 5000) < 600 for c in hist["counts"])


def test_memory_stays_bounded_over_200k_results() -> None:
    aggregator = Aggregator(fields_from_schema(CALL_SCHEMA))
    for i in range(200_000):
        data = result_data(i % 16)
        data["topics"] = ["billing", f"unique topic {i}"]  # endless distinct free text
        data["sentiment_score"] = (i % 2001) / 1000 - 1
        aggregator.add(data)
    internals = {key: field for key, _, _, field in aggregator._fields}
    topics = internals["topics"].counter  # type: ignore[attr-defined]
    assert len(topics.counts) <= 2 * ITEM_CAPACITY
    assert len(topics.labels) <= len(topics.counts)
    assert len(internals["sentiment_score"].summary.sample) == RESERVOIR_SIZE  # type: ignore[attr-defined]
    fields = aggregator.finish()["fields"]
    assert fields["topics"]["top"][0] == {"item": "billing", "count": 200_000, "share": 1.0}
    assert fields["topics"]["approximate"] is True and fields["topics"]["distinct"] is None
    assert fields["sentiment_score"]["n"] == 200_000
    assert sum(fields["sentiment_score"]["histogram"]["counts"]) == 200_000
    assert fields["sentiment"]["counts"]["positive"] == 200_000 // 16 * 6


def test_top_counter_keeps_the_most_frequent_keys_when_it_prunes() -> None:
    counter = TopCounter(10, seed_keys=("zero",))
    for i in range(1000):
        counter.add("hot")
        counter.add(f"cold {i}")
    assert len(counter.counts) <= 20
    assert counter.most_common(1) == [("hot", 1000)]
    assert counter.counts["zero"] == 0  # seeded keys survive pruning


# --- job facts, trends, CSV ----------------------------------------------------------------------


def _facts() -> dict:  # type: ignore[type-arg]
    facts = JobFacts()
    for job_id in range(1, 9):
        facts.add_job(
            job_id=job_id,
            status="succeeded",
            has_result=True,
            repaired=job_id == 1,
            reasks=2 if job_id == 2 else 0,
        )
    for job_id, kind in [(20, "timeout"), (21, "timeout"), (22, "bad_request"), (23, None)]:
        facts.add_job(job_id=job_id, status="failed", error_kind=kind, error_message="x" * 999)
    facts.add_job(job_id=30, status="pending")
    facts.add_usage(
        "m1", attempts=10, http_429=2, input_tokens=1000, output_tokens=100, cost_usd=0.25
    )
    facts.add_usage(
        "m2", attempts=3, input_tokens=50, output_tokens=5, cost_usd=0.05, unpriced_attempts=1
    )
    facts.add_outcome("ok", 8)
    return facts.finish()


def test_job_facts_rates_failures_and_cost() -> None:
    out = _facts()
    jobs = out["jobs"]
    assert (jobs["total"], jobs["active"], jobs["complete"]) == (13, 1, False)
    assert jobs["success_rate"] == pytest.approx(8 / 12)
    assert (jobs["repaired"], jobs["reasks"], jobs["jobs_with_reasks"]) == (1, 2, 1)
    reasons = out["failures"]["by_reason"]
    assert [(r["reason"], r["count"]) for r in reasons] == [
        ("timeout", 2),
        ("bad_request", 1),
        ("unknown", 1),
    ]
    assert reasons[0]["job_ids"] == [20, 21] and len(reasons[0]["example"]) == 300
    assert out["attempts"]["total"] == 13 and out["attempts"]["http_429"] == 2
    cost = out["cost"]
    assert cost["total_usd"] == pytest.approx(0.30)
    assert cost["per_job_usd"] == pytest.approx(0.30 / 13)
    assert cost["per_success_usd"] == pytest.approx(0.30 / 8)
    assert (cost["input_tokens"], cost["output_tokens"]) == (1050, 105)
    assert cost["unpriced_attempts"] == 1
    assert [m["model"] for m in cost["by_model"]] == ["m1", "m2"]
    assert cost["by_model"][0]["share"] == pytest.approx(0.25 / 0.30)


def _report(night: str, success: float, negative: float, cost: float, mean: float | None) -> dict:  # type: ignore[type-arg]
    fields: dict = {  # type: ignore[type-arg]
        "sentiment": {
            "kind": "enum",
            "title": "Sentiment",
            "shares": {"positive": 1 - negative, "negative": negative},
        },
    }
    if mean is not None:
        fields["score"] = {"kind": "number", "title": "Score", "mean": mean}
    return {
        "batch": {"id": 1, "created_at": f"{night}T02:00:00+00:00"},
        "jobs": {"total": 100, "success_rate": success, "repaired_rate": 0.0},
        "cost": {"total_usd": cost, "per_job_usd": cost / 100},
        "fields": fields,
    }


def test_trends_compare_with_the_last_night_and_keep_the_series_in_date_order() -> None:
    current = _report("2026-11-25", 0.95, 0.30, 2.0, 0.1)
    previous = [  # given out of order on purpose
        _report("2026-11-24", 0.90, 0.20, 1.5, None),  # the score field did not exist yet
        _report("2026-11-23", 0.80, 0.10, 1.0, None),
    ]
    trends = compare(current, previous)
    assert trends["nights"] == ["2026-11-23", "2026-11-24", "2026-11-25"]
    success = trends["metrics"]["jobs.success_rate"]
    assert success["series"] == [0.80, 0.90, 0.95]
    assert success["delta"] == pytest.approx(0.05) and success["unit"] == "rate"
    assert success["mean_previous"] == pytest.approx(0.85)
    negative = trends["metrics"]["share:sentiment=negative"]
    assert negative["delta"] == pytest.approx(0.10) and negative["label"] == "Sentiment: negative"
    cost = trends["metrics"]["cost.total_usd"]
    assert cost["delta_pct"] == pytest.approx(2.0 / 1.5 - 1)
    score = trends["metrics"]["mean:score"]
    assert score["previous"] is None and score["delta"] is None and score["current"] == 0.1


def test_csv_has_one_row_per_metric_and_defuses_formulas() -> None:
    aggregator = Aggregator([FieldSpec("topics", "array_items")])
    aggregator.add({"topics": ['=HYPERLINK("x")', "billing"]})
    report = {
        "batch": {"id": 3, "name": "=cmd|' /C calc'!A0"},
        "generated_at": "now",
        **_facts(),
        **aggregator.finish(),
        "trends": None,
    }
    out = io.StringIO()
    write_csv(report, out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["section", "field", "key", "value"]
    assert ["batch", "", "name", "'=cmd|' /C calc'!A0"] in rows
    assert ["jobs", "status", "succeeded", "8"] in rows
    assert ["failures", "timeout", "count", "2"] in rows
    assert ["cost_by_model", "m1", "cost_usd", "0.25"] in rows
    assert ["fields", "topics", "top:billing", "1"] in rows
    assert all(len(row) == 4 for row in rows)
