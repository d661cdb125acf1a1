"""How far a batch is and when it will end: pure arithmetic over ``batch_status`` and the
limiter's per-model rows, so `tbatch status --watch`, `tbatch wait` (and a web page) agree.

The ETA is the later of two estimates, each of which can only be too early, never too late:

- the **limit floor**: a model's remaining jobs need at least ``remaining * window / limit``
  seconds of its lane (the limit learned from the gateway when it is lower, plus any pause
  left); lanes run side by side, so the batch needs the slowest lane's time;
- the **observed rate**: the remaining jobs at the batch's throughput so far (which counts
  other batches sharing the models, latencies and retries, which a limit does not know).

A batch with no limited lane and nothing finished yet has no ETA (None), and so has a paused
one (it does not move until ``tbatch resume``). Retries and re-asks are not counted in the
floor: a job is one call there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

Outcome = Literal["succeeded", "failed", "cancelled", "paused"]


def lane_floor_s(remaining: int, lane: Mapping[str, Any]) -> float | None:
    """Seconds the lane needs at least for ``remaining`` calls; None for an unlimited lane."""
    limit, window_s = lane.get("limit"), lane.get("window_s")
    if remaining <= 0:
        return 0.0
    if not limit or not window_s:
        return None
    learned = lane.get("learned_limit")
    if learned and learned < limit:
        limit = learned
    return remaining * float(window_s) / int(limit) + float(lane.get("paused_for_s") or 0.0)


def eta_s(status: Mapping[str, Any], lanes: Iterable[Mapping[str, Any]]) -> float | None:
    """Seconds until the batch is final, or None when nothing says (see the module's doc).
    ``status`` is ``batch_status``'s dict; ``lanes`` the limiter's rows (``model``, ``region``,
    ``limit``, ``window_s``, ``learned_limit``, ``paused_for_s``)."""
    left = int(status["total"]) - int(status["done"])
    if left <= 0:
        return 0.0
    if status.get("paused_reason"):
        return None
    by_lane = {(lane["model"], lane["region"]): lane for lane in lanes}
    floors = [
        lane_floor_s(int(row["jobs"]), by_lane[(row["model"], row["region"])])
        for row in status.get("remaining_by_lane", [])
        if (row["model"], row["region"]) in by_lane
    ]
    estimates = [f for f in floors if f is not None]
    rate = status.get("throughput_jobs_per_s")
    if rate:
        estimates.append(left / float(rate))
    return max(estimates) if estimates else None


def next_call_in_s(lane: Mapping[str, Any]) -> float | None:
    """When the lane may send again, where that can be known from its row: 0 for room in
    the window (or no limit), the pause left for a paused lane; None for a full window (the
    next slot opens when its oldest send leaves the window, which the row does not say)."""
    paused = float(lane.get("paused_for_s") or 0.0)
    if paused > 0:
        return paused
    limit, used = lane.get("limit"), lane.get("in_window")
    if not limit:
        return 0.0
    learned = lane.get("learned_limit")
    if learned and learned < limit:
        limit = learned
    if used is None:
        return None
    return 0.0 if int(used) + int(lane.get("reserved") or 0) < int(limit) else None


def batch_outcome(status: Mapping[str, Any]) -> Outcome | None:
    """What `tbatch wait` ends on, or None while the batch can still move by itself.

    Every job final: ``succeeded`` only if all succeeded, else ``failed`` (any failure) or
    ``cancelled``. A cancelled batch ends at once (calls still in flight finish and keep
    their results, but nothing more of it will run), and a paused one too: it does not move
    until someone runs ``tbatch resume``."""
    counts = status["counts"]
    if int(status["total"]) == int(status["done"]):
        if counts.get("failed"):
            return "failed"
        if counts.get("cancelled"):
            return "cancelled"
        return "succeeded"
    if status.get("cancelled"):
        return "cancelled"
    if status.get("paused_reason"):
        return "paused"
    return None


def with_progress(
    status: dict[str, Any], models: list[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    """``status`` with ``models`` (each row given its ``remaining`` jobs and
    ``next_call_in_s``), ``elapsed_s`` (from the batch's creation to now, or to its last
    finished job once final), ``eta_s`` and ``at`` (when it was read)."""
    left = {(r["model"], r["region"]): int(r["jobs"]) for r in status["remaining_by_lane"]}
    rows = [
        {**row, "remaining": left.get((row["model"], row["region"]), 0)}
        | {"next_call_in_s": next_call_in_s(row)}
        for row in models
    ]
    start = status.get("created_at") or status.get("first_created_at")
    end = (status.get("last_finished_at") or now) if status["final"] else now
    elapsed = None if start is None else max(0.0, (end - start).total_seconds())
    return {
        **status,
        "models": rows,
        "elapsed_s": None if elapsed is None else round(elapsed, 3),
        "eta_s": None if (eta := eta_s(status, models)) is None else round(eta, 3),
        "at": now,
    }
