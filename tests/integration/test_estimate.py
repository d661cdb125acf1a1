"""`tbatch estimate` against the run it predicts, over real sockets: the emulator plays the
gateway and the transcript API, Postgres keeps the earlier answers the estimate learns output
sizes from; the estimate's tokens and cost are compared with what the run recorded."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from emulator.routes.server import EmulatorProcess
from models.jobs import Batch
from tests.fixtures.emulator import API_KEY
from tests.fixtures.gateway_runs import client_settings
from tests.integration.test_spend import SCHEMA, _run
from worker.errors import LimiterUnavailable
from worker.gateway import GatewayClient
from worker.gateway.transcripts import TranscriptLister
from worker.ratelimit.config import Limit
from worker.services.enqueue import EnqueueRequest
from worker.services.estimating import EstimateCollector, estimate_input
from worker.services.queries import batch_status
from worker.settings import Settings

RUBRIC = "Judge whether the agent resolved the issue and say why, in one line. " * 300
TEMPLATE = f"[system]\n{RUBRIC}\n[user]\nThe call:\n{{{{ transcript }}}}"
FIELDS = ("jobs", "wall_clock_s", "input_tokens", "output_tokens", "cost_usd")


@pytest.fixture()
def world(
    gateway: EmulatorProcess, fresh_sessions: sessionmaker[Session]
) -> Iterator[tuple[EmulatorProcess, sessionmaker[Session], GatewayClient]]:
    with GatewayClient(client_settings(gateway.url)) as client:
        yield gateway, fresh_sessions, client


def _ids(gateway: EmulatorProcess) -> list[str]:
    return [
        t["id"] for t in gateway.transcripts() if t["status"] == "completed" and not t["deleted"]
    ]


def _settings_for(gateway: EmulatorProcess) -> Settings:
    return client_settings(gateway.url).model_copy(
        update={"transcript_api_url": gateway.url, "default_rate_limit": "60/6s"}
    )


REQ = EnqueueRequest(
    transcripts_source="ids.txt",
    template_text=TEMPLATE,
    template_source="t.j2",
    schema=SCHEMA,
    schema_source="s.json",
    model="claude-sonnet-4-6",
)


def _estimate(
    gateway: EmulatorProcess,
    sessions: sessionmaker[Session],
    ids: list[str],
    latency_s: float | None = 0.0,
    limit_now: Any = None,
) -> dict[str, Any]:
    settings, req = _settings_for(gateway), REQ
    with GatewayClient(settings) as client, TranscriptLister(settings) as lister, sessions() as s:
        return estimate_input(
            req,
            ids,
            client.list_models,  # type: ignore[arg-type]
            settings=settings,
            get_transcript=lister.get_transcript,
            session=s,
            latency_s=latency_s,
            limit_now=limit_now,
            today=date(2026, 12, 7),
        )


def test_an_estimate_matches_the_run_it_predicts_within_ten_percent(world) -> None:
    gateway, sessions, _ = world
    ids = _ids(gateway)
    # An earlier batch with the same schema and model: the estimate learns answer sizes there.
    _run_ids(world, ids[:6])
    gateway.reset()  # a cold cache, as for a new batch
    target = ids[6:14]
    predicted = _estimate(gateway, sessions, target)
    with sessions() as s:
        batches_before = s.scalar(select(func.count()).select_from(Batch))
    assert predicted["jobs"] == 8 and predicted["transcripts"]["measured"] == 8
    assert predicted["by_model"][0]["output_source"] == "learned from earlier answers"
    assert set(FIELDS) <= set(predicted) and set(FIELDS) | {"model"} <= set(
        predicted["by_model"][0]
    )
    # 8 calls at 60 per 6 s fit in one window: no wait.
    assert predicted["wall_clock_s"] == 0
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Batch)) == batches_before  # stored nothing

    # Enqueued for real, the batch keeps the same estimate; once final, status shows both.
    settings = _settings_for(gateway)
    with GatewayClient(settings) as client, TranscriptLister(settings) as lister, sessions() as s:
        collector = EstimateCollector(
            REQ,
            client.list_models,  # type: ignore[arg-type]
            settings=settings,
            get_transcript=lister.get_transcript,
            today=date(2026, 12, 7),
            latency_s=0.0,
        )
        batch, attempts = _run(world, TEMPLATE, target, estimator=collector)
    with sessions() as s:
        status = batch_status(s, batch)
    estimate = status["estimate"]
    assert estimate["estimated"]["cost_usd"] == predicted["cost_usd"]
    assert estimate["actual"]["cost_usd"] == pytest.approx(status["cost_usd"])
    assert estimate["actual"]["input_tokens"] == status["input_tokens"]
    actual_cost = sum(a.cost_usd or 0 for a in attempts)
    actual_in = sum(a.input_tokens or 0 for a in attempts)
    actual_out = sum(a.output_tokens or 0 for a in attempts)
    assert len(attempts) == 8
    assert predicted["input_tokens"] == pytest.approx(actual_in, rel=0.10)
    assert predicted["output_tokens"] == pytest.approx(actual_out, rel=0.25)
    assert predicted["cost_usd"] == pytest.approx(actual_cost, rel=0.10)
    assert predicted["cached_tokens"] == sum(a.cached_tokens or 0 for a in attempts)
    assert predicted["cache_write_tokens"] == sum(a.cache_write_tokens or 0 for a in attempts)
    assert predicted["cache_saved_usd"] > 0
    # Claude lists "global": routing would take the surcharge off.
    assert predicted["global_would_save_usd"] == pytest.approx(actual_cost / 11, rel=0.15)


def _run_ids(world: Any, ids: list[str]) -> tuple[int, list[Any]]:
    return _run(world, TEMPLATE, ids)


def test_time_takes_the_models_recent_latency_and_the_limit_enforced_now(world) -> None:
    gateway, sessions, _ = world
    ids = _ids(gateway)
    _, attempts = _run_ids(world, ids[:5])
    latencies = sorted(a.latency_ms for a in attempts if a.latency_ms is not None)
    assert len(latencies) == 5

    def learned(model: str, region: str) -> Limit:
        assert (model, region) == ("claude-sonnet-4-6", "us")
        return Limit(6, 6.0)  # the gateway answered with a tenth of the configured 60/6s

    out = _estimate(gateway, sessions, ids[:61], latency_s=None, limit_now=learned)
    (lane,) = out["by_model"]
    assert lane["latency_source"] == "p90 of recent calls"
    assert lane["latency_s"] == pytest.approx(statistics.quantiles(latencies, n=10)[-1] / 1000)
    assert lane["latency_s"] >= latencies[2] / 1000  # at least the median
    assert (lane["limit"], lane["learned_limit"]) == ("60/6s", "6/6s")
    margin_s = _settings_for(gateway).send_margin_ms / 1000
    assert out["wall_clock_s"] == round(6.0 + margin_s + 2 * lane["latency_s"], 1)
    assert out["wall_clock_learned_s"] == round(10 * (6.0 + margin_s) + 2 * lane["latency_s"], 1)

    def down(model: str, region: str) -> Limit:
        raise LimiterUnavailable("rate-limit store: ConnectionError: refused")

    blind = _estimate(gateway, sessions, ids[:61], limit_now=down)
    assert blind["wall_clock_learned_s"] == blind["wall_clock_s"]
    assert any("limits learned so far unknown" in a for a in blind["assumptions"])


def test_estimate_json_and_enqueue_dry_run_over_the_cli(
    gateway: EmulatorProcess, database_url: str, tmp_path: Path
) -> None:
    ids = _ids(gateway)[:3]
    files = {"ids.txt": "\n".join(ids), "t.j2": TEMPLATE, "s.json": json.dumps(SCHEMA)}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TBATCH_")}
    env |= {
        "TBATCH_DATABASE_URL": database_url,
        "ASSEMBLYAI_API_KEY": API_KEY,
        "TBATCH_GATEWAY_URL": f"{gateway.url}/v1",
        "TBATCH_TRANSCRIPT_API_URL": gateway.url,
    }
    args = ["--transcripts", str(tmp_path / "ids.txt"), "--template", str(tmp_path / "t.j2")]
    args += ["--schema", str(tmp_path / "s.json")]
    outs = []
    for command in (["estimate"], ["enqueue", "--dry-run"]):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "worker",
                *command,
                *args,
                "--model",
                "claude-sonnet-4-6",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads(proc.stdout))
    for out in outs:
        assert out["jobs"] == 3 and out["cost_usd"] > 0
        assert [m["model"] for m in out["by_model"]] == ["claude-sonnet-4-6"]
        assert out["by_model"][0]["output_source"] == "guessed from the schema"
    assert outs[0]["input_tokens"] == outs[1]["input_tokens"]
    bad = subprocess.run(
        [sys.executable, "-m", "worker", "estimate", *args, "--model", "no-such-model"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "unknown model 'no-such-model'" in bad.stderr
