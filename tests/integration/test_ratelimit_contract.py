"""One contract suite for every rate-limit backend: in-memory (fake clock) and real Redis.

Time: the memory backend runs on a fake clock that tests advance; Redis runs on its own real
clock with sub-second windows, and tests poll with deadlines. ``Harness.tick`` is the only thing
that differs (advance the fake clock / let real time pass).
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

from tests.fakes import FakeClock
from worker.errors import LimiterUnavailable, SendDeferred
from worker.ratelimit.backend import Permit, RateLimitBackend
from worker.ratelimit.config import RateLimitConfig
from worker.ratelimit.limiter import ModelLimiter
from worker.ratelimit.memory_backend import MemoryBackend
from worker.ratelimit.redis_backend import KEY_PREFIX, RedisBackend
from worker.ratelimit.window import POLL_S, GateParams

# 5 sends per 0.4 s (+ 0.05 s margin); slots are released 0.1 s ahead.
P = GateParams(limit=5, window_s=0.4, margin_s=0.05, lead_s=0.1, reservation_ttl_s=1.0)


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

    def seed(self, counted: int = 1, reset_s: float | None = None, key: str | None = None) -> None:
        """Probe the lane and answer with the gateway's count: the lane is trusted after."""
        lane = key or self.key
        probe = self.send(lane)
        assert probe.granted
        self.backend.observe(lane, P, sent_at_s=probe.at_s, counted=counted, reset_s=reset_s)

    def send(self, key: str | None = None) -> Permit:
        """A permit, written and confirmed at once (as a worker does)."""
        lane = key or self.key
        permit = self.backend.permit(lane, P, 0.0)
        if permit.granted:
            self.backend.confirm(lane, P, permit.entry_id, permit.at_s)
        return permit

    def permits(self, n: int) -> int:
        return sum(self.send().granted for _ in range(n))


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
        now=time.time,
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


# -- trust: a lane without history probes once ---------------------------------------------------


def test_a_lane_without_history_releases_and_permits_one_probe(h: Harness) -> None:
    assert h.backend.reserve(h.key, P, 5).granted == 1
    assert h.backend.reserve(h.key, P, 5).granted == 0  # the probe's job is on its way
    probe = h.backend.permit(h.key, P, 0.0)
    assert probe.granted and abs(probe.at_s - h.now()) <= h.tol_s
    refused = h.backend.permit(h.key, P, 0.0)
    assert not refused.granted and refused.wait_s == pytest.approx(POLL_S)
    assert not h.backend.snapshot(h.key, P).trusted


def test_a_report_seeds_the_lane_with_what_the_gateway_counts(h: Harness) -> None:
    probe = h.send()
    # The gateway counts 3 arrivals (2 from elsewhere), its window refilling in 10 s.
    added = h.backend.observe(h.key, P, sent_at_s=probe.at_s, counted=3, reset_s=10.0)
    assert added == 2
    assert h.backend.snapshot(h.key, P).trusted
    assert h.backend.reserve(h.key, P, 9).granted == 2
    assert h.permits(9) == 2


def test_only_the_untrusted_lanes_permit_is_marked_a_probe(h: Harness) -> None:
    probe = h.send()
    assert probe.probe  # its answer must be observed: it seeds the lane
    h.backend.observe(h.key, P, sent_at_s=probe.at_s, counted=1, reset_s=10.0)
    after = h.backend.permit(h.key, P, 0.0)
    assert after.granted and not after.probe  # a trusted lane's answers need no report


def test_a_report_without_headers_only_ends_the_probe(h: Harness) -> None:
    probe = h.backend.permit(h.key, P, 0.0)
    assert h.backend.observe(h.key, P, sent_at_s=probe.at_s, counted=None, reset_s=None) == 0
    assert not h.backend.snapshot(h.key, P).trusted
    assert h.backend.permit(h.key, P, 0.0).granted  # the next probe


def test_a_store_older_than_one_window_trusts_its_log(h: Harness) -> None:
    h.backend.reserve(h.key, P, 1)  # the lane's history starts here
    waited_s = h.poll(lambda: h.backend.snapshot(h.key, P).trusted, timeout_s=2)
    assert P.span_s - h.tol_s <= waited_s <= P.span_s + h.tol_s
    assert h.backend.reserve(h.key + ":x", P, 9).granted == 1  # a new lane still probes
    assert h.permits(9) == P.limit


