"""Token buckets and daily quotas, in process and in the real local Redis; a 10x burst stays within 5%."""

from __future__ import annotations

import threading
import time

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


def burst(limiter: RateLimiter, key: str, rate: float, seconds: float, threads: int = 8) -> tuple[int, int, float]:
    """Hammer ``key`` from several threads for ``seconds``; returns (admitted, attempted, elapsed)."""
    admitted = attempted = 0
    lock = threading.Lock()
    start_gate = threading.Barrier(threads + 1)
    stop = time.monotonic() + seconds + 0.05

    def worker() -> None:
        nonlocal admitted, attempted
        ok = n = 0
        start_gate.wait()
        while time.monotonic() < stop:
            n += 1
            ok += limiter.hit(key).allowed
            time.sleep(0.0005)
        with lock:
            admitted += ok
            attempted += n

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    start_gate.wait()
    t0 = time.monotonic()
    for t in pool:
        t.join()
    return admitted, attempted, time.monotonic() - t0


def check_burst(limiter: RateLimiter, key: str, rate: float, size: float, seconds: float) -> None:
    admitted, attempted, elapsed = burst(limiter, key, rate, seconds)
    allowed_max = size + rate * elapsed
    assert attempted >= 10 * rate * elapsed, f"offered load {attempted / elapsed:.0f}/s is not a 10x burst"
    assert admitted <= allowed_max * 1.05, (admitted, allowed_max)
    assert admitted >= (size + rate * seconds) * 0.95, (admitted, size + rate * seconds)


def test_local_bucket_holds_under_a_10x_burst() -> None:
    check_burst(LocalTokenBucket(rate_per_s=100, burst=20), "k", rate=100, size=20, seconds=1.0)


def test_redis_bucket_holds_under_a_10x_burst(redis_url: str, redis_prefix: str) -> None:
    check_burst(
        RedisTokenBucket(redis_url, rate_per_s=50, burst=10, prefix=redis_prefix), "k", rate=50, size=10, seconds=1.0
    )


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


def test_daily_quota_in_redis(redis_url: str, redis_prefix: str) -> None:
    a = DailyQuota(5, redis_url=redis_url, prefix=redis_prefix)
    b = DailyQuota(5, redis_url=redis_url, prefix=redis_prefix)
    assert a.hit("alice", cost=3).allowed and b.hit("alice", cost=2).allowed
    refused = a.hit("alice")
    seconds_to_midnight = 86400 - time.time() % 86400
    assert not refused.allowed and refused.retry_after == pytest.approx(seconds_to_midnight, abs=5)
    assert b.hit("bob", cost=5).allowed
