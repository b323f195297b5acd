"""Rate limits and quotas: token buckets per (identity × model), in-process or shared through Redis.

A token bucket holds at most ``burst`` tokens and refills at ``rate_per_s``; a request spends
``cost`` tokens or is refused with the time until it could pass (``Retry-After``). Over any window of
``t`` seconds a key gets at most ``burst + rate·t`` tokens' worth, however hard it is hammered. The gateway
charges one token per *sample* by default (``rate_limits.cost = "samples"``): a batch of 512 costs 512, so
batching cannot multiply what a caller may query; a batch larger than a bucket's capacity can never pass.

- ``LocalTokenBucket``: one process (a lock and the monotonic clock).
- ``RedisTokenBucket``: any number of replicas. Each hit is one Lua script, atomic in Redis, that
  reads the clock with Redis ``TIME`` so replicas with skewed clocks agree (a ``clock`` given to the
  constructor replaces it: tests step time instead of sleeping). If Redis cannot be reached
  the limiter *fails closed* (``ServiceUnavailableError``, HTTP 503) unless built with
  ``fail_open=True``, which admits requests and logs the outage instead.
- ``DailyQuota``: a budget per key per UTC day (in process, or in Redis with the same failure modes).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from modelshield.core.errors import InputError
from modelshield.serve.errors import MAX_RETRY_AFTER, RateLimitedError, ServiceUnavailableError

log = logging.getLogger(__name__)

DAY = 86400.0


@dataclass(frozen=True)
class RateDecision:
    """Whether a hit passed, how long to wait before retrying if not, and what is left."""

    allowed: bool
    retry_after: float
    remaining: float


class RateLimiter(Protocol):
    """Anything that can admit or refuse a hit on a key."""

    @property
    def capacity(self) -> float:
        """The most one hit may cost: a bucket's burst, a quota's daily limit."""
        ...

    def hit(self, key: str, cost: float = 1.0) -> RateDecision: ...


def bucket_key(subject: str, model: str) -> str:
    """The key of one caller's bucket on one model."""
    return f"{subject}\x1f{model}"


def enforce(
    limiter: RateLimiter, key: str, cost: float = 1.0, what: str = "rate limit", *, paid: float = 0.0
) -> RateDecision:
    """Hit ``limiter`` and raise ``RateLimitedError`` (429, with ``retry_after``) when refused.

    ``paid``: tokens the same request already spent from this bucket in an earlier hit (the gateway takes a
    batch's first sample before reading the body, the rest after); a refusal's Retry-After is then the time
    until the *whole* request could pass, so a client that waits it out is not refused again.
    """
    decision = limiter.hit(key, cost)
    if decision.allowed:
        return decision
    retry = decision.retry_after
    if paid > 0:  # the bucket refills at (cost - remaining) / retry_after tokens a second
        retry *= (cost + paid - decision.remaining) / (cost - decision.remaining)
    retry = min(retry, MAX_RETRY_AFTER)
    if cost + paid > 1:
        left = max(0.0, decision.remaining + paid)
        raise RateLimitedError(
            f"{what}: this batch of {cost + paid:g} samples exceeds the {left:.0f} left; retry in {retry:.2f} s", retry
        )
    raise RateLimitedError(f"{what} exceeded; retry in {retry:.2f} s", retry)


def largest_batch(limiters: Iterable[RateLimiter]) -> float:
    """The most samples one request can ever carry when each costs a token: the smallest capacity."""
    return min((limiter.capacity for limiter in limiters), default=math.inf)


def _check_bucket(rate_per_s: float, burst: float) -> None:
    if not rate_per_s > 0 or not burst >= 1:
        raise InputError(f"a token bucket needs rate_per_s > 0 and burst >= 1 (got {rate_per_s}, {burst})")


def _check_cost(cost: float, capacity: float) -> None:
    if not 0 < cost <= capacity:
        raise InputError(f"a hit must cost more than 0 and at most the capacity {capacity} (got {cost})")


