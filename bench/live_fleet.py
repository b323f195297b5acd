"""The fleet-wide live window: what sharing a worker's traffic through Redis costs, per request and per flush.

In one process, on the gateway's own ``GatewayLive`` with the digits live monitor (64-feature sketch of the training
split, 100 bins; reference outputs of a logistic regression), against the Redis at ``--redis``:

1. Request path: the three per-request hooks (window copy, output queue, window counters) for a batch of
   ``--batch`` digits, timed side by side in worker scope (no Redis) and fleet scope (the counters also go into the
   next flush's increments).
2. Flush, once a second off the request path: after ``--rate`` requests of a simulated second, one ``flush()`` —
   drain (the second's inputs binned on the sketch, the outputs summed), JSON, one Redis pipeline. Its time is
   spread over the second's requests (the CPU per request it adds) and its payload size is reported.
3. Evaluation, by the lease holder only: two workers flush the same second's traffic, then one fleet check —
   lease, claimed seconds, merge, 64 KS tests on the merged window, output monitor, the verdict back to Redis.

    python bench/live_fleet.py --markdown
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import time
from typing import Any

import numpy as np

from modelshield.monitor.live import LiveMonitor, sketch_from_inputs
from modelshield.monitor.outputs import OutputReference
from modelshield.serve.config import MonitorConfig
from modelshield.serve.live import GatewayLive
from modelshield.serve.metrics import GatewayMetrics


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training inputs (the reference), test inputs and the test outputs of a logistic regression."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order] / 16, y[order]
    with threadpool_limits(1):
        model = LogisticRegression(max_iter=500).fit(x[:1200], y[:1200])
    return x[:1200], x[1200:], model.predict_proba(x[1200:])


def gateway_live(reference: np.ndarray, ref_probs: np.ndarray, redis_url: str | None, prefix: str) -> GatewayLive:
    setting = MonitorConfig(window=1000, min_rows=100, check_seconds=1.0)
    monitor = LiveMonitor(
        sketch_from_inputs(reference), OutputReference.from_outputs(ref_probs), width=64, window=1000, min_rows=100
    )
    return GatewayLive(
        ["demo"], {"demo": (monitor, setting)}, GatewayMetrics(), None, redis_url=redis_url, redis_prefix=prefix
    )


def request(live: GatewayLive, x: np.ndarray, probs: np.ndarray) -> None:
    live.observe_inputs("demo", x)
    live.observe_outputs("demo", probs)
    live.observe_request({"action": "predict", "model": "demo", "decision": "allow"})


def hooks_us(
    lives: dict[str, GatewayLive], test: np.ndarray, probs: np.ndarray, batch: int, n: int
) -> dict[str, float]:
    """µs per request of the hooks, each scope timed in alternating blocks of 1,000 requests."""
    times: dict[str, list[float]] = {k: [] for k in lives}
    for block in range(n // 1000):
        for name, live in lives.items():
            started = time.perf_counter()
            for i in range(1000):
                at = (block * 1000 + i) * batch % (len(test) - batch)
                request(live, test[at : at + batch], probs[at : at + batch])
            times[name].append((time.perf_counter() - started) / 1000 * 1e6)
    return {k: statistics.median(v) for k, v in times.items()}


async def flushes(
    live: GatewayLive, test: np.ndarray, probs: np.ndarray, batch: int, rate: int, n: int
) -> dict[str, float]:
    """A simulated second of ``rate`` requests, then one flush; medians over ``n`` seconds."""
    seconds, sizes = [], []
    monitor = live.watches["demo"].monitor
    assert monitor is not None and live.fleet is not None
    await live.flush()  # what earlier measurements left
    for _ in range(n):
        for i in range(rate):
            at = i * batch % (len(test) - batch)
            request(live, test[at : at + batch], probs[at : at + batch])
        started = time.perf_counter()
        assert await live.flush(), live.fleet.error
        seconds.append(time.perf_counter() - started)
        sizes.append(len(sample_interval(live, test, probs, batch, rate)))
    flush = statistics.median(seconds)
    return {"flush_ms": flush * 1e3, "per_request_us": flush / rate * 1e6, "bytes": statistics.median(sizes)}


def sample_interval(live: GatewayLive, test: np.ndarray, probs: np.ndarray, batch: int, rate: int) -> str:
    """The JSON one flush sends for a second of ``rate`` requests (measured on a scratch monitor)."""
    monitor = live.watches["demo"].monitor
    assert monitor is not None
    scratch = LiveMonitor(monitor.sketch, monitor.outputs.reference if monitor.outputs else None, width=64, window=1000)
    for i in range(rate):
        at = i * batch % (len(test) - batch)
        scratch.observe(test[at : at + batch])
        scratch.observe_outputs(probs[at : at + batch])
    interval = scratch.drain()
    assert interval is not None
    return interval.to_json()


async def evaluation(
    lives: list[GatewayLive], test: np.ndarray, probs: np.ndarray, batch: int, rate: int, n: int
) -> float:
    """ms of one fleet check by the lease holder, after each worker flushed a second of ``rate`` requests."""
    from modelshield.serve import live as live_module

    times = []
    leader = lives[0]
    watch = leader.watches["demo"]
    for _ in range(n):
        for live in lives:
            for i in range(rate):
                at = i * batch % (len(test) - batch)
                request(live, test[at : at + batch], probs[at : at + batch])
            await live.flush()
        await asyncio.sleep(live_module.GRACE_SECONDS + 1.05)  # the flushed second is due
        started = time.perf_counter()
        await leader._check_fleet(watch)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


async def run(args: argparse.Namespace) -> dict[str, Any]:
    reference, test, probs = digits()
    ref_probs = probs[:300]
    prefix = f"bench-live-{secrets.token_hex(4)}"
    worker = gateway_live(reference, ref_probs, None, prefix)
    fleet = gateway_live(reference, ref_probs, args.redis, prefix)
    hooks = hooks_us({"worker": worker, "fleet": fleet}, test, probs, args.batch, args.requests)
    out: dict[str, Any] = {"batch": args.batch, "hooks_us": hooks, "flush": {}}
    for rate in args.rates:
        out["flush"][rate] = await flushes(fleet, test, probs, args.batch, rate, args.seconds)
    second = gateway_live(reference, ref_probs, args.redis, prefix)
    out["check_ms"] = await evaluation([fleet, second], test, probs, args.batch, max(args.rates), 3)
    out["machine"] = f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}"
    return out


def markdown(r: dict[str, Any]) -> str:
    h = r["hooks_us"]
    rows = [
        "| measure | worker scope | fleet scope (Redis) |",
        "|---|---|---|",
        f"| per-request hooks, batch of {r['batch']} (in-process, median of 1,000-request blocks) | "
        f"{h['worker']:.1f} µs | {h['fleet']:.1f} µs |",
    ]
    for rate, f in r["flush"].items():
        rows.append(
            f"| one flush after a second of {rate} requests (drain, JSON of {f['bytes'] / 1024:.1f} KiB, one pipeline) "
            f"| — | {f['flush_ms']:.2f} ms = {f['per_request_us']:.1f} µs per request |"
        )
    rows.append(
        f"| one fleet check by the lease holder (2 workers, 64 KS tests on the merged window) | — | {r['check_ms']:.1f} ms |"
    )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--batch", type=int, default=10, help="inputs per request")
    ap.add_argument("--requests", type=int, default=20_000, help="requests timed per scope for the hooks")
    ap.add_argument("--rates", type=int, nargs="+", default=[10, 100, 1000], help="requests per second flushed")
    ap.add_argument("--seconds", type=int, default=15, help="flushes timed per rate")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    result = asyncio.run(run(args))
    print(markdown(result) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
