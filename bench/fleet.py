"""Gateway replicas behind HAProxy: throughput with 1, 2, 4 replicas, rate-limit accuracy across them, revocation time.

Each fleet is ``tests/fleet/fleet.py``'s: N real ``modelshield serve`` processes on one fresh PostgreSQL database
(API keys, audit log with ``durability = "fsync"``) and the local Redis (rate limits, quotas, revocations),
behind ``haproxy`` run from ``deploy/haproxy/haproxy.cfg``. For each N:

- throughput: ``wrk`` (C, one thread, a Lua script cycling over ``--keys`` API keys so no identity hits its
  limit) through the balancer for ``--seconds``: requests/s, p50/p99 latency, and the CPU seconds each replica
  and HAProxy spent per 1,000 requests (from /proc). The scaling ratio is req/s at N over req/s at 1. With N=1
  the replica is also driven directly, without the balancer, to show HAProxy's own cost.
- rate-limit accuracy: a fresh identity, limit ``--rps`` with burst = rps, offered 10x that (paced asyncio
  client, 32 connections, through the balancer) for ``--burst-seconds``: 200s against burst + rps x seconds.
- revocation propagation (N >= 2): a fresh key used on every replica, revoked through one replica's admin API,
  then every replica asked in turn until each refuses it: seconds to the last replica's first refusal.

On a machine with fewer cores than replicas the replicas share them: the scaling ratio then measures
contention, and the CPU per request is the figure to plan with.

    python bench/fleet.py --replicas 1,2,4 --seconds 10 [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.fleet.fleet import PREDICT, Fleet, save_demo_weights  # noqa: E402

WRK_LUA = """
local keys = {}
for line in io.lines(os.getenv("MS_KEYS_FILE")) do keys[#keys + 1] = line end
local body = io.open(os.getenv("MS_BODY_FILE"), "rb"):read("*a")
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", os.getenv("MS_PATH"), {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. keys[n % #keys + 1]}, body)
end
function done(summary, latency, requests)
  io.write(string.format('MSJSON {"requests": %d, "us": %d, "p50_us": %d, "p99_us": %d, "non2xx": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return f"{model}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start"


def wrk(fleet: Fleet, work: Path, url: str, seconds: float, connections: int, keys: int) -> dict[str, Any]:
    """One wrk run, over ``keys`` identities new to the fleet (so every run starts from the same per-caller state:
    empty extraction-signal windows, full buckets); requests/s, latency and the CPU seconds per 1,000 requests
    of each replica and HAProxy."""
    subjects = [f"fleet-{fleet.tag}-load{time.monotonic_ns()}-{i}" for i in range(keys)]
    (work / "keys.txt").write_text("\n".join(fleet.create_keys(subjects)) + "\n")
    env = {
        **os.environ,
        "MS_KEYS_FILE": str(work / "keys.txt"),
        "MS_BODY_FILE": str(work / "body.json"),
        "MS_PATH": PREDICT,
    }
    cpu0 = fleet.cpu_seconds()
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(work / "wrk.lua"), url],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 60,
        check=True,
    )
    cpu1 = fleet.cpu_seconds()
    data = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("MSJSON "))[7:])
    n = max(1, data["requests"])
    per_1k = {name: round(1000 * (cpu1[name] - cpu0[name]) / n, 3) for name in cpu1}
    replicas = [name for name in per_1k if name != "haproxy"]
    return {
        "requests": data["requests"],
        "rps": data["requests"] / (data["us"] / 1e6),
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "non_2xx": data["non2xx"],
        "socket_errors": data["errors"],
        "cpu_s_per_1k": per_1k,
        "replica_cpu_s_per_1k": round(sum(per_1k[r] for r in replicas), 3),
        "share_per_replica": {
            r: round((cpu1[r] - cpu0[r]) / max(1e-9, sum(cpu1[x] - cpu0[x] for x in replicas)), 3) for r in replicas
        },
    }


def burst(fleet: Fleet, rps: float, seconds: float) -> dict[str, Any]:
    """A fresh identity offered 10x its limit through the balancer; 200s against burst + rps x seconds."""
    key = fleet.create_key(f"fleet-{fleet.tag}-burst-{time.monotonic_ns()}")
    answers = fleet.drive(seconds, concurrency=32, rate=10 * rps, keys=[key])
    span = max(a.sent for a in answers) - min(a.sent for a in answers)  # as Redis saw them, one latency later
    statuses = Counter(a.status for a in answers)
    expected = rps + rps * span
    return {
        "offered_rps": round(len(answers) / span, 1),
        "allowed": statuses[200],
        "expected": round(expected, 1),
        "error_pct": round(100 * (statuses[200] - expected) / expected, 2),
        "statuses": dict(statuses),
    }


