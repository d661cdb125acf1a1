"""The estimate `tbatch enqueue` keeps on a new batch (its own module: `worker.cli.jobs` uses
it, and `worker.cli.estimate` builds on `worker.cli.jobs`)."""

from __future__ import annotations

from typing import Any, cast

from worker.gateway.types import Region


def transcript_lister(settings: Any) -> Any:
    """A transcript API client, or None without a key (sizes are then assumed)."""
    from worker.gateway.transcripts import TranscriptLister

    return TranscriptLister(settings) if settings.api_key is not None else None


def enqueue_estimator(req: Any) -> Any:
    """The estimate ``tbatch enqueue`` keeps on a new batch (a sample of 50 transcripts)."""
    from models.base import utcnow
    from worker.runtime import get_runtime
    from worker.services.estimating import EstimateCollector

    runtime = get_runtime()
    lister = transcript_lister(runtime.settings)
    region = cast(Region, req.region)
    return EstimateCollector(
        req,
        lambda r: runtime.gateway.list_models(cast(Region, r)),
        settings=runtime.settings,
        get_transcript=None
        if lister is None
        else (lambda t: lister.get_transcript(t, region=region)),
        today=utcnow().date(),
        sample=50,
    )
