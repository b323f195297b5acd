"""Token buckets and daily quotas, in process and in the real local Redis, on stepped clocks (no sleeps): a 10x
burst from 8 threads admits exactly burst + rate x time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from modelshield.core.errors import InputError
from modelshield.serve.errors import RateLimitedError, ServiceUnavailableError
from modelshield.serve.ratelimit import (
    DailyQuota,
    LocalTokenBucket,
    RateLimiter,
    RedisTokenBucket,
    bucket_key,
    enforce,
)

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_local_bucket_refill_and_retry_after() -> None:
    clock = Clock()
    bucket = LocalTokenBucket(rate_per_s=2, burst=3, clock=clock)
    key = bucket_key("alice", "digits")
    assert [bucket.hit(key).allowed for _ in range(4)] == [True, True, True, False]
    refused = bucket.hit(key)
    assert refused.retry_after == pytest.approx(0.5)
    clock.t += 0.5
    assert bucket.hit(key).allowed and not bucket.hit(key).allowed
    assert bucket.hit(bucket_key("bob", "digits")).allowed  # buckets are per key
    clock.t += 100
    assert bucket.hit(key).remaining == pytest.approx(2.0)  # capped at burst
    with pytest.raises(RateLimitedError) as info:
        for _ in range(5):
            enforce(bucket, key)
    assert info.value.status == 429 and info.value.retry_after > 0
    with pytest.raises(InputError):
        bucket.hit(key, cost=4)
    with pytest.raises(InputError):
        LocalTokenBucket(rate_per_s=0, burst=1)


def hammer(limiter: RateLimiter, clock: Clock, key: str, *, ticks: int, tick: float, threads: int = 8) -> int:
    """8 threads hit ``key`` together at every tick of a stepped clock; returns how many hits were admitted.

    The clock only moves between ticks, so the answer depends on the limiter alone: not on how the threads
    are scheduled or how busy the machine is.
    """
    admitted = 0
    lock = threading.Lock()
    gate = threading.Barrier(threads, action=lambda: setattr(clock, "t", clock.t + tick))

    def worker() -> None:
        nonlocal admitted
        ok = 0
        for _ in range(ticks):
            ok += limiter.hit(key).allowed
            gate.wait()
        with lock:
            admitted += ok

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return admitted


@pytest.mark.parametrize("rate, size", [(100, 20), (7, 3)])
def test_local_bucket_admits_burst_plus_rate_times_time_under_contention(rate: float, size: float) -> None:
    clock = Clock()
    ticks, tick = 200, 0.005  # one simulated second; 8 threads offer 1600 hits/s, over 10x the rate
    admitted = hammer(LocalTokenBucket(rate_per_s=rate, burst=size, clock=clock), clock, "k", ticks=ticks, tick=tick)
    # tokens refill continuously, so the last tick may fall a hair short of a whole one (float rounding)
    assert size + rate * (ticks - 1) * tick - 1 <= admitted <= size + rate * (ticks - 1) * tick


def test_redis_bucket_admits_burst_plus_rate_times_time_under_contention(redis_url: str, redis_prefix: str) -> None:
    clock = Clock()
    bucket = RedisTokenBucket(redis_url, rate_per_s=50, burst=10, prefix=redis_prefix, clock=clock)
    admitted = hammer(bucket, clock, "k", ticks=100, tick=0.01)
    assert 10 + 50 * 99 * 0.01 - 1 <= admitted <= 10 + 50 * 99 * 0.01


def test_redis_bucket_on_redis_time_never_admits_more_than_burst_plus_rate_times_elapsed(
    redis_url: str, redis_prefix: str
) -> None:
    """The production clock (Redis TIME): the bound holds for the wall time the whole run took, however slow."""
    bucket = RedisTokenBucket(redis_url, rate_per_s=5, burst=10, prefix=redis_prefix)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: bucket.hit("k").allowed, range(400)))
    elapsed = time.monotonic() - started
    assert 10 <= sum(answers) <= 10 + 5 * elapsed + 1


def test_redis_bucket_is_shared_between_replicas(redis_url: str, redis_prefix: str) -> None:
    a = RedisTokenBucket(redis_url, rate_per_s=0.01, burst=5, prefix=redis_prefix)
    b = RedisTokenBucket(redis_url, rate_per_s=0.01, burst=5, prefix=redis_prefix)
    answers = [limiter.hit("shared").allowed for limiter in (a, b) * 4]
    assert answers.count(True) == 5 and answers[-3:] == [False, False, False]
    refused = a.hit("shared")
    assert refused.retry_after == pytest.approx(1 / 0.01, rel=0.1)


def test_redis_down_fails_closed_by_default_and_open_when_configured() -> None:
    closed = RedisTokenBucket(DEAD_REDIS, rate_per_s=10, burst=10, timeout=0.2)
    with pytest.raises(ServiceUnavailableError) as info:
        closed.hit("k")
    assert info.value.status == 503 and not closed.ping()
    assert RedisTokenBucket(DEAD_REDIS, rate_per_s=10, burst=10, fail_open=True, timeout=0.2).hit("k").allowed
    with pytest.raises(ServiceUnavailableError):
        DailyQuota(10, redis_url=DEAD_REDIS, timeout=0.2).hit("k")


def test_daily_quota_local_resets_at_utc_midnight() -> None:
    clock = Clock(t=19_000 * 86400 + 86400 - 10)  # ten seconds before midnight UTC
    quota = DailyQuota(3, clock=clock)
    assert [quota.hit("alice").allowed for _ in range(4)] == [True, True, True, False]
    assert quota.hit("alice").retry_after == pytest.approx(10)
    assert quota.hit("bob").allowed
    clock.t += 10
    assert quota.hit("alice").allowed and quota.hit("alice").remaining == pytest.approx(1)


def test_daily_quota_in_redis_is_shared_and_resets_at_utc_midnight(redis_url: str, redis_prefix: str) -> None:
    clock = Clock(t=19_000 * 86400 + 86400 - 10)  # ten seconds before midnight UTC
    a = DailyQuota(5, redis_url=redis_url, prefix=redis_prefix, clock=clock)
    b = DailyQuota(5, redis_url=redis_url, prefix=redis_prefix, clock=clock)
    assert a.hit("alice", cost=3).allowed and b.hit("alice", cost=2).allowed
    refused = a.hit("alice")
    assert not refused.allowed and refused.retry_after == pytest.approx(10)
    assert b.hit("bob", cost=5).allowed
    clock.t += 10
    assert a.hit("alice", cost=5).allowed and not b.hit("alice").allowed


def test_daily_quota_in_redis_on_redis_time(redis_url: str, redis_prefix: str) -> None:
    """The production clock (Redis TIME): the third hit on a quota of two is refused until the next UTC midnight."""
    quota = DailyQuota(2, redis_url=redis_url, prefix=redis_prefix)
    for key in ("alice", "bob"):  # a second key in case the first three hits straddled midnight
        answers = [quota.hit(key) for _ in range(3)]
        if not answers[2].allowed:
            break
    assert [a.allowed for a in answers] == [True, True, False]
    assert 0 < answers[2].retry_after <= 86400
