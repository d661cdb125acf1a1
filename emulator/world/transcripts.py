"""The transcript store: generated (lazily) from the seed, or loaded from a JSONL file.

Only id, status, created date and a few numbers are stored per generated transcript; its text is
rebuilt from ``(seed, id)`` when asked for and kept in a small LRU cache, so ``--transcripts
100000`` starts in well under a second.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from emulator.answers import calltext
from emulator.rng import seeded

STATUSES = ("queued", "processing", "completed", "error")
_TEXT_CACHE_SIZE = 256


@dataclass
class TranscriptMeta:
    id: str
    status: str
    created: datetime
    deleted: bool = False
    scenario: str = "support"
    minutes: int = 1
    speakers: int = 2
    text: str | None = None  # only for transcripts loaded from a file
    error: str | None = None

    @property
    def completed(self) -> datetime | None:
        if self.status != "completed":
            return None
        return self.created + timedelta(seconds=20 + self.minutes * 9)


@dataclass
class TranscriptStore:
    seed: int
    today: date
    items: dict[str, TranscriptMeta] = field(default_factory=dict)
    _texts: OrderedDict[str, list[calltext.Utterance]] = field(default_factory=OrderedDict)
    _order: list[TranscriptMeta] | None = None

    def add(self, meta: TranscriptMeta) -> None:
        self.items[meta.id] = meta
        self._order = None

    def get(self, transcript_id: str) -> TranscriptMeta | None:
        return self.items.get(transcript_id)

    def newest_first(self) -> list[TranscriptMeta]:
        """All transcripts, newest first (ties broken by id so paging is stable)."""
        if self._order is None:
            self._order = sorted(self.items.values(), key=lambda m: (m.created, m.id), reverse=True)
        return self._order

    def utterances(self, meta: TranscriptMeta) -> list[calltext.Utterance]:
        if meta.text is not None:
            return [calltext.Utterance("A", meta.text)]
        cached = self._texts.get(meta.id)
        if cached is None:
            rng = seeded(self.seed, "text", meta.id)
            cached = calltext.utterances(rng, meta.scenario, meta.minutes, meta.speakers)
            self._texts[meta.id] = cached
            if len(self._texts) > _TEXT_CACHE_SIZE:
                self._texts.popitem(last=False)
        else:
            self._texts.move_to_end(meta.id)
        return cached

    def text(self, meta: TranscriptMeta) -> str:
        if meta.text is not None:
            return meta.text
        return calltext.plain_text(self.utterances(meta))


def generate(seed: int, count: int, today: date, days: int) -> TranscriptStore:
    """``count`` synthetic transcripts created over the ``days`` days ending ``today``."""
    store = TranscriptStore(seed=seed, today=today)
    rng = seeded(seed, "transcripts")
    midnight = datetime.combine(today, time())
    for _ in range(count):
        tid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        roll = rng.random()
        status = "completed"
        if roll < 0.04:
            status = "error"
        elif roll < 0.07:
            status = "processing"
        elif roll < 0.08:
            status = "queued"
        created = (
            midnight
            - timedelta(days=rng.randrange(days))
            + timedelta(seconds=rng.uniform(7 * 3600, 21 * 3600))
        )
        minutes = max(1, min(60, round(rng.lognormvariate(1.9, 0.9))))
        store.add(
            TranscriptMeta(
                id=tid,
                status=status,
                created=created.replace(microsecond=created.microsecond // 1000 * 1000),
                deleted=status == "completed" and rng.random() < 0.02,
                scenario=rng.choice(calltext.SCENARIOS),
                minutes=minutes,
                speakers=3 if rng.random() < 0.2 else 2,
                error="Download error: unable to download audio" if status == "error" else None,
            )
        )
    return store


def load_jsonl(path: Path, seed: int, today: date) -> TranscriptStore:
    """Transcripts from JSONL lines ``{id, text, status, created, deleted?}``."""
    store = TranscriptStore(seed=seed, today=today)
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            meta = TranscriptMeta(
                id=str(row["id"]),
                status=str(row.get("status", "completed")),
                created=datetime.fromisoformat(str(row["created"]).replace("Z", "+00:00")),
                deleted=bool(row.get("deleted", False)),
                text=str(row.get("text") or ""),
                minutes=max(1, len(str(row.get("text") or "").split()) // 150),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}:{lineno}: bad transcript line: {exc}") from exc
        if meta.created.tzinfo is not None:
            meta.created = meta.created.replace(tzinfo=None)
        store.add(meta)
    return store
