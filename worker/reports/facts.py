"""Job-level facts of a batch: statuses, failures by reason, re-asks, attempts, tokens and cost.

Pure accumulators fed by :mod:`worker.reports.collect` (jobs one by one, attempts already summed
per model by SQL), so the arithmetic is tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.vocabulary import ACTIVE_STATUSES, JobStatus

EXAMPLE_CHARS = 300
EXAMPLE_JOBS = 5


@dataclass
class _Reason:
    count: int = 0
    example: str | None = None
    job_ids: list[int] = field(default_factory=list)


@dataclass
class _Usage:
    attempts: int = 0
    http_429: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_attempts: int = 0
    cache_write_tokens: int = 0
    cache_saved_usd: float = 0.0


class JobFacts:
    """Counts per status, failures by ``error_kind``, repairs, re-asks, usage and cost."""

    def __init__(self) -> None:
        self.by_status: dict[str, int] = dict.fromkeys(JobStatus, 0)
        self.reasons: dict[str, _Reason] = {}
        self.results = 0
        self.repaired = 0
        self.reasks = 0
        self.jobs_with_reasks = 0
        self.transport_retries = 0
        self.usage: dict[str, _Usage] = {}
        self.outcomes: dict[str, int] = {}

    def add_job(
        self,
        *,
        job_id: int,
        status: str,
        error_kind: str | None = None,
        error_message: str | None = None,
        reasks: int = 0,
        transport_retries: int = 0,
        has_result: bool = False,
        repaired: bool = False,
    ) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1
        self.reasks += reasks
        self.jobs_with_reasks += reasks > 0
        self.transport_retries += transport_retries
        self.results += has_result
        self.repaired += has_result and repaired
        if status == JobStatus.FAILED:
            reason = self.reasons.setdefault(error_kind or "unknown", _Reason())
            reason.count += 1
            if reason.example is None and error_message:
                reason.example = error_message[:EXAMPLE_CHARS]
            if len(reason.job_ids) < EXAMPLE_JOBS:
                reason.job_ids.append(job_id)

    def add_usage(
        self,
        model: str,
        *,
        attempts: int,
        http_429: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_tokens: int = 0,
        cost_usd: float = 0.0,
        unpriced_attempts: int = 0,
        cache_write_tokens: int = 0,
        cache_saved_usd: float = 0.0,
    ) -> None:
        usage = self.usage.setdefault(model, _Usage())
        usage.attempts += attempts
        usage.http_429 += http_429
        usage.input_tokens += input_tokens
        usage.output_tokens += output_tokens
        usage.cached_tokens += cached_tokens
        usage.cost_usd += cost_usd
        usage.unpriced_attempts += unpriced_attempts
        usage.cache_write_tokens += cache_write_tokens
        usage.cache_saved_usd += cache_saved_usd

    def add_outcome(self, outcome: str, n: int) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n

    def finish(self) -> dict[str, Any]:
        return {
            "jobs": self._jobs(),
            "failures": self._failures(),
            "attempts": self._attempts(),
            "cost": self._cost(),
        }

    def _jobs(self) -> dict[str, Any]:
        total = sum(self.by_status.values())
        ok, failed = self.by_status[JobStatus.SUCCEEDED], self.by_status[JobStatus.FAILED]
        active = sum(self.by_status.get(s, 0) for s in ACTIVE_STATUSES)
        return {
            "total": total,
            "by_status": dict(self.by_status),
            "complete": total > 0 and active == 0,
            "active": active,
            "success_rate": _ratio(ok, ok + failed),
            "failure_rate": _ratio(failed, ok + failed),
            "results": self.results,
            "repaired": self.repaired,
            "repaired_rate": _ratio(self.repaired, self.results),
            "reasks": self.reasks,
            "jobs_with_reasks": self.jobs_with_reasks,
            "transport_retries": self.transport_retries,
        }

    def _failures(self) -> dict[str, Any]:
        total = sum(r.count for r in self.reasons.values())
        ranked = sorted(self.reasons.items(), key=lambda kv: (-kv[1].count, kv[0]))
        return {
            "total": total,
            "by_reason": [
                {
                    "reason": kind,
                    "count": r.count,
                    "share": _ratio(r.count, total),
                    "example": r.example,
                    "job_ids": r.job_ids,
                }
                for kind, r in ranked
            ],
        }

    def _attempts(self) -> dict[str, Any]:
        total = sum(u.attempts for u in self.usage.values())
        jobs = sum(self.by_status.values())
        return {
            "total": total,
            "per_job": _ratio(total, jobs),
            "by_outcome": dict(sorted(self.outcomes.items(), key=lambda kv: (-kv[1], kv[0]))),
            "http_429": sum(u.http_429 for u in self.usage.values()),
        }

    def _cost(self) -> dict[str, Any]:
        total_usd = sum(u.cost_usd for u in self.usage.values())
        jobs = sum(self.by_status.values())
        ok = self.by_status[JobStatus.SUCCEEDED]
        by_model = [
            {
                "model": model,
                "attempts": u.attempts,
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "cached_tokens": u.cached_tokens,
                "cost_usd": round(u.cost_usd, 6),
                "share": _ratio(u.cost_usd, total_usd),
                "unpriced_attempts": u.unpriced_attempts,
            }
            for model, u in sorted(self.usage.items(), key=lambda kv: (-kv[1].cost_usd, kv[0]))
        ]
        return {
            "total_usd": round(total_usd, 6),
            "per_job_usd": _ratio(total_usd, jobs, digits=8),
            "per_success_usd": _ratio(total_usd, ok, digits=8),
            "input_tokens": sum(u.input_tokens for u in self.usage.values()),
            "output_tokens": sum(u.output_tokens for u in self.usage.values()),
            "cached_tokens": sum(u.cached_tokens for u in self.usage.values()),
            "unpriced_attempts": sum(u.unpriced_attempts for u in self.usage.values()),
            "cache_write_tokens": sum(u.cache_write_tokens for u in self.usage.values()),
            "cache_saved_usd": round(sum(u.cache_saved_usd for u in self.usage.values()), 6),
            "by_model": by_model,
        }


def _ratio(part: float, whole: float, *, digits: int = 6) -> float | None:
    return round(part / whole, digits) if whole else None
