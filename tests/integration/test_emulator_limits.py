"""Per (key, model) fixed windows over HTTP: headers, 429 + Retry-After, stats."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from emulator.routes.server import EmulatorProcess

#: One shared client: a new httpx client per call costs ~40 ms (it builds an SSL context).
HTTP = httpx.Client(timeout=10)

MODEL = "claude-sonnet-4-6"


def chat(url: str, model: str = MODEL, key: str = "key-a") -> httpx.Response:
    body = {"model": model, "prompt": "Ping."}
    return HTTP.post(
        f"{url}/v1/chat/completions", json=body, headers={"Authorization": key}, timeout=10
    )


def limit(gateway: EmulatorProcess, **update: Any) -> None:
    gateway.configure({"rate_limit_enabled": True, **update})


def test_headers_count_down_then_429(gateway: EmulatorProcess) -> None:
    limit(gateway, rate_limit=3, window_s=30)
    remaining = []
    for _ in range(3):
        response = chat(gateway.url)
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == "3"
        assert response.headers["x-ratelimit-model"] == MODEL
        assert response.headers["x-ratelimit-service"] == "llmgw"
        assert 0 < int(response.headers["x-ratelimit-reset"]) <= 30
        remaining.append(response.headers["x-ratelimit-remaining"])
    assert remaining == ["2", "1", "0"]
    limited = chat(gateway.url)
    assert limited.status_code == 429
    body = limited.json()
    assert set(body) == {"code", "message", "request_id"}
    assert (body["code"], body["message"]) == (429, "too many requests for this action")
    assert limited.headers["x-ratelimit-remaining"] == "-1"
    assert 0 < int(limited.headers["retry-after"]) <= 30


def test_windows_are_per_model_and_per_key(gateway: EmulatorProcess) -> None:
    limit(gateway, rate_limit=30, model_limits={MODEL: "1/30"})
    assert chat(gateway.url).status_code == 200
    assert chat(gateway.url).status_code == 429
    assert chat(gateway.url, key="key-b").status_code == 200
    other = chat(gateway.url, model="gpt-5")
    assert other.status_code == 200
    assert other.headers["x-ratelimit-limit"] == "30"


def test_window_reopens_after_window_s(gateway: EmulatorProcess) -> None:
    limit(gateway, rate_limit=2, window_s=0.5)
    assert [chat(gateway.url).status_code for _ in range(3)] == [200, 200, 429]
    deadline = time.monotonic() + 5
    while chat(gateway.url).status_code == 429:
        assert time.monotonic() < deadline, "window never reopened"
    stats = gateway.stats()["models"][MODEL]
    assert stats["limit"] == 2 and stats["window_s"] == 0.5
    assert stats["max_in_fixed_window"] >= 3
    assert stats["http_429"] == stats["statuses"]["429"] >= 1


def test_stats_count_what_the_gateway_saw(gateway: EmulatorProcess) -> None:
    limit(gateway, rate_limit=100, window_s=60)
    for _ in range(5):
        chat(gateway.url)
    chat(gateway.url, key="key-b")
    stats = gateway.stats()
    model = stats["models"][MODEL]
    assert model["requests"] == 6
    assert model["max_in_any_window"] == 5  # per key: key-a sent 5
    assert model["statuses"] == {"200": 6}
    assert stats["statuses"] == {"200": 6}
    log = gateway.requests()
    assert len(log) == 6 and all(e["status"] == 200 for e in log)
    assert log[0]["ts"] <= log[-1]["ts"]
    gateway.reset()
    assert gateway.stats()["models"] == {}
    assert gateway.requests() == []


def test_no_headers_without_rate_limit(gateway: EmulatorProcess) -> None:
    response = chat(gateway.url)
    assert response.status_code == 200
    assert not [h for h in response.headers if h.lower().startswith("x-ratelimit")]
    assert gateway.stats()["models"][MODEL]["limit"] is None


def test_sliding_window_never_admits_n_plus_one_in_any_window(gateway: EmulatorProcess) -> None:
    # Fixed windows would admit 2 at the end of one window and 2 at the start of the next;
    # the sliding log admits a request only once the oldest counted one is W old.
    limit(gateway, rate_limit=2, window_s=1.0, window_kind="sliding")
    first = chat(gateway.url)
    assert (first.status_code, first.headers["x-ratelimit-remaining"]) == (200, "1")
    assert first.headers["x-ratelimit-reset"] == "1"
    time.sleep(0.6)  # real time must pass: the emulator's clock is its own
    assert chat(gateway.url).status_code == 200
    time.sleep(0.5)  # the first arrival has left; the second has not
    third = chat(gateway.url)
    assert third.status_code == 200
    rejected = chat(gateway.url)
    assert rejected.status_code == 429 and int(rejected.headers["retry-after"]) >= 1
    assert gateway.stats()["models"][MODEL]["max_in_any_window"] == 3  # 2 + the rejected one


def test_a_request_is_counted_when_it_arrives_not_when_its_handler_runs(
    gateway: EmulatorProcess,
) -> None:
    """The stamp is taken as the request's first bytes are parsed, like a gateway's edge."""
    parts = urlsplit(gateway.url)
    body = b'{"model": "claude-sonnet-4-6", "prompt": "Ping."}'
    head = (
        f"Host: {parts.hostname}\r\nAuthorization: key-a\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        sent_first_bytes = time.time()
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
        time.sleep(0.3)  # real time must pass between the request's first and last header
        rest_sent = time.time()
        conn.sendall(head + body)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")
    [entry] = gateway.requests()
    assert sent_first_bytes - 0.05 <= entry["ts"] < rest_sent
