"""The transcript ids of one night: from AssemblyAI's transcript list API or from a file."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
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


def transcript_ids(pipeline: Pipeline, run_date: date, lister: TranscriptListing) -> list[str]:
    """The night's ids, each once, in source order. Raises InputError or GatewayError."""
    source = pipeline.source
    if isinstance(source, AssemblyAISource):
        return list(_listed(lister, run_date, source.status, pipeline.source_region))
    return _distinct(_read_ids(source, run_date))


def _listed(
    lister: TranscriptListing, run_date: date, status: str, region: Region
) -> Iterator[str]:
    seen: set[str] = set()
    for item in lister.iter_transcripts(created_on=run_date, status=status, region=region):
        # Pages can shift while we walk them (a new transcript pushes one to the next page).
        if item.id in seen or (item.status is not None and item.status != status):
            continue
        seen.add(item.id)
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