def test_lost_history_never_yields_a_burst(h: Harness) -> None:
    h.seed()
    assert h.permits(P.limit) == P.limit - 1  # the window is full
    h.lose_state()
    assert h.backend.reserve(h.key, P, P.limit).granted == 1
    assert h.permits(P.limit) == 1  # one probe, not a window's worth
    assert not h.backend.snapshot(h.key, P).trusted


# -- the window ----------------------------------------------------------------------------------


def test_permits_hold_the_limit_in_every_window_and_say_when_the_next_opens(h: Harness) -> None:
    h.seed()
    first_s = h.now()
    assert h.permits(10) == P.limit - 1
    refused = h.backend.permit(h.key, P, 0.0)
    assert not refused.granted
    assert refused.wait_s == pytest.approx(first_s + P.span_s - h.now(), abs=h.tol_s)
    waited_s = h.poll(lambda: h.send().granted, timeout_s=2)
    assert h.now() - first_s >= P.span_s - 0.002  # never before the oldest send left
    assert waited_s <= refused.wait_s + h.tol_s


def test_a_full_lane_books_each_waiter_its_own_slot_in_order(h: Harness) -> None:
    h.seed()
    first_s = h.now()
    assert h.permits(P.limit) == P.limit - 1  # full
    booked = [h.backend.permit(h.key, P, 1.0) for _ in range(3)]
    assert all(p.granted for p in booked)
    slots = [p.slot_s for p in booked]
    # The probe's slot opens first (one span after it), then the next sends', in order.
    assert slots == sorted(slots) and slots[0] == pytest.approx(first_s + P.span_s, abs=h.tol_s)
    assert not h.backend.permit(h.key, P, 0.0).granted  # nobody jumps the queue
    late = h.backend.permit(h.key, P, 0.01)
    assert not late.granted and late.wait_s >= slots[-1] - h.now() - h.tol_s
    # A booked send is held from its slot: the lane is full for those slots' windows.
    assert h.backend.snapshot(h.key, P).in_window == P.limit + 3


def test_reserve_releases_the_slots_that_open_within_the_lead(h: Harness) -> None:
    h.seed()
    assert h.backend.reserve(h.key, P, 10).granted == P.limit - 1
    assert h.permits(P.limit) == P.limit - 1
    grant = h.backend.reserve(h.key, P, 1)
    assert grant.granted == 0 and 0 < grant.wait_s <= 0.25
    # The probe leaves the window at +span: its slot is released a lead before that.
    h.poll(lambda: h.backend.reserve(h.key, P, 1).granted == 1, timeout_s=2)
    assert h.backend.snapshot(h.key, P).reserved == 1


def test_reservations_are_given_back_used_up_and_expire(h: Harness) -> None:
    h.seed()
    assert h.backend.reserve(h.key, P, 10).granted == 4
    h.backend.give_back(h.key, P, 1)
    h.backend.give_back(h.key, P, 1, deferred=True)
    snap = h.backend.snapshot(h.key, P)
    assert (snap.reserved, snap.deferred_total) == (2, 1)
    assert h.send().granted
    assert h.backend.snapshot(h.key, P).reserved == 1
    elapsed_s = h.poll(lambda: h.backend.snapshot(h.key, P).reserved == 0, timeout_s=3)
    assert elapsed_s <= P.reservation_ttl_s + h.tol_s


def test_a_send_without_permit_counts(h: Harness) -> None:
    h.seed()
    for _ in range(3):
        h.backend.record_send(h.key, P)
    assert h.permits(5) == 1
    assert h.backend.snapshot(h.key, P).in_window == P.limit


def test_reported_arrivals_leave_at_the_reset(h: Harness) -> None:
    h.seed(counted=P.limit, reset_s=0.2)  # the gateway's window is full for 0.2 s
    assert h.permits(1) == 0
    waited_s = h.poll(lambda: h.permits(1) == 1, timeout_s=2)
    assert 0.2 - 0.01 <= waited_s <= 0.2 + h.tol_s


def test_a_report_the_log_accounts_for_adds_nothing(h: Harness) -> None:
    h.seed()
    sent = [h.send() for _ in range(3)]
    added = h.backend.observe(h.key, P, sent_at_s=sent[-1].at_s, counted=4, reset_s=0.4)
    assert added == 0


