"""Everything a running emulator remembers: config, transcripts, limiter, fault counts, log.

One instance per app, touched only from the event loop thread, so no locks are needed: each
mutation runs between two awaits.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from emulator.config import EmulatorConfig
from emulator.world import transcripts
from emulator.world.faults import FaultCounter
from emulator.world.limits import FixedWindowLimiter
from emulator.world.prompt_cache import PromptCache

_LOG_SIZE = 200_000


@dataclass
class ModelStats:
    requests: int = 0
    answered: int = 0
    http_429: int = 0
    statuses: Counter[str] = field(default_factory=Counter)


@dataclass
class LogEntry:
    ts: float
    key: str
    model: str | None
    status: int
    request_id: str
    transcript_id: str | None
    models_tried: list[str] = field(default_factory=list)
    faults: list[str | None] = field(default_factory=list)
    model_answered: str | None = None
    # Per model of the chain (primary first, after overrides): the ``model_region`` it got.
    model_regions: list[str | None] = field(default_factory=list)
    cache_control: bool = False  # the request marked a prefix for caching
    prompt_cache_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "key": self.key,
            "model": self.model,
            "models_tried": self.models_tried,
            "model_answered": self.model_answered,
            "status": self.status,
            "request_id": self.request_id,
            "transcript_id": self.transcript_id,
            "fault": next((f for f in self.faults if f), None),
            "faults": self.faults,
            "model_regions": self.model_regions,
            "cache_control": self.cache_control,
            "prompt_cache_key": self.prompt_cache_key,
        }


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.initial = config
        self.config = config
        today = config.today or date.today()
        if config.transcripts_file is not None:
            self.store = transcripts.load_jsonl(config.transcripts_file, config.seed, today)
        else:
            self.store = transcripts.generate(
                config.seed, config.transcripts, today, config.transcript_days
            )
        self.limiter = FixedWindowLimiter()
        self.prompt_cache = PromptCache()
        self.fault_counts = FaultCounter()
        self.log: deque[LogEntry] = deque(maxlen=_LOG_SIZE)
        self.models: defaultdict[str, ModelStats] = defaultdict(ModelStats)
        self.statuses: Counter[str] = Counter()

    def reset(self, restore_config: bool = False) -> None:
        """Forget log, stats, windows and fault counts; optionally the runtime config too."""
        self.log.clear()
        self.models.clear()
        self.statuses.clear()
        self.limiter.clear()
        self.fault_counts.clear()
        self.prompt_cache = PromptCache()
        if restore_config:
            self.config = self.initial

    def set_config(self, config: EmulatorConfig, limits_changed: bool) -> None:
        self.config = config
        if limits_changed:
            self.limiter.clear()

    def record(self, entry: LogEntry) -> None:
        self.log.append(entry)
        self.statuses[str(entry.status)] += 1

    def stats(self) -> dict[str, Any]:
        models: dict[str, Any] = {}
        for model, counts in sorted(self.models.items()):
            limit = self.config.limit_for(model)
            sliding, fixed = self.limiter.max_for(model)
            models[model] = {
                "requests": counts.requests,
                "answered": counts.answered,
                "statuses": dict(counts.statuses),
                "http_429": counts.http_429,
                "max_in_any_window": sliding,
                "max_in_fixed_window": fixed,
                "limit": limit.limit if self.config.rate_limit_enabled else None,
                "window_s": limit.window_s,
            }
        return {
            "requests": sum(self.statuses.values()),
            "statuses": dict(self.statuses),
            "rate_limit_enabled": self.config.rate_limit_enabled,
            "models": models,
        }


def key_id(api_key: str) -> str:
    """A short, non-reversible name for an API key (the log never holds keys)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]