class LocalTokenBucket:
    """Token buckets in this process; thread-safe, on the monotonic clock."""

    def __init__(
        self, rate_per_s: float, burst: float, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        _check_bucket(rate_per_s, burst)
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def capacity(self) -> float:
        """The burst: no hit may cost more."""
        return self.burst

    def hit(self, key: str, cost: float = 1.0) -> RateDecision:
        """Spend ``cost`` tokens from ``key``'s bucket if it has them."""
        _check_cost(cost, self.burst)
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
            if tokens >= cost:
                tokens -= cost
                decision = RateDecision(True, 0.0, tokens)
            else:
                decision = RateDecision(False, (cost - tokens) / self.rate_per_s, tokens)
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.max_keys:
                self._forget_full(now)
        return decision

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: forgetting them changes no answer."""
        full_after = self.burst / self.rate_per_s
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


# ARGV[1], when not empty, is the caller's clock; else Redis's own, which every replica shares.
_NOW_LUA = """
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

_TOKEN_BUCKET_LUA = (
    _NOW_LUA
    + """
local rate, burst, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]), tonumber(state[2])
if tokens == nil or ts == nil then tokens, ts = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed, retry = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, string.format('%.6f', retry), string.format('%.6f', tokens)}
"""
)

_DAILY_QUOTA_LUA = (
    _NOW_LUA
    + """
local limit, cost = tonumber(ARGV[2]), tonumber(ARGV[3])
local day = math.floor(now / 86400)
local key = KEYS[1] .. ':' .. day
local used = tonumber(redis.call('GET', key) or '0')
local to_midnight = (day + 1) * 86400 - now
if used + cost > limit then
  return {0, string.format('%.6f', to_midnight), string.format('%.6f', limit - used)}
end
used = tonumber(redis.call('INCRBYFLOAT', key, cost))
redis.call('EXPIRE', key, math.ceil(to_midnight) + 3600)
return {1, '0', string.format('%.6f', limit - used)}
"""
)


class _RedisScript:
    """One Lua script on one Redis, with the gateway's failure policy (closed by default, or open)."""

    def __init__(
        self,
        url: str,
        lua: str,
        *,
        fail_open: bool,
        timeout: float,
        prefix: str,
        capacity: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import redis

        self._errors = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._script = self._client.register_script(lua)
        self.fail_open = fail_open
        self.prefix = prefix
        self.capacity = capacity
        self.clock = clock
        self._last_outage_log = 0.0

    def run(self, key: str, *args: float) -> RateDecision:
        """Run the script on ``key`` with ``args``, and the time: the clock's if one was given, else Redis's."""
        now = repr(self.clock()) if self.clock is not None else ""
        try:
            allowed, retry, remaining = self._script(keys=[self.prefix + key], args=[now, *args])
        except self._errors as exc:
            return self._outage(exc)
        return RateDecision(bool(int(allowed)), float(retry), float(remaining))

    def _outage(self, exc: Exception) -> RateDecision:
        now = time.monotonic()
        if now - self._last_outage_log > 5.0:  # one line per 5 s, not one per request
            self._last_outage_log = now
            log.error(
                "rate limiter cannot reach Redis (%s); failing %s",
                type(exc).__name__,
                "open: admitting requests" if self.fail_open else "closed: refusing requests",
            )
        if self.fail_open:
            return RateDecision(True, 0.0, self.capacity)
        raise ServiceUnavailableError("rate limiter unavailable (Redis unreachable); refusing requests (fail closed)")

    def ping(self) -> bool:
        """True if Redis answers (for readiness probes)."""
        try:
            return bool(self._client.ping())
        except self._errors:
            return False


class RedisTokenBucket:
    """Token buckets shared by every replica through Redis; one atomic Lua script per hit."""

    def __init__(
        self,
        url: str,
        rate_per_s: float,
        burst: float,
        fail_open: bool = False,
        *,
        timeout: float = 0.25,
        prefix: str = "modelshield:rl:",
        clock: Callable[[], float] | None = None,
    ) -> None:
        _check_bucket(rate_per_s, burst)
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._redis = _RedisScript(
            url,
            _TOKEN_BUCKET_LUA,
            fail_open=fail_open,
            timeout=timeout,
            prefix=prefix,
            capacity=self.burst,
            clock=clock,
        )

    @property
    def capacity(self) -> float:
        """The burst: no hit may cost more."""
        return self.burst

    def hit(self, key: str, cost: float = 1.0) -> RateDecision:
        """Spend ``cost`` tokens from ``key``'s shared bucket; ``ServiceUnavailableError`` if Redis is down (fail closed)."""
        _check_cost(cost, self.burst)
        return self._redis.run(key, self.rate_per_s, self.burst, cost)

    def ping(self) -> bool:
        """True if Redis answers."""
        return self._redis.ping()


class DailyQuota:
    """A budget of ``limit`` per key per UTC day; in process, or shared through Redis with ``redis_url``.

    ``clock`` (seconds since the epoch) is the in-process day's clock; with Redis, Redis's own ``TIME`` is used
    unless a clock is given.
    """

    def __init__(
        self,
        limit: float,
        *,
        redis_url: str | None = None,
        fail_open: bool = False,
        timeout: float = 0.25,
        prefix: str = "modelshield:quota:",
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not limit > 0:
            raise InputError(f"a daily quota must be positive (got {limit})")
        self.limit = float(limit)
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._used: dict[str, tuple[int, float]] = {}
        self._redis: _RedisScript | None = None
        if redis_url is not None:
            self._redis = _RedisScript(
                redis_url,
                _DAILY_QUOTA_LUA,
                fail_open=fail_open,
                timeout=timeout,
                prefix=prefix,
                capacity=self.limit,
                clock=clock,
            )

    @property
    def capacity(self) -> float:
        """The daily limit: no hit may cost more."""
        return self.limit

    def hit(self, key: str, cost: float = 1.0) -> RateDecision:
        """Count ``cost`` against today's budget, or refuse until the next UTC midnight."""
        _check_cost(cost, self.limit)
        if self._redis is not None:
            return self._redis.run(key, self.limit, cost)
        now = self._clock()
        day = int(now // DAY)
        with self._lock:
            used_day, used = self._used.get(key, (day, 0.0))
            if used_day != day:
                used = 0.0
                if len(self._used) > 100_000:
                    self._used = {k: v for k, v in self._used.items() if v[0] == day}
            if used + cost > self.limit:
                return RateDecision(False, (day + 1) * DAY - now, self.limit - used)
            self._used[key] = (day, used + cost)
        return RateDecision(True, 0.0, self.limit - used - cost)
