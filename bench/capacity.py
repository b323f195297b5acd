"""Capacity of one gateway replica on PostgreSQL and Redis, and what it implies for a fleet (docs/capacity.md).

One real ``modelshield serve`` (the demo digits CNN, every control on: API keys, policy, rate limits and the
daily quota in Redis, the signed audit log and the key store in PostgreSQL) with 1 and then 2 uvicorn worker
processes, driven by ``wrk`` (POST body and API key from a Lua script) at a fixed concurrency. PostgreSQL and
Redis are the bench's own servers (started on free ports, removed afterwards), so their counters see this
gateway only. For each run:

- requests/s, p50/p99, and the gateway's CPU seconds per request (its whole process tree, from /proc);
- PostgreSQL's cost: commits and rows inserted/updated per request (``pg_stat_database``), WAL bytes per request
  (``pg_current_wal_lsn``);
- Redis commands per request, by command (``INFO commandstats``).

Then the plan: replicas per 10k requests/s at the HPA's 70 % CPU target, and the database write rate at that load.

    apt-get install -y wrk        # bench only
    python bench/capacity.py --seconds 10 --concurrency 32 [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import redis

if __package__ in (None, ""):  # run as a script: make `bench` and `modelshield` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway import WRK_LUA, Server, prepare, wrk  # noqa: E402
from bench.gateway import write_config as local_config  # noqa: E402

HPA_CPU_TARGET = 0.70  # deploy/k8s/hpa.yaml: averageUtilization 70 (of the pod's CPU request)
POD_CPU_REQUEST = 1.0  # deploy/k8s/deployment.yaml: requests.cpu "1"
TARGET_RPS = 10_000
STATS_QUIET_SECONDS = 11.0  # PostgreSQL flushes an idle backend's counters within 10 s
ROUND_TRIPS = {"evalsha", "eval", "ping", "publish", "smembers", "sadd", "srem", "subscribe"}  # sent by the gateway


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU time of ``root`` and every descendant (uvicorn's worker processes), from /proc."""
    parent: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid, t in times.items():
        p = pid
        while p > 1 and p != root:
            p = parent.get(p, 0)
        if p == root:
            total += t
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """A PostgreSQL server of the bench's own (``initdb`` in a temporary folder, a free port, default settings:
    ``fsync`` and ``synchronous_commit`` on), so its WAL and commit counters see the gateway's writes only."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ms-capacity-pg-"))
        self.port = free_port()
        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses to run as root
        if self._as:
            shutil.chown(self.root, "postgres")
        data = str(self.root / "data")
        self._run(str(self.bin / "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(str(self.bin / "pg_ctl"), "-D", data, "-l", str(self.root / "log"), "-w", "-o", opts, "start")
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as, *cmd], check=True, capture_output=True, timeout=120)

    def stats(self) -> dict[str, float]:
        """Commits, rows and WAL so far, and the client connections open now (this query's own not counted).

        A busy backend flushes its counters to ``pg_stat_database`` at most once a second, an idle one within
        10 s, an exiting one at once: read them after 11 s of quiet, or after the gateway has exited."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit, tup_inserted, tup_updated, pg_current_wal_lsn() - '0/0'::pg_lsn, "
                "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') "
                "FROM pg_stat_database WHERE datname = 'postgres'"
            ).fetchone()
        assert row is not None
        commits, inserted, updated, wal, connections = (float(v) for v in row)
        return {"commits": commits, "rows": inserted, "updated": updated, "wal": wal, "connections": connections - 1}

    def audit_bytes_per_record(self) -> float:
        """The audit table's size on disk (heap, indexes, TOAST) per record: storage growth per request."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_total_relation_size('audit_records'), count(*) FROM audit_records").fetchone()
        assert row is not None
        return float(row[0]) / max(1, int(row[1]))

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A Redis server of the bench's own (no persistence), so its command counters see the gateway's only."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis.from_url(self.url)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                self.client.ping()
                return
            time.sleep(0.05)
        raise RuntimeError("the bench's Redis did not start")

    def commands(self) -> dict[str, float]:
        """Calls per command, and ``usec``: Redis's own time spent executing them all (its CPU cost)."""
        stats = self.client.info("commandstats")
        calls = {k.removeprefix("cmdstat_"): float(v["calls"]) for k, v in stats.items()}
        top = [v for k, v in stats.items() if k.removeprefix("cmdstat_") in ROUND_TRIPS]  # scripts include their calls
        return {**calls, "usec": float(sum(v["usec"] for v in top))}

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