def test_threads_on_separate_clients_never_exceed_the_limit(h: Harness) -> None:
    h.seed()
    threads, calls = 6, 40
    handles = [h.handle() for _ in range(threads)]
    times: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def hammer(i: int) -> None:
        barrier.wait()
        for _ in range(calls):
            permit = handles[i].permit(h.key, P, 0.0)
            if permit.granted:
                with lock:
                    times.append(permit.at_s)

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(times) == P.limit - 1  # the probe holds one slot; no time passed for more
    assert h.backend.snapshot(h.key, P).permits_total == P.limit


def test_new_params_apply_at_once(h: Harness) -> None:
    h.seed()
    assert h.permits(2) == 2
    tighter = GateParams(limit=2, window_s=P.window_s, margin_s=P.margin_s)
    assert not h.backend.permit(h.key, tighter, 0.0).granted


def test_keys_are_independent(h: Harness) -> None:
    h.seed()
    h.seed(key=h.key + ":other")
    assert h.permits(P.limit) == P.limit - 1
    assert h.backend.permit(h.key + ":other", P, 0.0).granted


def test_a_send_is_held_until_confirmed_then_ends_a_window_after_its_write(h: Harness) -> None:
    h.seed()
    held = h.backend.permit(h.key, P, 0.0)
    assert h.permits(P.limit) == P.limit - 2
    # The confirmed sends leave after one span; the held one only after hold + span.
    h.poll(lambda: h.backend.snapshot(h.key, P).in_window == 1, timeout_s=2)
    written_s = h.now()
    h.backend.confirm(h.key, P, held.entry_id, written_s)
    assert h.backend.snapshot(h.key, P).in_window == 1  # it was written just now
    h.backend.confirm(h.key, P, held.entry_id, written_s + 60)  # never later than held
    waited_s = h.poll(lambda: h.backend.snapshot(h.key, P).in_window == 0, timeout_s=2)
    assert waited_s <= P.span_s + h.tol_s


def test_ghosts_from_one_report_are_not_added_again_by_the_next(h: Harness) -> None:
    h.seed(counted=3, reset_s=10.0)  # 2 arrivals from elsewhere
    again = h.send()
    assert h.backend.observe(h.key, P, sent_at_s=again.at_s, counted=4, reset_s=10.0) == 0
    assert h.backend.snapshot(h.key, P).in_window == 4


# -- pauses and learned limits -------------------------------------------------------------------


def test_pause_stops_releases_and_permits_and_only_extends(h: Harness) -> None:
    h.seed()
    h.backend.pause(h.key, 5.0)
    assert 5.0 - h.tol_s <= h.backend.paused_for(h.key) <= 5.0
    grant = h.backend.reserve(h.key, P, 1)
    assert grant.granted == 0 and 5.0 - h.tol_s <= grant.wait_s <= 5.0
    permit = h.backend.permit(h.key, P, 0.0)
    assert not permit.granted and 5.0 - h.tol_s <= permit.wait_s <= 5.0
    h.backend.pause(h.key, 1.0)
    assert h.backend.paused_for(h.key) > 4.9
    h.backend.pause(h.key, 8.0)
    assert h.backend.paused_for(h.key) > 7.9
    assert h.backend.paused_for(h.key + ":other") == 0.0


def test_pause_ends_on_time(h: Harness) -> None:
    h.seed()
    start_s = h.now()
    h.backend.pause(h.key, 0.3)
    h.poll(lambda: h.send().granted, timeout_s=2)
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


# Redis only: key layout, TTLs, script reload, separate processes.


@pytest.fixture()
def client(redis_url: str) -> redis.Redis[bytes]:
    return redis.Redis.from_url(redis_url)


