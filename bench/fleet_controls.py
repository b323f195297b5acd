"""Fleet-wide controls: how long a change made on one gateway replica takes to apply on another.

Two replicas (``tests/serve/server/fleet_controls.py``: real ``modelshield serve`` processes, or with
``--threads`` apps in threads of this process) share one fresh PostgreSQL database. Two ways a change travels:

- Redis push: Redis configured, the poll set to 30 s, so what arrives within a second came through Redis;
- poll: no Redis, each worker polls the store's generation every ``--poll`` seconds (2 s, the default).

For each, ``--changes`` rate-limit overrides are set through replica A's admin API, at random moments. Timed
from sending the call to A: until B logged that it applied the change's generation (process replicas: the time
stamp of B's ``fleet controls: generation N applied`` line, same host clock), until B's
``GET /v1/admin/controls`` first reports it (what a client sees; B asked in a loop, each ask an audited request),
and A's own answer. Then ``--pins`` pins alternating versions 1 and 2 on A, timed until B answers predictions
with the pinned version (this includes B loading and verifying the version).

    python bench/fleet_controls.py [--threads] [--changes 30] [--pins 6] [--poll 2] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.fleet.fleet import ensure_postgres, fresh_database, save_demo_weights  # noqa: E402
from tests.serve.server.fleet_controls import ControlFleet, seconds_until  # noqa: E402

X = [[[[0.0] * 8] * 8]]


def machine() -> str:
    model = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.processor(),
    )
    return f"{model}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start"


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_s": round(statistics.median(values), 3),
        "max_s": round(max(values), 3),
        "mean_s": round(statistics.fmean(values), 3),
    }


def _applied_at(log: Path, gen: int) -> float:
    """When the replica writing ``log`` applied generation ``gen`` (its log line's time stamp, epoch seconds)."""
    marker = f"fleet controls: generation {gen} applied by"
    for line in log.read_text(errors="replace").splitlines():
        if marker in line:
            return datetime.fromisoformat(json.loads(line)["time"]).timestamp()
    raise RuntimeError(f"{log} has no line for generation {gen}")


def measure(fleet: ControlFleet, changes: int, pins: int, spread: float) -> dict[str, Any]:
    """Propagation A -> B of ``changes`` overrides and ``pins`` pins; answer times on A."""
    a, b = fleet.urls
    logged: list[float] = []
    seen: list[float] = []
    answered: list[float] = []
    pinned: list[float] = []
    for i in range(changes):
        time.sleep(random.uniform(0, spread))  # a random moment relative to B's poll
        sent, started = time.time(), time.monotonic()
        body = {"subject": f"bench-{i}", "rps": 1, "burst": 1, "expires_in": 600}
        gen = int(fleet.admin(a, "/v1/admin/limits", body)["generation"])
        answered.append(time.monotonic() - started)

        def applied(g: int = gen) -> bool:
            return bool(fleet.controls(b)["fleet"]["generation_applied"] >= g)

        seconds_until(applied, 60, "B applying")
        seen.append(time.monotonic() - started)
        if b in fleet.logs:
            logged.append(_applied_at(fleet.logs[b], gen) - sent)
    for i in range(pins):
        want = "1" if i % 2 == 0 else "2"
        started = time.monotonic()
        fleet.admin(a, "/v1/admin/models/digits/pin", {"version": int(want)})

        def serves(w: str = want) -> bool:
            return _served(fleet, b) == w

        seconds_until(serves, 60, "B serving the pinned version")
        pinned.append(time.monotonic() - started)
    out = {"override_seen_on_b": _stats(seen), "answer_on_a": _stats(answered), "pin_served_on_b": _stats(pinned)}
    return {"override_applied_on_b": _stats(logged), **out} if logged else out


def _served(fleet: ControlFleet, url: str) -> str:
    r = fleet.predict(url, "alice", X)
    return str(r.json().get("version")) if r.status_code == 200 else str(r.status_code)


def run(args: argparse.Namespace) -> dict[str, Any]:
    ensure_postgres()
    result: dict[str, Any] = {"machine": machine(), "replicas": "threads" if args.threads else "processes"}
    with tempfile.TemporaryDirectory(prefix="ms-fleet-controls-") as tmp:
        weights = Path(tmp) / "digits.safetensors"
        save_demo_weights(weights)
        for mode, redis, poll in (("redis_push", True, 30.0), ("poll", False, args.poll)):
            with fresh_database() as db_url:
                work = Path(tmp) / mode
                with ControlFleet(
                    work, weights, db_url, redis=redis, poll_seconds=poll, processes=not args.threads
                ) as f:
                    result[mode] = {"poll_seconds": poll, **measure(f, args.changes, args.pins, spread=min(poll, 2.0))}
            print(json.dumps({mode: result[mode]}), file=sys.stderr)
    return result


def markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    def ms(stats: dict[str, float] | None) -> str:
        return "—" if stats is None else f"{stats['p50_s'] * 1000:.0f} / {stats['max_s'] * 1000:.0f} ms"

    rows = [
        "| path | poll | override applied on B (its log) | override seen on B (its API) | A's answer "
        "| pin served on B |",
        "|---|---|---|---|---|---|",
    ]
    for mode, label in (("redis_push", "Redis push"), ("poll", "poll only (no Redis)")):
        r = result[mode]
        rows.append(
            f"| {label} | {r['poll_seconds']:g} s | {ms(r.get('override_applied_on_b'))} | "
            f"{ms(r['override_seen_on_b'])} | {ms(r['answer_on_a'])} | {ms(r['pin_served_on_b'])} |"
        )
    flags = " --threads" if args.threads else ""
    return (
        f"`python bench/fleet_controls.py{flags} --changes {args.changes} --pins {args.pins} --poll {args.poll:g}` "
        f"— two replicas ({result['replicas']}) on one PostgreSQL database; {result['machine']}. "
        f"p50 / max over {args.changes} overrides and {args.pins} pins, each timed from sending the call to A.\n\n"
        + "\n".join(rows)
        + "\n"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", action="store_true", help="replicas as apps in threads of this process")
    p.add_argument("--changes", type=int, default=30)
    p.add_argument("--pins", type=int, default=6)
    p.add_argument("--poll", type=float, default=2.0, help="the poll interval of the no-Redis run (s)")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    result = run(args)
    print(markdown(result, args) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