def write_config(ctx: dict[str, Any], db_url: str, redis_url: str, workers: int) -> Path:
    w = ctx["work"]
    text = (
        f'[models.demo]\npath = "{ctx["weights"]}"\ndigest = "{ctx["digest"]}"\n'
        'arch = "modelshield.demo:DigitsCNN"\ninput_shape = [1, 8, 8]\n\n'
        f'[server]\nworkers = {workers}\nstore_url = "{db_url}"\n\n'
        f'[auth]\napi_key_pepper_file = "{ctx["pepper"]}"\n\n'
        f'[audit]\ndb_url = "{db_url}"\nsigning_key_file = "{w / "audit.pem"}"\n'
        f'public_key_file = "{w / "audit.pub.pem"}"\n\n'
        f'[rate_limits]\nredis_url = "{redis_url}"\nper_identity_rps = 1e6\nper_identity_burst = 1e6\n'
        "per_model_rps = 1e6\nper_model_burst = 1e6\ndaily_quota = 1000000000\n\n"
        '[logging]\nlevel = "warning"\n'
    )
    path = w / f"capacity-{workers}.toml"
    path.write_text(text)
    return path


def audit_append_seconds(url: str) -> tuple[float, float]:
    """(sum, count) of the gateway's audit-append histogram: how long requests waited for their record's commit
    (with several workers, the one worker that answers)."""
    import httpx

    totals = {"_sum": 0.0, "_count": 0.0}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        for suffix in totals:
            if line.startswith(f"modelshield_audit_append_seconds{suffix} "):
                totals[suffix] = float(line.split()[-1])
    return totals["_sum"], totals["_count"]


def measure(ctx: dict[str, Any], workers: int, *, seconds: float, concurrency: int) -> dict[str, Any]:
    """One replica with ``workers`` processes on fresh servers: throughput, CPU and store cost per request."""
    from modelshield.serve.apikeys import ApiKeyStore

    pg, rd = PrivatePostgres(), PrivateRedis()
    try:
        store = ApiKeyStore.open(pg.url, pepper_file=ctx["pepper"])
        key = store.create("capacity", ["predictor"], attributes={"clearance": "internal"}).plaintext
        store.close()
        server = Server(write_config(ctx, pg.url, rd.url, workers))
        try:
            wrk(ctx, server, key, connections=8, seconds=2, cpus=None)  # warm-up: imports, connection pools
            time.sleep(STATS_QUIET_SECONDS)
            s0, r0, cpu0, a0 = (
                pg.stats(),
                rd.commands(),
                tree_cpu_seconds(server.proc.pid),
                audit_append_seconds(server.url),
            )
            run = wrk(ctx, server, key, connections=concurrency, seconds=seconds, cpus=None)
            cpu1, r1, connections = tree_cpu_seconds(server.proc.pid), rd.commands(), pg.stats()["connections"]
            a1 = audit_append_seconds(server.url)
        finally:
            server.stop()
        s1 = pg.stats()  # the gateway's backends have exited, flushing their counters
        audit_bytes = pg.audit_bytes_per_record()
    finally:
        rd.stop()
        pg.stop()
    n = max(1, run["requests"])
    redis_ops = {k: (v - r0.get(k, 0.0)) / n for k, v in r1.items() if k not in ("info", "usec") and v > r0.get(k, 0.0)}
    return {
        "workers": workers,
        "concurrency": concurrency,
        "requests": run["requests"],
        "rps": run["rps"],
        "p50_ms": run["p50_ms"],
        "p99_ms": run["p99_ms"],
        "non_2xx": run["non_2xx"],
        "socket_errors": run["socket_errors"],
        "cpu_ms_per_request": 1000 * (cpu1 - cpu0) / n,
        "pg_connections": connections,
        "pg_commits_per_s": (s1["commits"] - s0["commits"] - 1) / n * run["rps"],  # -1: the stats query's own
        "pg_commits_per_request": (s1["commits"] - s0["commits"] - 1) / n,
        "pg_rows_inserted_per_request": (s1["rows"] - s0["rows"]) / n,
        "pg_rows_updated_per_request": (s1["updated"] - s0["updated"]) / n,
        "wal_bytes_per_request": (s1["wal"] - s0["wal"]) / n,
        "audit_table_bytes_per_record": audit_bytes,
        "audit_append_ms_mean": 1000 * (a1[0] - a0[0]) / max(1.0, a1[1] - a0[1]),
        "redis_round_trips_per_request": sum(v for k, v in redis_ops.items() if k in ROUND_TRIPS),
        "redis_commands_per_request": sum(redis_ops.values()),  # the scripts' own commands included
        "redis_us_per_request": (r1["usec"] - r0["usec"]) / n,
        "redis_commands": redis_ops,
    }