def revocations(fleet: Fleet, count: int) -> dict[str, Any]:
    """``count`` keys, each used on every replica, then revoked through replica i mod N; propagation seconds."""
    keys = fleet.create_keys([f"fleet-{fleet.tag}-revoke{i}" for i in range(count)])
    times, accepted = [], 0
    for i, key in enumerate(keys):
        for replica in fleet.replicas:
            assert fleet.predict(key, url=replica.url)[0] == 200
        got = fleet.revoke_and_time(key, via=i % len(fleet.replicas), timeout=30)
        times.append(max(got.seconds.values()))
        accepted += sum(got.accepted_after.values())
    return {
        "count": count,
        "p50_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
        "all_s": [round(t, 3) for t in times],
        "accepted_after_revocation": accepted,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="ms-bench-fleet-"))
    try:
        weights = work / "digits.safetensors"
        save_demo_weights(weights)
        (work / "wrk.lua").write_text(WRK_LUA)
        result: dict[str, Any] = {"machine": machine(), "fleets": {}}
        for n in args.replicas:
            folder = work / f"fleet{n}"
            with Fleet(folder, replicas=n, weights=weights, rps=args.rps, burst=args.rps) as fleet:
                (work / "body.json").write_bytes(fleet.body)
                wrk(fleet, work, fleet.url + PREDICT, 2, args.connections, args.keys)  # warm-up
                targets = {"balanced": fleet.url, **({"direct": fleet.replicas[0].url} if n == 1 else {})}
                runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
                for _ in range(args.rounds):  # interleaved, best of the rounds: the machine is shared
                    for name, url in targets.items():
                        runs[name].append(wrk(fleet, work, url + PREDICT, args.seconds, args.connections, args.keys))
                row: dict[str, Any] = {name: max(got, key=lambda r: r["rps"]) for name, got in runs.items()}
                row["rps_all_rounds"] = {name: [round(r["rps"]) for r in got] for name, got in runs.items()}
                row["burst"] = [burst(fleet, args.rps, args.burst_seconds) for _ in range(args.bursts)]
                if n >= 2 and args.revocations:
                    row["revocation"] = revocations(fleet, args.revocations)
                verify = fleet.verify_audit()
                row["audit_verify"] = (verify.stdout or verify.stderr).strip().splitlines()[-1:]
                row["audit_verify_exit"] = verify.returncode
            result["fleets"][n] = row
            print(f"{n} replica(s): {json.dumps(row['balanced'])}", file=sys.stderr)
        base = result["fleets"][args.replicas[0]]["balanced"]["rps"]
        for row in result["fleets"].values():
            row["scaling"] = round(row["balanced"]["rps"] / base, 2)
        result["load_average_end"] = round(os.getloadavg()[0], 1)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"Machine: {result['machine']} (load average {result['load_average_end']} at the end). "
        f"wrk -t1 -c{args.connections} -d{args.seconds:g}s through HAProxy, {args.keys} identities, best of "
        f"{args.rounds} interleaved runs; "
        'audit `durability = "fsync"` on PostgreSQL 15.',
        "",
        "| replicas | req/s | scaling | p50 ms | p99 ms | replica CPU s / 1k req | HAProxy CPU s / 1k req "
        "| share per replica | non-2xx |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for n, row in result["fleets"].items():
        b = row["balanced"]
        rounds = "; ".join(f"{k}: {v}" for k, v in row["rps_all_rounds"].items())
        notes.append(f"- {n} replica(s), req/s of each round: {rounds}")
        shares = " / ".join(f"{v:.2f}" for v in b["share_per_replica"].values())
        lines.append(
            f"| {n} | {b['rps']:.0f} | {row['scaling']:.2f} | {b['p50_ms']:.1f} | {b['p99_ms']:.1f} | "
            f"{b['replica_cpu_s_per_1k']:.2f} | {b['cpu_s_per_1k'].get('haproxy', 0):.3f} | {shares} | "
            f"{b['non_2xx'] + b['socket_errors']} |"
        )
        if "direct" in row:
            d = row["direct"]
            lines.append(
                f"| 1, no balancer | {d['rps']:.0f} | — | {d['p50_ms']:.1f} | {d['p99_ms']:.1f} | "
                f"{d['replica_cpu_s_per_1k']:.2f} | — | 1.00 | {d['non_2xx'] + d['socket_errors']} |"
            )
    lines += ["", *notes]
    lines += [
        "",
        f"Rate limit {args.rps:g}/s (burst {args.rps:g}) per identity, offered 10x for {args.burst_seconds:g} s "
        "through the balancer (200s against burst + rate x seconds):",
        "",
        "| replicas | offered req/s | allowed | expected | error |",
        "|---|---|---|---|---|",
    ]
    for n, row in result["fleets"].items():
        for b in row["burst"]:
            lines.append(
                f"| {n} | {b['offered_rps']:.0f} | {b['allowed']} | {b['expected']:.1f} | {b['error_pct']:+.2f} % |"
            )
    rev = [(n, row["revocation"]) for n, row in result["fleets"].items() if "revocation" in row]
    if rev:
        lines += [
            "",
            "Revocation through one replica's admin API; every replica then asked in turn until it refuses the key "
            "(seconds to the last replica's first 401, including that request's round trip):",
            "",
            "| replicas | revocations | p50 s | max s | requests accepted after the revocation |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {n} | {r['count']} | {r['p50_s']:.3f} | {r['max_s']:.3f} | {r['accepted_after_revocation']} |"
            for n, r in rev
        ]
    verified = all(row["audit_verify_exit"] == 0 for row in result["fleets"].values())
    lines += ["", f"`modelshield audit verify` after each run: {'intact' if verified else 'FAILED'}."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--keys", type=int, default=200, help="identities wrk cycles over (each under its limit)")
    p.add_argument("--rounds", type=int, default=2, help="throughput runs per fleet (interleaved; best kept)")
    p.add_argument("--rps", type=float, default=20.0, help="per-identity limit (and burst) for the burst test")
    p.add_argument("--burst-seconds", type=float, default=5.0)
    p.add_argument("--bursts", type=int, default=2, help="burst runs per fleet")
    p.add_argument("--revocations", type=int, default=5, help="revocations timed per fleet of 2+ replicas")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    if shutil.which("wrk") is None or shutil.which("haproxy") is None:
        sys.exit("bench/fleet.py needs wrk and haproxy: apt-get install -y wrk haproxy")
    result = run(args)
    print(markdown(result, args) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
