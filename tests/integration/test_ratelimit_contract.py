"""One contract suite for every rate-limit backend: in-memory (fake clock) and real Redis.

Time: the memory backend runs on a fake clock that tests advance; Redis runs on its own real
clock with small windows, and tests poll with deadlines. ``Harness.tick`` is the only thing that
differs (advance the fake clock / let real time pass).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis

from worker.ratelimit.backend import RateLimitBackend
from worker.ratelimit.bucket import BucketParams
from worker.ratelimit.memory_backend import MemoryBackend
from worker.ratelimit.redis_backend import KEY_PREFIX, RedisBackend

# The backend contract is about the arithmetic, not the chosen parameters: capacity 1 makes
# every expected count exact.
P = BucketParams(rate_per_s=10.0, capacity=1.0, max_debt=11.0)
SPACING_S = 1 / P.rate_per_s


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@dataclass
class Harness:
    backend: RateLimitBackend
    now: Callable[[], float]
    tick: Callable[[float], None]
    handle: Callable[[], RateLimitBackend]  # another client on the same shared state
    lose: Callable[[], RateLimitBackend]  # drop every stored state; returns the backend to use
    tol_s: float  # how late a real-time observation may be
    key: str = field(default_factory=lambda: f"test:{uuid.uuid4().hex}")

    def lose_state(self) -> None:
        self.backend = self.lose()

    def poll(self, done: Callable[[], bool], timeout_s: float, step_s: float = 0.002) -> float:
        """Seconds (on the harness clock) until ``done()``; fails after ``timeout_s``."""
        start_s = self.now()
        while not done():
            assert self.now() - start_s < timeout_s, "deadline passed"
            self.tick(step_s)
        return self.now() - start_s


def _memory_harness() -> Harness:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)

    def advance(seconds: float) -> None:
        clock.now_s += seconds

    return Harness(
        backend=backend,
        now=clock,
        tick=advance,
        handle=lambda: backend,
        lose=lambda: MemoryBackend(clock=clock),  # a restarted process
        tol_s=0.0025,
    )


def _redis_harness(url: str) -> Harness:
    client = redis.Redis.from_url(url)

    def flush() -> RateLimitBackend:
        client.flushdb()
        return RedisBackend(client)

    return Harness(
        backend=RedisBackend(client),
        now=time.monotonic,
        tick=time.sleep,  # lets real time pass; never used to wait for another thread
        handle=lambda: RedisBackend(redis.Redis.from_url(url)),
        lose=flush,
        tol_s=0.05,
    )


@pytest.fixture(params=["memory", "redis"])
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "memory":
        yield _memory_harness()
    else:
        yield _redis_harness(request.getfixturevalue("redis_url"))


def test_fresh_key_grants_capacity_then_reports_the_wait(h: Harness) -> None:
    grant = h.backend.acquire(h.key, P, 5)
    assert grant.granted == 1
    assert grant.wait_s == pytest.approx(SPACING_S, abs=1e-9)


def test_want_zero_takes_nothing(h: Harness) -> None:
    assert h.backend.acquire(h.key, P, 0).granted == 0
    assert h.backend.acquire(h.key, P, 1).granted == 1


def test_next_token_arrives_after_wait_s_not_before(h: Harness) -> None:
    assert h.backend.acquire(h.key, P, 1).granted == 1
    start_s = h.now()
    refused = h.backend.acquire(h.key, P, 1)
    assert refused.granted == 0
    assert 0 < refused.wait_s <= SPACING_S
    h.poll(lambda: h.backend.acquire(h.key, P, 1).granted == 1, timeout_s=2)
    # Measured from before the refused call: the token cannot have come any earlier.
    assert refused.wait_s - 1e-6 <= h.now() - start_s <= refused.wait_s + h.tol_s


def test_idle_bucket_holds_no_more_than_capacity(h: Harness) -> None:
    assert h.backend.acquire(h.key, P, 1).granted == 1
    h.tick(5 * SPACING_S)  # lets five tokens' worth of time pass
    assert h.backend.acquire(h.key, P, 5).granted == P.capacity == 1


def test_keys_are_independent(h: Harness) -> None:
    assert h.backend.acquire(h.key, P, 1).granted == 1
    assert h.backend.acquire(h.key, P, 1).granted == 0
    assert h.backend.acquire(h.key + ":other", P, 1).granted == 1


def test_new_params_apply_at_once(h: Harness) -> None:
    slow = BucketParams(rate_per_s=0.1, capacity=1.0, max_debt=2.0)  # 0.1 token/s
    assert h.backend.acquire(h.key, P, 1).granted == 1
    assert h.backend.acquire(h.key, slow, 1).wait_s == pytest.approx(10.0, abs=h.tol_s)


def test_pause_stops_grants_and_only_extends(h: Harness) -> None:
    h.backend.pause(h.key, 5.0)
    assert 5.0 - h.tol_s <= h.backend.paused_for(h.key) <= 5.0
    grant = h.backend.acquire(h.key, P, 1)
    assert grant.granted == 0
    assert 5.0 - h.tol_s <= grant.wait_s <= 5.0
    h.backend.pause(h.key, 1.0)
    assert h.backend.paused_for(h.key) > 4.9
    h.backend.pause(h.key, 8.0)
    assert h.backend.paused_for(h.key) > 7.9
    assert h.backend.paused_for(h.key + ":other") == 0.0


def test_pause_ends_on_time(h: Harness) -> None:
    start_s = h.now()
    h.backend.pause(h.key, 0.3)
    h.poll(lambda: h.backend.acquire(h.key, P, 1).granted == 1, timeout_s=2)
    assert 0.3 - 0.002 <= h.now() - start_s <= 0.3 + h.tol_s
    assert h.backend.paused_for(h.key) == 0.0


def test_learned_limit_only_lowers(h: Harness) -> None:
    assert h.backend.learned_limit(h.key) is None
    h.backend.learn_limit(h.key, 20, 60.0, ttl_s=100)
    assert h.backend.learned_limit(h.key) == (20, 60.0)
    h.backend.learn_limit(h.key, 25, 60.0, ttl_s=100)
    assert h.backend.learned_limit(h.key) == (20, 60.0)
    h.backend.learn_limit(h.key, 15, 30.0, ttl_s=100)  # 0.5/s > 0.33/s: higher, ignored
    assert h.backend.learned_limit(h.key) == (20, 60.0)
    h.backend.learn_limit(h.key, 10, 60.0, ttl_s=100)
    assert h.backend.learned_limit(h.key) == (10, 60.0)


def test_learned_limit_expires_and_an_equal_one_refreshes_it(h: Harness) -> None:
    h.backend.learn_limit(h.key, 5, 60.0, ttl_s=0.3)
    h.backend.learn_limit(h.key + ":b", 5, 60.0, ttl_s=0.3)
    h.backend.learn_limit(h.key + ":b", 5, 60.0, ttl_s=100)
    elapsed_s = h.poll(lambda: h.backend.learned_limit(h.key) is None, timeout_s=2)
    assert 0.3 - h.tol_s <= elapsed_s <= 0.3 + h.tol_s
    assert h.backend.learned_limit(h.key + ":b") == (5, 60.0)


def test_debit_creates_debt_that_delays_the_next_grant(h: Harness) -> None:
    assert h.backend.acquire(h.key, P, 1).granted == 1
    h.backend.debit(h.key, P, 3)
    tokens = h.backend.snapshot(h.key, P).tokens
    assert -3.0 <= tokens <= -3.0 + P.rate_per_s * h.tol_s
    grant = h.backend.acquire(h.key, P, 1)
    assert grant.granted == 0
    assert 4 * SPACING_S - h.tol_s <= grant.wait_s <= 4 * SPACING_S


def test_debit_is_floored_at_max_debt(h: Harness) -> None:
    h.backend.debit(h.key, P, 1000)
    tokens = h.backend.snapshot(h.key, P).tokens
    assert -P.max_debt <= tokens <= -P.max_debt + P.rate_per_s * h.tol_s


def test_snapshot_reports_state_without_taking(h: Harness) -> None:
    fresh = h.backend.snapshot(h.key, P)
    assert (fresh.tokens, fresh.paused_for_s, fresh.learned_limit, fresh.granted_total) == (
        1.0,
        0.0,
        None,
        0,
    )
    assert h.backend.acquire(h.key, P, 3).granted == 1
    h.backend.pause(h.key, 10)
    h.backend.learn_limit(h.key, 7, 60.0, ttl_s=100)
    snap = h.backend.snapshot(h.key, P)
    assert 0.0 <= snap.tokens <= P.rate_per_s * h.tol_s
    assert 10 - h.tol_s <= snap.paused_for_s <= 10
    assert snap.learned_limit == (7, 60.0)
    assert snap.granted_total == 1


def test_concurrent_acquirers_never_over_grant(h: Harness) -> None:
    threads, calls = 8, 150
    barrier = threading.Barrier(threads)
    granted = [0] * threads
    handles = [h.handle() for _ in range(threads)]

    def hammer(i: int) -> None:
        barrier.wait()
        for _ in range(calls):
            granted[i] += handles[i].acquire(h.key, P, 3).granted

    start_s = h.now()
    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed_s = h.now() - start_s
    # Every grant happened within [start, end]: capacity plus the refill over that span.
    assert 1 <= sum(granted) <= P.capacity + P.rate_per_s * elapsed_s + 1e-9
    assert h.backend.snapshot(h.key, P).granted_total == sum(granted)


def test_lost_state_gives_at_most_a_full_bucket(h: Harness) -> None:
    assert h.backend.acquire(h.key, P, 1).granted == 1
    h.backend.debit(h.key, P, 5)
    h.backend.pause(h.key, 30)
    h.lose_state()
    assert h.backend.acquire(h.key, P, 10).granted == P.capacity == 1
    assert h.backend.acquire(h.key, P, 10).granted == 0


# Redis only: key layout, TTLs, script reload, separate processes.


@pytest.fixture()
def client(redis_url: str) -> redis.Redis[bytes]:
    return redis.Redis.from_url(redis_url)


def test_redis_keys_are_prefixed_and_all_expire(client: redis.Redis[bytes]) -> None:
    backend, key = RedisBackend(client), f"test:{uuid.uuid4().hex}"
    backend.acquire(key, P, 1)
    backend.debit(key, P, 2)
    backend.pause(key, 5)
    backend.learn_limit(key, 3, 60.0, ttl_s=50)
    names = sorted(n.decode() for n in client.scan_iter(match=f"*{key}*"))
    assert names == [f"{KEY_PREFIX}{{{key}}}:{part}" for part in ("bucket", "learned", "pause")]
    ttls_ms = {name.rsplit(":", 1)[1]: client.pttl(name) for name in names}
    # A bucket idle for (capacity + max debt) / rate is full anyway: expiring it loses nothing.
    assert (1 + 11) / P.rate_per_s * 1000 < ttls_ms["bucket"] <= (12 / P.rate_per_s + 1) * 1000
    assert 4_900 < ttls_ms["pause"] <= 5_000
    assert 49_000 < ttls_ms["learned"] <= 50_000


def test_redis_scripts_reload_after_script_flush(client: redis.Redis[bytes]) -> None:
    backend, key = RedisBackend(client), f"test:{uuid.uuid4().hex}"
    client.script_flush()
    assert backend.acquire(key, P, 1).granted == 1


def test_redis_backend_works_with_decoded_responses(redis_url: str) -> None:
    backend = RedisBackend(redis.Redis.from_url(redis_url, decode_responses=True))
    key = f"test:{uuid.uuid4().hex}"
    assert backend.acquire(key, P, 2).granted == 1
    backend.learn_limit(key, 4, 6.0, ttl_s=10)
    snap = backend.snapshot(key, P)
    assert (snap.learned_limit, snap.granted_total) == ((4, 6.0), 1)


def _hammer_process(url: str, key: str, calls: int, start: object, out: object) -> None:
    backend = RedisBackend(redis.Redis.from_url(url))
    start.wait()  # type: ignore[attr-defined]
    total = sum(backend.acquire(key, P, 2).granted for _ in range(calls))
    out.put(total)  # type: ignore[attr-defined]


def test_redis_separate_processes_never_over_grant(redis_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs_n, key = 4, f"test:{uuid.uuid4().hex}"
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_hammer_process, args=(redis_url, key, 1500, start, out))
        for _ in range(procs_n)
    ]
    for proc in procs:
        proc.start()
    start_s = time.monotonic()
    start.set()
    totals = [out.get(timeout=60) for _ in procs]
    elapsed_s = time.monotonic() - start_s
    for proc in procs:
        proc.join(timeout=10)
    assert 1 <= sum(totals) <= P.capacity + P.rate_per_s * elapsed_s
