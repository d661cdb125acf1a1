"""`tbatch estimate`: an enqueue's input validated exactly as enqueue validates it
(``enqueue.validate``), nothing stored, turned into the estimate ``worker.estimate`` computes.

The I/O lives here: the catalog of the batch's region, a sample of the transcripts' sizes from
the transcript API (``GET /v2/transcript/{id}``: its text's length, else ``audio_duration``),
the output sizes of earlier answers with the same schema and model and the latency of the
model's recent calls (Postgres), and the limits the send gate enforces now (a lower limit
learned from the gateway, from the shared limiter; an unreachable limiter is an assumption,
not an error: an estimate must not fail for want of Redis).
"""

from __future__ import annotations

import hashlib
import logging
import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.attempts import Attempt
from models.content import Schema
from models.jobs import Batch, Job
from models.vocabulary import AttemptOutcome
from worker import estimate as est
from worker.caching import CachePolicy, prefix_text
from worker.errors import GatewayError, LimiterUnavailable, NotFoundError, TranscriptNotFound
from worker.gateway.types import TRANSCRIPT_TAG, ModelInfo, Region
from worker.output import schema_hash
from worker.pricing import PricingConfig
from worker.prompts import compile_template, render_prompt
from worker.ratelimit.config import Limit, RateLimitConfig
from worker.services.enqueue import EnqueueRequest, validate
from worker.services.job_input import Catalog
from worker.services.requests import build_request
from worker.services.routes import fit_max_tokens
from worker.settings import Settings

log = logging.getLogger(__name__)

# A transcript whose size nothing tells: 8 minutes of speech at 150 words a minute and about
# 6 characters a word (with its space), the stated assumption.
CHARS_PER_AUDIO_S = 15.0
ASSUMED_TRANSCRIPT_CHARS = int(8 * 60 * CHARS_PER_AUDIO_S)
TOKENS_PER_MESSAGE = 3
MAX_SHAPES = 200
FETCH_THREADS = 8  # transcript API calls at once while sampling sizes
LATENCY_SAMPLE = 200  # recent calls whose 90th percentile latency a lane's estimate takes

LimitNow = Callable[[str, str], Limit | None]  # (model, region) -> the limit enforced now