def baseline(ctx: dict[str, Any], *, seconds: float, concurrency: int) -> dict[str, Any]:
    """The same replica (1 worker) on a local SQLite file with in-process limits, bench/gateway.py's full stack, in
    the same run: what PostgreSQL and Redis add, side by side on the same (shared, noisy) machine."""
    server = Server(local_config(ctx, "capacity-sqlite", secure=True))
    try:
        wrk(ctx, server, ctx["key"], connections=8, seconds=2, cpus=None)
        cpu0 = tree_cpu_seconds(server.proc.pid)
        run = wrk(ctx, server, ctx["key"], connections=concurrency, seconds=seconds, cpus=None)
        cpu1 = tree_cpu_seconds(server.proc.pid)
    finally:
        server.stop()
    return {**run, "cpu_ms_per_request": 1000 * (cpu1 - cpu0) / max(1, run["requests"])}


def plan(run: dict[str, Any]) -> dict[str, Any]:
    """Replicas for TARGET_RPS at the HPA's CPU target, and the store load they put on PostgreSQL and Redis.

    ``run`` is the costliest run (most CPU per request): sizing on the cheapest would under-provision."""
    rps_per_core = 1000 / run["cpu_ms_per_request"]
    rps_per_pod = rps_per_core * POD_CPU_REQUEST * HPA_CPU_TARGET
    replicas = math.ceil(TARGET_RPS / rps_per_pod)
    return {
        "workers": run["workers"],
        "rps_per_core": rps_per_core,
        "rps_per_pod_at_target": rps_per_pod,
        "replicas": replicas,
        "replicas_with_one_down": replicas + 1,  # the PDB lets one replica go at a time (maxUnavailable: 1)
        "pg_connections": (replicas + 1) * run["pg_connections"],
        "pg_rows_per_s": TARGET_RPS * run["pg_rows_inserted_per_request"],
        "pg_commits_per_s_upper": TARGET_RPS * 1.0,  # one per request when every writer is idle between requests
        "pg_commits_per_s_measured_batching": replicas * rps_per_pod * run["pg_commits_per_request"],
        "wal_mb_per_s": TARGET_RPS * run["wal_bytes_per_request"] / 1e6,
        "wal_gb_per_day": TARGET_RPS * run["wal_bytes_per_request"] * 86400 / 1e9,
        "audit_table_gb_per_day": TARGET_RPS * run["audit_table_bytes_per_record"] * 86400 / 1e9,
        "redis_round_trips_per_s": TARGET_RPS * run["redis_round_trips_per_request"],
        "redis_commands_per_s": TARGET_RPS * run["redis_commands_per_request"],
        "redis_cores": TARGET_RPS * run["redis_us_per_request"] / 1e6,
    }


