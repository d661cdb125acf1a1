"""When will a batch end? Pure arithmetic over what is left and what each model may take.

The gateway's limits are the throughput (README, "Sizing a fleet"): a lane (model, region)
sends at most ``requests / window_s`` calls a second, and lanes run side by side. So a batch's
ETA is its slowest lane: the lane's remaining jobs, times the calls a job has needed so far
(retries, re-asks and 429s cost calls too), over the lane's limit. A lane without a limit runs
as fast as the batch has been finishing jobs (its observed throughput); with neither, the ETA
is unknown rather than guessed. A paused or cancelled batch has no ETA: nothing more of it is
released until someone acts.

The estimate is an upper bound on the rate, so a lower bound on the time: other batches on the
same model share its limit (the dispatcher is fair between batches), which only makes it later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Lane:
    """One (model, region) of a batch: its jobs not final yet and the calls it may send."""

    model: str
    region: str
    remaining: int
    limit: int | None  # requests per window; None: no limit enforced
    window_s: float | None

    @property
    def calls_per_s(self) -> float | None:
        if self.limit is None or not self.window_s:
            return None
        return self.limit / self.window_s


def calls_per_job(attempts: int, finished_jobs: int) -> float:
    """Calls a finished job has needed on average (at least one: a job not started yet will
    make its first call)."""
    if finished_jobs <= 0:
        return 1.0
    return max(1.0, attempts / finished_jobs)


def eta_s(
    lanes: Iterable[Lane],
    *,
    calls_per_job: float = 1.0,
    observed_jobs_per_s: float | None = None,
) -> float | None:
    """Seconds until the last lane is done, or None when a lane's rate is unknown."""
    slowest = 0.0
    for lane in lanes:
        if lane.remaining <= 0:
            continue
        rate = lane.calls_per_s
        if rate is not None:
            seconds = lane.remaining * calls_per_job / rate
        elif observed_jobs_per_s:
            seconds = lane.remaining / observed_jobs_per_s
        else:
            return None
        slowest = max(slowest, seconds)
    return round(slowest, 1)


def lanes_from(
    remaining: Mapping[tuple[str, str], int],
    limits: Mapping[tuple[str, str], tuple[int, float] | None],
) -> list[Lane]:
    """Lanes from the remaining jobs per (model, region) and each lane's (requests, window_s)."""
    lanes = []
    for (model, region), left in sorted(remaining.items()):
        limit = limits.get((model, region))
        lanes.append(
            Lane(
                model=model,
                region=region,
                remaining=left,
                limit=None if limit is None else limit[0],
                window_s=None if limit is None else limit[1],
            )
        )
    return lanes


def humanise_s(seconds: float | None) -> str:
    """``42s``, ``7m 05s``, ``3h 12m``, ``2d 4h``; an en dash for unknown."""
    if seconds is None:
        return "\N{EN DASH}"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"
