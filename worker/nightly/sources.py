"""The transcript ids of one night: from AssemblyAI's transcript list API or from a file."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from typing import Protocol

from worker.errors import InputError
from worker.gateway.transcripts import TranscriptSummary
from worker.gateway.types import Region
from worker.nightly.config import AssemblyAISource, FileSource, Pipeline


class TranscriptListing(Protocol):
    """What a nightly run needs of ``TranscriptLister`` (tests pass fakes or the real one)."""

    def iter_transcripts(
        self, *, created_on: date | None, status: str | None = ..., region: Region = ...
    ) -> Iterator[TranscriptSummary]: ...


def transcript_ids(
    pipeline: Pipeline, run_date: date, lister: TranscriptListing, *, since: date
) -> list[str]:
    """The night's candidate ids, each once, in source order (newest day first for the list
    API). Which of them this pipeline has already taken is the database's to say
    (``runs._take``). Raises InputError or GatewayError.

    The list API is asked for ``run_date`` and the ``lookback_days`` before it, but never for a
    day before ``since`` (the pipeline's first night): a new pipeline starts with its own
    night, not with the days before it existed.
    """
    source = pipeline.source
    if isinstance(source, AssemblyAISource):
        back = range(source.lookback_days + 1)
        days = [day for day in (run_date - timedelta(days=n) for n in back) if day >= since]
        return _distinct(
            id_
            for day in days
            for id_ in _listed(lister, day, source.status, pipeline.source_region)
        )
    return _distinct(_read_ids(source, run_date))


def _listed(lister: TranscriptListing, day: date, status: str, region: Region) -> Iterator[str]:
    """The ids the API lists as created on ``day`` in ``status``, checked again here: pages
    can shift while we walk them, and a server that ignored a filter must not widen the night."""
    for item in lister.iter_transcripts(created_on=day, status=status, region=region):
        if item.status is not None and item.status != status:
            continue
        if item.created is not None and not item.created.startswith(day.isoformat()):
            continue
        yield item.id


def _read_ids(source: FileSource, run_date: date) -> list[str]:
    path = source.path_for(run_date.isoformat())
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no transcript id file for this night", source=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read transcript ids: {exc.strerror}", source=str(path)) from None
    except UnicodeDecodeError:
        raise InputError("transcript id file is not UTF-8 text", source=str(path)) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _distinct(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))