class TranscriptSizes:
    """Characters per transcript from a sample of the transcript API (``get`` fetches one),
    fetched ``FETCH_THREADS`` at a time: a sample big enough to trust (call lengths vary
    about as much as their mean) must not take a minute."""

    def __init__(self, get: Callable[[str], Any] | None, sample: int) -> None:
        self._get = get
        self._sample = sample
        self.sizes: dict[str, int] = {}
        self.missing: set[str] = set()  # sampled and not found (deleted, never made)
        self.source = "assumed"
        self.of = 0  # distinct transcripts of the input

    def measure(self, transcript_ids: list[str]) -> None:
        self.of = len(transcript_ids)
        if self._get is None or self._sample <= 0 or not transcript_ids:
            return
        step = max(1, len(transcript_ids) // self._sample)
        chosen = transcript_ids[::step][: self._sample]
        with ThreadPoolExecutor(FETCH_THREADS) as pool:
            for start in range(0, len(chosen), FETCH_THREADS):
                ids = chosen[start : start + FETCH_THREADS]
                if not self._take(ids, pool.map(self._fetch, ids)):
                    break
        if self.sizes:
            self.source = f"transcript API, {len(self.sizes)} of {len(transcript_ids)} measured"

    def _fetch(self, transcript_id: str) -> Any:
        assert self._get is not None
        try:
            return self._get(transcript_id)
        except GatewayError as exc:
            return exc

    def _take(self, ids: list[str], found: Iterable[Any]) -> bool:
        """Keeps a round's sizes; False after a failure (no key, API down): the rest of the
        sample would fail as slowly. A transcript not found is that transcript's answer (its
        job will fail as ``transcript_not_found``), not the API's failure."""
        failed = None
        for tid, one in zip(ids, found, strict=True):
            if isinstance(one, TranscriptNotFound):
                self.missing.add(tid)
            elif isinstance(one, GatewayError):
                failed = one
            elif isinstance(one.text, str):
                self.sizes[tid] = len(one.text)
            elif isinstance(one.audio_duration, int | float):
                self.sizes[tid] = int(one.audio_duration * CHARS_PER_AUDIO_S)
        if failed is not None:
            log.warning("estimate.transcript_unavailable", extra={"error": str(failed)})
        return failed is None

    def chars(self, transcript_id: str) -> int:
        if transcript_id in self.sizes:
            return self.sizes[transcript_id]
        if self.sizes:
            return int(sum(self.sizes.values()) / len(self.sizes))
        return ASSUMED_TRANSCRIPT_CHARS

    def margin(self) -> float | None:
        """The sample mean's relative error at 95% (finite population: 0 when every
        transcript was measured), or None with fewer than two measured."""
        n, total = len(self.sizes), self.of
        if n < 2 or total < 1:
            return None
        mean = statistics.fmean(self.sizes.values())
        if n >= total or mean <= 0:
            return 0.0
        spread = statistics.stdev(self.sizes.values()) / mean / math.sqrt(n)
        return round(1.96 * spread * math.sqrt((total - n) / max(1, total - 1)), 4)

    def describe(self) -> str:
        missing = (
            f"; {len(self.missing)} of those sampled not found (their jobs will fail as "
            "transcript_not_found; priced here as if found)"
            if self.missing
            else ""
        )
        if not self.sizes:
            return (
                f"transcripts: {self.source} ({ASSUMED_TRANSCRIPT_CHARS} characters each)" + missing
            )
        mean = statistics.fmean(self.sizes.values())
        margin = self.margin()
        spread = "" if not margin else f", \u00b1{margin:.0%} at 95%"
        return f"transcripts: {self.source} (mean {mean:,.0f} characters{spread})" + missing


def learned_output_tokens(session: Session | None, schema: Any, model: str) -> int | None:
    """The average visible output of earlier answers with this schema and model (the last
    1,000), or None when there are none."""
    if session is None:
        return None
    recent = (
        select(Attempt.output_tokens, Attempt.reasoning_tokens)
        .join(Job, Job.id == Attempt.job_id)
        .join(Schema, Schema.id == Job.schema_id)
        .where(
            Schema.sha256 == schema_hash(schema),
            Attempt.model_answered == model,
            Attempt.outcome.in_([AttemptOutcome.OK, AttemptOutcome.REPAIRED]),
            Attempt.output_tokens.is_not(None),
        )
        .order_by(Attempt.id.desc())
        .limit(1000)
        .subquery()
    )
    visible = recent.c.output_tokens - func.coalesce(recent.c.reasoning_tokens, 0)
    average = session.scalar(select(func.avg(visible)))
    return None if average is None else round(float(average))


def learned_latency_s(session: Session | None, model: str) -> float | None:
    """The 90th percentile latency of the model's last ``LATENCY_SAMPLE`` answered calls (any
    batch: latency is the model's, not the schema's), or None when it has none. A high
    percentile, not the median: the two latencies a run adds to its windows are each the
    slowest of several calls (the canary's verdict waits for its slowest call; the batch ends
    with the slowest call of its last window)."""
    if session is None:
        return None
    rows = session.scalars(
        select(Attempt.latency_ms)
        .where(
            Attempt.model_answered == model,
            Attempt.outcome.in_([AttemptOutcome.OK, AttemptOutcome.REPAIRED]),
            Attempt.latency_ms.is_not(None),
        )
        .order_by(Attempt.id.desc())
        .limit(LATENCY_SAMPLE)
    ).all()
    values = [float(v) for v in rows if v is not None]
    if not values:
        return None
    p90 = statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]
    return p90 / 1000


def limits_now(
    models: Iterable[str], region: str, limit_now: LimitNow | None
) -> tuple[dict[str, Limit | None], str | None]:
    """The limit the send gate enforces now per model, and a note when it cannot be read."""
    if limit_now is None:
        return {}, None
    try:
        return {m: limit_now(m, region) for m in models}, None
    except LimiterUnavailable as exc:
        return {}, f"limits learned so far unknown ({exc}): the configured ones are used"


