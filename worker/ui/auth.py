"""Who may read the view, and what every response tells the browser.

The view binds to 127.0.0.1 by default: only this machine's users reach it. Bound anywhere
else it needs ``TBATCH_UI_TOKEN``, and then every request must carry it, as
``Authorization: Bearer <token>`` (scripts, curl) or as the HttpOnly cookie that one visit to
``/?token=<token>`` sets (browsers: the page redirects to the same path without the token, so
it does not stay in the address bar or the history). Tokens are compared with
:func:`hmac.compare_digest`, in constant time.

Every response, refused ones included, carries a strict Content-Security-Policy (no script at
all, styles and images from this server only), ``nosniff`` and ``no-referrer``.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.errors import ConfigError

COOKIE = "tbatch_ui_token"
MIN_TOKEN_CHARS = 16
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: A nightly report page is self-contained (its own inline <style>); sandboxed, it runs nothing.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; sandbox"
)


def required_token(host: str, token: str | None) -> str | None:
    """The token requests must carry on ``host`` (None: none needed on a loopback host);
    ConfigError, one line, when a non-local bind has no usable token."""
    token = (token or "").strip() or None
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"TBATCH_UI_TOKEN is shorter than {MIN_TOKEN_CHARS} characters")
    if host in LOCAL_HOSTS:
        return token
    if token is None:
        raise ConfigError(
            f"tbatch ui --host {host} is reachable from other machines: set TBATCH_UI_TOKEN "
            "(every request must then carry it as a bearer token)"
        )
    return token


def token_matches(given: str | None, expected: str) -> bool:
    """Constant time whatever ``given`` is (empty, longer, not ASCII)."""
    return hmac.compare_digest((given or "").encode(), expected.encode())


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


def presented(scope: Scope) -> tuple[str | None, str | None]:
    """(the bearer token or cookie a request carries, a ``?token=`` it carries)."""
    headers = _headers(scope)
    auth = headers.get("authorization", "")
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    if bearer is None and "cookie" in headers:
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(headers["cookie"])
        if COOKIE in cookie:
            bearer = cookie[COOKIE].value
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    return bearer, query.get("token")


class Guard:
    """ASGI middleware: the token check (when one is required) and the security headers."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token is not None:
            bearer, in_query = presented(scope)
            if in_query is not None and token_matches(in_query, self.token):
                await _set_cookie(scope, send, self.token)
                return
            if not token_matches(bearer, self.token):
                await _plain(send, 401, "a valid token is required (Authorization: Bearer ...)")
                return
        await self.app(scope, receive, _secured(send, scope))


def _secured(send: Send, scope: Scope) -> Send:
    csp = REPORT_CSP if str(scope.get("path", "")).startswith("/reports/") else CSP

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (k, v)
                for k, v in message.get("headers", [])
                if k.lower() != b"content-security-policy"
            ]
            headers.extend(_security_headers(csp))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def _security_headers(csp: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"cache-control", b"no-store"),
    ]


async def _plain(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] = []) -> None:  # noqa: B006 (never mutated)
    body = (text + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *_security_headers(CSP),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _set_cookie(scope: Scope, send: Send, token: str) -> None:
    """Keep the token in an HttpOnly, SameSite=Strict cookie and drop it from the URL."""
    query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode()) if k != "token"]
    location = str(scope.get("path") or "/") + (f"?{urlencode(query)}" if query else "")
    cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
    if scope.get("scheme") == "https":
        cookie += "; Secure"
    await _plain(
        send,
        303,
        "token accepted",
        [(b"location", location.encode()), (b"set-cookie", cookie.encode())],
    )
