"""Per-process resources: engine, sessions, gateway client, limiter.

Built lazily on first use in the process that uses them (after any fork: the pid is checked),
never at import. One ``Runtime`` per process, shared by its task threads. The gateway client
and the pipeline are imported when first built: ``tbatch status`` needs only sessions and the
limiter, and should not pay for httpx, Jinja2 and jsonschema at start.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.clock import DatabaseClock
from models.db import make_engine, make_session_factory
from worker.ratelimit.config import RateLimitConfig
from worker.ratelimit.limiter import GateTiming, ModelLimiter
from worker.ratelimit.memory_backend import MemoryBackend
from worker.settings import Settings, get_settings

if TYPE_CHECKING:
    from worker.gateway.client import GatewayClient
    from worker.services.pipeline import PipelineDeps


@dataclass
class Runtime:
    settings: Settings
    pid: int

    @cached_property
    def engine(self) -> Engine:
        pool = max(10, min(64, self.settings.worker_concurrency // 2))
        return make_engine(self.settings.database_url, pool_size=pool)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def clock(self) -> DatabaseClock:
        """The database's time: leases, queue ages and backoffs mean the same on every
        machine whatever their clocks say."""
        return DatabaseClock(self.sessions)

    @cached_property
    def gateway(self) -> GatewayClient:
        from worker.gateway.client import GatewayClient

        return GatewayClient(self.settings)

    @cached_property
    def limiter(self) -> ModelLimiter:
        return ModelLimiter(
            _limiter_backend(self.settings),
            RateLimitConfig.from_settings(self.settings),
            timing=GateTiming.from_settings(self.settings),
        )

    @cached_property
    def deps(self) -> PipelineDeps:
        from worker.services.pipeline import PipelineDeps

        return PipelineDeps(
            sessions=self.sessions,
            gateway=self.gateway,
            limiter=self.limiter,
            settings=self.settings,
            clock=self.clock,
        )

    def close(self) -> None:
        if "gateway" in self.__dict__:
            self.gateway.close()
        if "engine" in self.__dict__:
            self.engine.dispose()


def shared_limiter_url(settings: Settings) -> str:
    """The Redis URL of the shared limiter, or "" for the embedded in-memory one."""
    if settings.redis_url:
        return settings.redis_url
    return settings.broker_url if settings.broker_url.startswith(("redis://", "rediss://")) else ""


def _limiter_backend(settings: Settings) -> Any:
    url = shared_limiter_url(settings)
    if not url:
        return MemoryBackend()
    import redis

    from worker.ratelimit.redis_backend import RedisBackend

    return RedisBackend(redis.Redis.from_url(url))


_lock = threading.Lock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = Runtime(settings=get_settings(), pid=os.getpid())
        return _runtime


def reset_runtime() -> None:
    global _runtime
    with _lock:
        if _runtime is not None and _runtime.pid == os.getpid():
            _runtime.close()
        _runtime = None