@dataclass(frozen=True)
class _Shape:
    fixed_tokens: int
    prefix_tokens: int
    prefix_key: str
    marked: bool
    max_tokens: int
    global_routing: bool
    global_available: bool


def _tokens(content: str) -> int:
    return math.ceil(len(content) / 4) + TOKENS_PER_MESSAGE


def _shape(
    req: EnqueueRequest,
    tpl: Any,
    row: Mapping[str, Any],
    catalog: Mapping[str, ModelInfo],
    settings: Settings,
) -> _Shape:
    info = catalog.get(row["model"])
    max_tokens = fit_max_tokens(row["max_tokens"] or settings.default_max_tokens, info)
    planned = build_request(
        template=tpl,
        variables=row["variables"],
        schema=req.schema,
        transcript_id="estimate",
        model=row["model"],
        fallbacks=row["fallbacks"],
        region=req.region,
        max_tokens=max_tokens,
        temperature=row["temperature"],
        model_region_global=req.model_region_global,
        catalog=catalog,
        reasoning=req.reasoning,
        caching=CachePolicy.build(settings.prompt_caching, settings.cache_min_tokens),
    )
    messages = [m.model_dump() for m in planned.request.messages]
    fixed = sum(
        _tokens(str(m.get("content") or "").replace(TRANSCRIPT_TAG, "", 1)) for m in messages
    )
    prefix = ""
    if planned.cache_marked:
        end = next(i for i, m in enumerate(messages) if m.get("cache_control"))
        prefix_tokens = sum(_tokens(str(m.get("content") or "")) for m in messages[: end + 1])
        prefix = "".join(str(m.get("content") or "") for m in messages[: end + 1])
    else:
        point = render_prompt(tpl, row["variables"] or {}).cache_point
        prefix = "" if point is None else prefix_text(messages, point)
        prefix_tokens = len(prefix) // 4
    regions = info.available_regions if info is not None else None
    return _Shape(
        fixed_tokens=fixed,
        prefix_tokens=prefix_tokens,
        prefix_key=hashlib.sha256(prefix.encode()).hexdigest(),
        marked=planned.cache_marked,
        max_tokens=max_tokens,
        global_routing=row["model"] in planned.global_models,
        global_available=req.region != "eu" and bool(regions and "global" in regions),
    )