def report(result: dict[str, Any]) -> None:
    print(
        f"machine: {result['machine']}, load average {result['load_average']:.1f} at the end; "
        f"concurrency {result['concurrency']}, {result['seconds']:g} s per run"
    )
    print(
        "| workers | req/s | p50 / p99 ms | CPU ms/req | PG connections | PG commits/s | commits/req | rows/req "
        "| WAL B/req | audit B/record | audit wait ms | Redis round trips (commands)/req | Redis µs/req |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in result["runs"]:
        print(
            f"| {r['workers']} | {r['rps']:.0f} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {r['cpu_ms_per_request']:.2f} "
            f"| {r['pg_connections']:.0f} | {r['pg_commits_per_s']:.0f} | {r['pg_commits_per_request']:.3f} | {r['pg_rows_inserted_per_request']:.2f} "
            f"| {r['wal_bytes_per_request']:.0f} | {r['audit_table_bytes_per_record']:.0f} "
            f"| {r['audit_append_ms_mean']:.1f} "
            f"| {r['redis_round_trips_per_request']:.2f} ({r['redis_commands_per_request']:.1f}) "
            f"| {r['redis_us_per_request']:.0f} |"
        )
    b = result["baseline_sqlite_local_limits"]
    print(
        f"baseline, 1 worker on SQLite with in-process limits: {b['rps']:.0f} req/s, "
        f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f} ms, {b['cpu_ms_per_request']:.2f} CPU ms/req "
        f"(PostgreSQL + Redis, {result['runs'][0]['workers']} worker(s): "
        f"x{result['runs'][0]['cpu_ms_per_request'] / b['cpu_ms_per_request']:.2f} CPU)"
    )
    p = result["plan"]
    print(
        f"plan for {TARGET_RPS} req/s (from the {p['workers']}-worker run, the costliest per request): "
        f"{p['rps_per_core']:.0f} req/s per core, {p['rps_per_pod_at_target']:.0f} per pod at "
        f"{HPA_CPU_TARGET:.0%} of {POD_CPU_REQUEST:g} CPU -> {p['replicas']} replicas (+1 for a disruption); "
        f"{p['pg_connections']:.0f} PostgreSQL connections held; "
        f"PostgreSQL {p['pg_rows_per_s']:.0f} rows/s, {p['pg_commits_per_s_measured_batching']:.0f} commits/s "
        f"(<= {p['pg_commits_per_s_upper']:.0f}), WAL {p['wal_mb_per_s']:.1f} MB/s ({p['wal_gb_per_day']:.0f} GB/day), "
        f"audit table +{p['audit_table_gb_per_day']:.0f} GB/day; "
        f"Redis {p['redis_round_trips_per_s']:.0f} round trips/s ({p['redis_commands_per_s']:.0f} commands/s), "
        f"{p['redis_cores']:.2f} of a core"
    )


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/capacity.py needs wrk: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="ms-capacity-") as tmp:
        ctx = prepare(Path(tmp))
        ctx["lua"] = Path(tmp) / "post.lua"
        ctx["lua"].write_text(WRK_LUA)
        ctx["body_file"] = Path(tmp) / "body.json"
        ctx["body_file"].write_bytes(ctx["body"])
        runs = [measure(ctx, w, seconds=args.seconds, concurrency=args.concurrency) for w in args.workers]
        local = baseline(ctx, seconds=args.seconds, concurrency=args.concurrency)
    result = {
        "machine": f"{_cpu_model()}, {os.cpu_count()} CPUs ({platform.machine()})",
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "load_average": os.getloadavg()[0],
        "runs": runs,
        "baseline_sqlite_local_limits": local,
        "plan": plan(max(runs, key=lambda r: r["cpu_ms_per_request"])),
    }
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
