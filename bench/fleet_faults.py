"""Faults across a fleet of gateway replicas behind HAProxy: how long each takes to heal, and what is lost.

Two replicas (``tests/fleet/fleet.py``) on a private PostgreSQL 15 and a private Redis (``tests/fleet/services.py``:
child processes this script kills and restarts; the machine's shared servers are never touched), under steady
load through the balancer: ``--rate`` requests/s from ``--connections`` keep-alive connections, every request with
its own X-Request-ID. Each fault runs ``--rounds`` times, ``--lead`` seconds into a ``--seconds`` load:

- ``replica kill -9``: seconds until HAProxy's health checks mark the replica DOWN, the requests lost with it
  (a 502 or a cut connection), then seconds from its restart to UP in HAProxy again.
- ``postgres restart``: PostgreSQL's fast shutdown, ``--down`` seconds, start.
- ``postgres kill -9``: every PostgreSQL process killed, ``--down`` seconds, start (which replays the WAL).
- ``redis kill -9``: ``--down`` seconds, start (Redis keeps nothing: the rate-limit buckets start full).
- ``postgres hung`` / ``redis hung``: the server and its children stopped (SIGSTOP) for ``--down`` seconds, then
  continued: connections stay open and nothing answers, the case where only client-side timeouts help.

Per fault: the answers that were not 2xx, the slowest answer, and the recovery — seconds from the server
answering again (its start returned, or it was continued) to the first 2xx the load got through the balancer. After every
round: 2xx answers missing from the audit log (must be 0) and ``modelshield audit verify`` on the database.

    python bench/fleet_faults.py --rounds 3 [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.fleet import machine  # noqa: E402
from tests.fleet.fleet import Answer, Fleet, fresh_database, save_demo_weights  # noqa: E402
from tests.fleet.services import Postgres, Redis, private_postgres, private_redis  # noqa: E402

FAULTS = ("replica kill -9", "postgres restart", "postgres kill -9", "postgres hung", "redis kill -9", "redis hung")


def inject(fault: str, fleet: Fleet, pg: Postgres, redis: Redis, down: float) -> tuple[float, dict[str, float]]:
    """Cause ``fault``; returns when the broken part answers again (for a replica: as soon as HAProxy marks it
    down) and what was timed on the way."""
    if fault == "replica kill -9":
        fleet.kill(0)
        return time.monotonic(), {"marked_down_s": fleet.wait_states({"r1": "DOWN", "r2": "UP"}, timeout=30)}
    server: Postgres | Redis = redis if fault.startswith("redis") else pg
    if fault.endswith("hung"):
        server.pause()
        time.sleep(down)
        server.resume()
        return time.monotonic(), {}
    server.kill() if "kill" in fault else server.stop()
    time.sleep(down)
    started = time.monotonic()
    server.start()
    back = time.monotonic()
    return back, {"start_s": back - started}


def one_round(fault: str, fleet: Fleet, pg: Postgres, redis: Redis, args: argparse.Namespace) -> dict[str, Any]:
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(fleet.drive, args.seconds, concurrency=args.connections, rate=args.rate)
        time.sleep(args.lead)
        faulted = time.monotonic()
        back, timed = inject(fault, fleet, pg, redis, args.down)
        answers: list[Answer] = load.result(timeout=args.seconds + 60)
    statuses = Counter(a.status for a in answers)
    after = [a.sent + a.seconds for a in answers if a.status == 200 and a.sent >= back]
    row: dict[str, Any] = {
        **timed,
        "requests": len(answers),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "not_2xx": sum(n for s, n in statuses.items() if not 200 <= s < 300),
        "slowest_s": round(max(a.seconds for a in answers), 3),
        "recovery_s": round(min(after) - back, 3) if after else None,
        "fault_to_2xx_s": round(min(after) - faulted, 3) if after else None,
    }
    if fault == "replica kill -9":
        started = time.monotonic()
        fleet.start_replica(0)
        row["rejoin_s"] = round(fleet.wait_states({"r1": "UP"}, timeout=60) + time.monotonic() - started, 3)
    answered = {a.request_id for a in answers if 200 <= a.status < 300}
    row["missing_from_audit"] = len(answered - {e.get("request_id") for e in fleet.audit_events()})
    row["audit_verify_exit"] = fleet.verify_audit().returncode
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine(), "faults": {}}
    work = Path(tempfile.mkdtemp(prefix="ms-bench-fleet-faults-"))
    try:
        weights = work / "digits.safetensors"
        save_demo_weights(weights)
        with (
            private_postgres() as pg,
            private_redis() as redis,
            fresh_database(pg.url.rsplit("/", 1)[0]) as db,
            Fleet(work / "fleet", replicas=2, db_url=db, redis_url=redis.url, weights=weights) as fleet,
        ):
            for fault in args.faults:
                rows = []
                for _ in range(args.rounds):
                    fleet.wait_states({r.name: "UP" for r in fleet.replicas}, timeout=60)
                    rows.append(one_round(fault, fleet, pg, redis, args))
                    print(f"{fault}: {json.dumps(rows[-1])}", file=sys.stderr)
                result["faults"][fault] = rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_average_end"] = round(os.getloadavg()[0], 1)
    return result


def _spread(rows: list[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return "—"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"Machine: {result['machine']} (load average {result['load_average_end']} at the end). Two replicas behind "
        f"HAProxy (deploy/haproxy/haproxy.cfg) on a private PostgreSQL 15 and Redis; {args.rate:g} req/s offered "
        f"from {args.connections} connections; fault {args.lead:g} s into a {args.seconds:g} s load, "
        f"{args.down:g} s down; {args.rounds} rounds each, median (min–max).",
        "",
        "| fault | marked down / server start s | recovery s | fault to first 2xx s | not 2xx per round "
        "| slowest answer s | 2xx missing from audit | audit verify |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fault, rows in result["faults"].items():
        first = _spread(rows, "marked_down_s") if fault.startswith("replica") else _spread(rows, "start_s")
        recovery = "— (r2 serves)" if fault.startswith("replica") else _spread(rows, "recovery_s")
        not_2xx = "/".join(str(r["not_2xx"]) for r in rows)
        slowest = max(r["slowest_s"] for r in rows)
        missing = sum(r["missing_from_audit"] for r in rows)
        verified = "intact" if all(r["audit_verify_exit"] == 0 for r in rows) else "FAILED"
        lines.append(
            f"| {fault} | {first} | {recovery} | {_spread(rows, 'fault_to_2xx_s')} | {not_2xx} | {slowest:.2f} "
            f"| {missing} | {verified} |"
        )
    rejoin = [r for r in result["faults"].get("replica kill -9", []) if "rejoin_s" in r]
    if rejoin:
        lines += ["", f"Killed replica restarted to UP in HAProxy again: {_spread(rejoin, 'rejoin_s')} s."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--faults", type=lambda s: s.split(","), default=list(FAULTS), help=", ".join(FAULTS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=12.0, help="load per round")
    p.add_argument("--lead", type=float, default=2.0, help="seconds of load before the fault")
    p.add_argument("--down", type=float, default=2.0, help="seconds a server stays down")
    p.add_argument("--rate", type=float, default=100.0, help="requests/s offered through the balancer")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    unknown = set(args.faults) - set(FAULTS)
    if unknown:
        sys.exit(f"unknown fault(s) {', '.join(sorted(unknown))}; choose from: {', '.join(FAULTS)}")
    if shutil.which("haproxy") is None:
        sys.exit("bench/fleet_faults.py needs haproxy: apt-get install -y haproxy")
    result = run(args)
    print(markdown(result, args) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