def test_redis_keys_are_prefixed_and_all_expire(client: redis.Redis[bytes]) -> None:
    backend, key = RedisBackend(client), f"test:{uuid.uuid4().hex}"
    probe = backend.permit(key, P, 0.0)
    backend.confirm(key, P, probe.entry_id, probe.at_s)
    backend.observe(key, P, sent_at_s=probe.at_s, counted=2, reset_s=None)  # one ghost
    assert backend.reserve(key, P, 1).granted == 1
    backend.pause(key, 5)
    backend.learn_limit(key, 3, 60.0, ttl_s=50)
    names = sorted(n.decode() for n in client.scan_iter(match=f"*{key}*"))
    parts = ("gate", "ghosts", "learned", "pause", "resv", "sends")
    assert names == [f"{KEY_PREFIX}{{{key}}}:{part}" for part in parts]
    ttls_ms = {name.rsplit(":", 1)[1]: client.pttl(name) for name in names}
    # The script rounds each TTL up to the next millisecond of (expiry - now), and at epoch
    # magnitudes that difference is a hair over or under the interval: 1 ms of slack.
    assert 0 < ttls_ms["sends"] <= (P.hold_s + P.span_s + 1) * 1000 + 1
    assert 0 < ttls_ms["resv"] <= (P.reservation_ttl_s + 1) * 1000 + 1
    assert 0 < ttls_ms["ghosts"] <= (P.window_s + 1) * 1000 + 1
    assert 86_000_000 < ttls_ms["gate"] <= 86_400_000
    assert 4_900 < ttls_ms["pause"] <= 5_000
    assert 49_000 < ttls_ms["learned"] <= 50_000


def test_redis_scripts_reload_after_script_flush(client: redis.Redis[bytes]) -> None:
    backend, key = RedisBackend(client), f"test:{uuid.uuid4().hex}"
    client.script_flush()
    assert backend.reserve(key, P, 1).granted == 1


def test_redis_backend_works_with_decoded_responses(redis_url: str) -> None:
    backend = RedisBackend(redis.Redis.from_url(redis_url, decode_responses=True))
    key = f"test:{uuid.uuid4().hex}"
    assert backend.permit(key, P, 0.0).granted
    backend.learn_limit(key, 4, 6.0, ttl_s=10)
    snap = backend.snapshot(key, P)
    assert (snap.learned_limit, snap.permits_total, snap.in_window) == ((4, 6.0), 1, 1)


# A window long enough that nothing leaves it while the processes start.
LONG = GateParams(limit=5, window_s=60.0)


def _race_process(url: str, key: str, start: object, out: object) -> None:
    backend = RedisBackend(redis.Redis.from_url(url))
    start.wait()  # type: ignore[attr-defined]
    wins = sum(backend.permit(key, LONG, 0.0).granted for _ in range(50))
    out.put(wins)  # type: ignore[attr-defined]


def test_redis_separate_processes_race_for_the_last_permit(redis_url: str) -> None:
    backend, key = RedisBackend(redis.Redis.from_url(redis_url)), f"test:{uuid.uuid4().hex}"
    probe = backend.permit(key, LONG, 0.0)
    backend.confirm(key, LONG, probe.entry_id, probe.at_s)
    backend.observe(key, LONG, sent_at_s=probe.at_s, counted=LONG.limit - 1, reset_s=60.0)
    assert backend.snapshot(key, LONG).in_window == LONG.limit - 1  # one permit left
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_race_process, args=(redis_url, key, start, out)) for _ in range(4)]
    for proc in procs:
        proc.start()
    start.set()
    totals = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
    assert sum(totals) == 1


def test_redis_unreachable_defers_the_send(redis_url: str) -> None:
    dead = RedisBackend(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2))
    limiter = ModelLimiter(dead, RateLimitConfig.parse("m=5/1s"))
    with pytest.raises(SendDeferred) as raised:
        limiter.permit("m", "us")
    assert isinstance(raised.value.__cause__, LimiterUnavailable)


def test_a_stale_probe_is_counted_and_frees_the_next_probe(h: Harness) -> None:
    assert h.backend.permit(h.key, P, 0.0).granted
    assert not h.backend.permit(h.key, P, 0.0).granted  # the probe is out
    h.backend.count_stale(h.key, P)
    assert h.backend.permit(h.key, P, 0.0).granted
    snap = h.backend.snapshot(h.key, P)
    assert (snap.stale_total, snap.in_window, snap.permits_total) == (1, 2, 2)


def test_a_trusted_lane_keeps_its_own_log_against_a_report(h: Harness) -> None:
    h.seed()
    sent = h.send()
    assert h.backend.observe(h.key, P, sent_at_s=sent.at_s, counted=P.limit, reset_s=0.4) == 0
    assert h.backend.snapshot(h.key, P).in_window == 2
