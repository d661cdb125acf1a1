"""The pooled HTTP base both API clients build on (the gateway's and the transcript list's):
one ``httpx.Client`` with tbatch's timeouts and pool limits, owned and closed by its client.

The key is read here, once, from the settings' ``SecretStr``: it goes into an ``Authorization``
header and nowhere else.
"""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Self

import httpx

from worker.errors import AuthFailed
from worker.settings import Settings


def require_api_key(settings: Settings) -> str:
    key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
    if not key:
        raise AuthFailed("ASSEMBLYAI_API_KEY is not set")
    return key


def make_http_client(
    settings: Settings,
    transport: httpx.BaseTransport | None,
    *,
    max_connections: int | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Client:
    timeout = httpx.Timeout(
        connect=settings.gateway_connect_timeout_s,
        read=settings.gateway_read_timeout_s,
        write=settings.gateway_write_timeout_s,
        pool=settings.gateway_pool_timeout_s,
    )
    connections = max_connections or settings.gateway_max_connections
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.Client(timeout=timeout, limits=limits, transport=transport, verify=verify)


class PooledHttp:
    """One pooled ``httpx.Client`` owned by an API client; closed with it (a context manager)."""

    _http: httpx.Client

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