class EstimateCollector:
    """Gathers an estimate row by row (``enqueue`` feeds it the rows it stores, ``estimate``
    the rows it validated) and computes it at ``finish``."""

    def __init__(
        self,
        req: EnqueueRequest,
        catalog: Catalog,
        *,
        settings: Settings,
        get_transcript: Callable[[str], Any] | None,
        today: date,
        sample: int = 200,
        latency_s: float | None = None,
        limit_now: LimitNow | None = None,
    ) -> None:
        """``latency_s`` None: each model's recent median (``learned_latency_s``), else
        ``estimate.DEFAULT_LATENCY_S``; ``limit_now``: the limiter's enforced limit."""
        self._req, self._settings = req, settings
        self._catalog = cast(Mapping[str, ModelInfo], catalog(cast(Region, req.region)))
        self._template = compile_template(req.template_text, source=req.template_source)
        self._sizes = TranscriptSizes(get_transcript, sample)
        self._today, self._latency_s, self._limit_now = today, latency_s, limit_now
        self._shapes: dict[str, _Shape] = {}
        self._jobs: list[tuple[str, str, str]] = []  # (shape key, model, transcript id)
        self._first: dict[str, str] = {}  # model -> its first shape's key

    def add(self, row: Mapping[str, Any]) -> None:
        """Each distinct request is rendered once; past ``MAX_SHAPES`` of them (variables per
        job) a job is taken to look like its model's first, so enqueue stays fast."""
        variables = sorted((row["variables"] or {}).items())
        model = row["model"]
        key = repr((model, row["fallbacks"], row["max_tokens"], row["temperature"], variables))
        if key not in self._shapes:
            if len(self._shapes) >= MAX_SHAPES and model in self._first:
                key = self._first[model]
            else:
                self._shapes[key] = _shape(
                    self._req, self._template, row, self._catalog, self._settings
                )
                self._first.setdefault(model, key)
        self._jobs.append((key, model, row["transcript_id"]))

    def finish(self, session: Session | None) -> dict[str, Any]:
        """The estimate; ``session`` reads earlier answers' sizes and latencies (None: the
        stated assumptions)."""
        req, settings, jobs, sizes = self._req, self._settings, self._jobs, self._sizes
        sizes.measure(list(dict.fromkeys(tid for _, _, tid in jobs)))
        groups: Counter[tuple[str, str, int]] = Counter(
            (key, model, sizes.chars(tid)) for key, model, tid in jobs
        )
        shaped = [
            est.JobShape(model=model, transcript_chars=chars, count=n, **self._shapes[key].__dict__)
            for (key, model, chars), n in groups.items()
        ]
        outputs: dict[str, tuple[int, str]] = {}
        for model in dict.fromkeys(model for _, model, _ in jobs):
            learned = learned_output_tokens(session, req.schema, model)
            outputs[model] = (
                (learned, "learned from earlier answers")
                if learned is not None
                else (est.schema_output_guess(req.schema), "guessed from the schema")
            )
        limits = RateLimitConfig.from_settings(settings)
        enforced, limiter_note = limits_now(outputs, req.region, self._limit_now)
        latency = {model: self._latency(model, session) for model in outputs}
        result = est.estimate(
            est.Inputs(
                shapes=shaped,
                catalog=self._catalog,
                limits={m: limits.limit_for(m, req.region) for m in outputs},
                output_tokens=outputs,
                reasoning=req.reasoning,
                on=self._today,
                margin_s=settings.send_margin_ms / 1000,
                latency=latency,
                learned_limits=enforced,
                concurrency=settings.worker_concurrency,
                prices=PricingConfig.build(settings.cache_rates, settings.region_surcharge),
            )
        )
        result["transcripts"] = {
            "source": sizes.source,
            "measured": len(sizes.sizes),
            "of": sizes.of,
            "size_margin": sizes.margin(),
            "not_found": len(sizes.missing),
        }
        result["assumptions"] = [
            "the primary model answers every job (no fallback, retry or re-ask)",
            sizes.describe(),
            "tokens: 4 characters each plus 3 per message",
            "latency per call: "
            + ", ".join(f"{m} {s:.2f} s ({source})" for m, (s, source) in latency.items())
            + "; the batch runs within the cache lifetime",
            *([limiter_note] if limiter_note else []),
        ]
        return result

    def _latency(self, model: str, session: Session | None) -> tuple[float, str]:
        if self._latency_s is not None:
            return self._latency_s, "given"
        learned = learned_latency_s(session, model)
        if learned is not None:
            return learned, "p90 of recent calls"
        return est.DEFAULT_LATENCY_S, "assumed"


def estimate_input(
    req: EnqueueRequest,
    lines: Iterable[str],
    catalog: Catalog,
    *,
    settings: Settings,
    get_transcript: Callable[[str], Any] | None,
    session: Session | None,
    sample: int = 200,
    latency_s: float | None = None,
    limit_now: LimitNow | None = None,
    today: date,
) -> dict[str, Any]:
    """The estimate of what enqueueing ``lines`` would run; InputError as enqueue would."""
    checked = validate(
        req, lines, catalog, default_max_tokens=settings.default_max_tokens, today=today
    )
    collector = EstimateCollector(
        req,
        catalog,
        settings=settings,
        get_transcript=get_transcript,
        today=today,
        sample=sample,
        latency_s=latency_s,
        limit_now=limit_now,
    )
    for row in checked.rows:
        collector.add(row)
    return collector.finish(session)


def keep_estimate(session: Session, batch_id: int, collector: EstimateCollector) -> None:
    """Store a new batch's estimate, after its jobs were committed (``enqueue``'s docstring
    says why); ``tbatch status`` compares it with the run once the batch is final."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFoundError(f"unknown batch {batch_id}")
    batch.estimate = collector.finish(session)
