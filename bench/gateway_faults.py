"""Gateway faults, measured on the real server: kill -9 mid-load, and Redis going away under shared rate limits.

(a) ``kill -9`` the gateway while 16 clients send predictions, each with its own X-Request-ID. Every
    request that got a 2xx must be in the audit log (by request id), and ``modelshield audit verify``
    must pass on the log the dead process left behind. Run once per ``audit.durability``.
(b) Rate limits in Redis (a private redis-server on a free port, so the shared one is untouched): while
    Redis is up the gateway answers 200; after ``kill -9`` of Redis every request must get 503 with a
    clear error (fail closed: no 2xx without a rate decision); after Redis restarts, 200 again.
(c) The audit witness path turned into a directory under load (checkpoint every 10 records): every request must
    be answered (2xx before, 503 during, never a client timeout), ``/readyz`` must answer 503 during the fault and
    200 again after the file is put back (how long that takes is reported), SIGTERM under load with the file broken
    again must exit within a few seconds, every 2xx must be in the audit log, and ``audit verify --witness`` must
    pass (the witness then lacks only the checkpoints signed while it was broken).

    python bench/gateway_faults.py
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import ROOT, Server, free_port, prepare, write_config  # noqa: E402

CLIENTS = 16
ANSWER_SECONDS = 10.0  # a request unanswered this long counts as hung


async def _client(
    port: int,
    body: bytes,
    key: str,
    prefix: str,
    results: dict[str, int],
    stop: asyncio.Event,
    latency: list[float] | None = None,
) -> None:
    """Keep-alive requests with unique ids until ``stop`` or the connection dies; records id -> status
    (0: no answer within ANSWER_SECONDS, a hang) and, given ``latency``, each answer's seconds."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    n = 0
    try:
        while not stop.is_set():
            rid = f"{prefix}-{n}"
            n += 1
            head = (
                f"POST /v1/models/demo/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
                f"X-Request-ID: {rid}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            started = time.perf_counter()
            writer.write(head.encode() + body)
            try:
                raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_SECONDS)
            except TimeoutError:
                results[rid] = 0
                return
            length = next(int(line[15:]) for line in raw.split(b"\r\n") if line[:15].lower() == b"content-length:")
            payload = await reader.readexactly(length)
            results[rid] = int(raw[9:12])
            if latency is not None:
                latency.append(time.perf_counter() - started)
            if prefix.startswith("redis") and results[rid] == 503:
                results[f"{rid}:error"] = json.loads(payload)["error"]  # type: ignore[assignment]
    except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
        pass  # the server died mid-request: that request got no answer
    finally:
        writer.close()


async def _load(
    port: int, body: bytes, key: str, tag: str, seconds: float, during: Any = None, at: float = 0.0
) -> dict[str, int]:
    """CLIENTS clients for ``seconds``; ``during()`` is called ``at`` seconds in (e.g. to kill something)."""
    results: dict[str, int] = {}
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_client(port, body, key, f"{tag}{i}", results, stop)) for i in range(CLIENTS)]
    if during is not None:
        await asyncio.sleep(at)
        during()
        await asyncio.sleep(seconds - at)
    else:
        await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait(tasks, timeout=15)
    return results


def kill9(ctx: dict[str, Any], durability: str) -> dict[str, Any]:
    """kill -9 mid-load; every 2xx is in the audit log and the chain verifies."""
    db_file, db = ctx["work"] / "store.db", ctx["db"]  # the store holding the API key and the audit log
    server = Server(write_config(ctx, f"kill-{durability}", secure=True, durability=durability))
    results = asyncio.run(
        _load(
            server.port,
            ctx["body"],
            ctx["key"],
            f"k{durability[0]}",
            4.0,
            during=lambda: server.proc.send_signal(signal.SIGKILL),
            at=2.0,
        )
    )
    server.proc.wait(timeout=10)
    ok = {rid for rid, status in results.items() if 200 <= status < 300}
    others = sorted({status for status in results.values() if not 200 <= status < 300})
    with sqlite3.connect(db_file) as conn:
        events = [json.loads(e) for (e,) in conn.execute("SELECT event FROM audit_records")]
    audited = {e.get("request_id") for e in events}
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelshield",
            "audit",
            "verify",
            "--db",
            db,
            "--public-key",
            str(ctx["work"] / "audit.pub.pem"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return {
        "answered_2xx": len(ok),
        "answered_other": len(results) - len(ok),
        "other_statuses": others,
        "audit_records": len(events),
        "missing_from_audit": len(ok - audited),
        "verify_exit": verify.returncode,
        "verify": (verify.stdout or verify.stderr).strip().splitlines()[-1:],
    }


def _redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    return proc


def redis_down(ctx: dict[str, Any]) -> dict[str, Any]:
    """Up → killed → restarted; counts 2xx/429/503 in each phase."""
    port = free_port()
    redis = _redis(port)
    config = write_config(ctx, "redis", secure=True)
    config.write_text(
        config.read_text().replace("[rate_limits]\n", f'[rate_limits]\nredis_url = "redis://127.0.0.1:{port}/0"\n')
    )
    server = Server(config)
    phases: dict[str, Any] = {}
    try:
        for phase in ("up", "down", "restarted"):
            if phase == "down":
                redis.kill()
                redis.wait()
            elif phase == "restarted":
                redis = _redis(port)
            got = asyncio.run(_load(server.port, ctx["body"], ctx["key"], f"redis-{phase}", 2.0))
            statuses = [s for k, s in got.items() if not k.endswith(":error")]
            errors = sorted({str(v) for k, v in got.items() if k.endswith(":error")})
            phases[phase] = {
                "2xx": sum(200 <= s < 300 for s in statuses),
                "503": statuses.count(503),
                "other": sum(not (200 <= s < 300) and s != 503 for s in statuses),
                "errors": errors[:2],
            }
    finally:
        server.stop()
        redis.kill()
        redis.wait()
    return phases


def _ready(url: str) -> int:
    import httpx

    return httpx.get(url + "/readyz", timeout=ANSWER_SECONDS).status_code


def _phase(
    ctx: dict[str, Any], port: int, tag: str, seconds: float, during: Any = None, at: float = 0.0
) -> dict[str, Any]:
    """CLIENTS clients for ``seconds``: answers by status, hung requests, latency (p50/p99/max, ms)."""
    latency: list[float] = []

    async def run() -> dict[str, int]:
        results: dict[str, int] = {}
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(_client(port, ctx["body"], ctx["key"], f"{tag}{i}", results, stop, latency))
            for i in range(CLIENTS)
        ]
        await asyncio.sleep(at)
        if during is not None:
            during()
        await asyncio.sleep(seconds - at)
        stop.set()
        await asyncio.wait(tasks, timeout=ANSWER_SECONDS + 5)
        return results

    results = asyncio.run(run())
    statuses = list(results.values())
    lat = sorted(latency) or [0.0]
    return {
        "2xx": sum(200 <= s < 300 for s in statuses),
        "503": statuses.count(503),
        "hung": statuses.count(0),
        "other": sum(s not in (0, 503) and not 200 <= s < 300 for s in statuses),
        "p50_ms": round(1000 * lat[len(lat) // 2], 1),
        "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 1),
        "max_ms": round(1000 * lat[-1], 1),
        "ok_ids": {rid for rid, s in results.items() if 200 <= s < 300},
    }


def _point(link: Path, target: Path) -> None:
    """``link`` -> ``target`` in one atomic rename (a rename-then-mkdir would race the writer recreating the file)."""
    new = link.with_name(link.name + ".new")
    new.symlink_to(target)
    os.replace(new, link)


def witness_fault(ctx: dict[str, Any]) -> dict[str, Any]:
    """Healthy -> witness path turned into a directory -> put back -> broken again and SIGTERM under load."""
    witness, real, directory = ctx["work"] / "audit.witness", ctx["work"] / "witness.jsonl", ctx["work"] / "a-dir"
    directory.mkdir()
    _point(witness, real)
    config = write_config(ctx, "witness", secure=True)
    config.write_text(
        config.read_text().replace(
            "[audit]\n", f'[audit]\nwitness_file = "{witness}"\ncheckpoint_every = 10\ncheckpoint_seconds = 1.0\n'
        )
    )
    server = Server(config)
    # drain its stderr: every 503 logs an error line, and a full pipe would block the server, not the audit log
    threading.Thread(target=server.proc.stderr.read, daemon=True).start()  # type: ignore[union-attr]
    out: dict[str, Any] = {}
    try:
        out["healthy"] = _phase(ctx, server.port, "wh", 2.0)
        out["healthy"]["readyz"] = _ready(server.url)
        _point(witness, directory)
        out["fault"] = _phase(ctx, server.port, "wf", 3.0)
        out["fault"]["readyz"] = _ready(server.url)
        _point(witness, real)
        restored = time.monotonic()
        while _ready(server.url) != 200 and time.monotonic() - restored < 30:
            time.sleep(0.02)
        out["ready_again_s"] = round(time.monotonic() - restored, 2)
        out["restored"] = _phase(ctx, server.port, "wr", 2.0)
        out["restored"]["readyz"] = _ready(server.url)
        term: dict[str, float] = {}

        def sigterm() -> None:
            term["at"] = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)

        _point(witness, directory)  # broken again: SIGTERM must not wait on a failing audit writer
        out["sigterm"] = _phase(ctx, server.port, "wt", 1.5, during=sigterm, at=0.5)
        server.proc.wait(timeout=60)
        out["sigterm"]["exit_s"] = round(time.monotonic() - term["at"], 2)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
        _point(witness, real)
    with sqlite3.connect(ctx["work"] / "store.db") as conn:
        audited = {json.loads(e).get("request_id") for (e,) in conn.execute("SELECT event FROM audit_records")}
    ok = set().union(*(p.pop("ok_ids") for p in out.values() if isinstance(p, dict)))
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelshield",
            "audit",
            "verify",
            "--db",
            ctx["db"],
            "--public-key",
            str(ctx["work"] / "audit.pub.pem"),
            "--witness",
            str(witness),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out.update(
        missing_from_audit=len(ok - audited),
        verify_exit=verify.returncode,
        verify=(verify.stdout or verify.stderr).strip().splitlines()[-1:],
    )
    return out


def main() -> None:
    if shutil.which("redis-server") is None:
        sys.exit("bench/gateway_faults.py needs redis-server")
    work = Path(tempfile.mkdtemp(prefix="ms-gw-faults-"))
    try:
        ctx = prepare(work)
        result = {
            "kill9": {d: kill9(ctx, d) for d in ("fsync", "process")},
            "redis": redis_down(ctx),
            "witness": witness_fault(ctx),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for durability, r in result["kill9"].items():
        print(
            f"kill -9 (durability={durability}): {r['answered_2xx']} requests answered 2xx before the kill, "
            f"{r['answered_other']} other {r['other_statuses']}, {r['missing_from_audit']} of the 2xx missing from the audit log ({r['audit_records']} records); "
            f"audit verify exit {r['verify_exit']}: {' '.join(r['verify'])}"
        )
    for phase, r in result["redis"].items():
        print(f"redis {phase:9}: {r['2xx']} x 2xx, {r['503']} x 503, {r['other']} other  {r['errors']}")
    w = result["witness"]
    for phase in ("healthy", "fault", "restored", "sigterm"):
        r = w[phase]
        extra = f", /readyz {r['readyz']}" if "readyz" in r else f", exit {r['exit_s']} s after SIGTERM"
        print(
            f"witness {phase:8}: {r['2xx']} x 2xx, {r['503']} x 503, {r['hung']} hung, {r['other']} other; "
            f"latency p50 {r['p50_ms']} / p99 {r['p99_ms']} / max {r['max_ms']} ms{extra}"
        )
    print(
        f"witness: ready again {w['ready_again_s']} s after the file was put back; "
        f"{w['missing_from_audit']} of the 2xx missing from the audit log; "
        f"audit verify --witness exit {w['verify_exit']}: {' '.join(w['verify'])}"
    )
    bad = any(r["missing_from_audit"] or r["verify_exit"] or not r["answered_2xx"] for r in result["kill9"].values())
    bad |= result["redis"]["down"]["2xx"] > 0 or not result["redis"]["up"]["2xx"]
    bad |= any(w[p]["hung"] or w[p]["other"] for p in ("healthy", "fault", "restored", "sigterm"))
    bad |= not w["fault"]["503"] or w["fault"]["readyz"] != 503 or w["healthy"]["readyz"] != 200
    bad |= (
        w["missing_from_audit"] > 0 or w["verify_exit"] != 0 or w["sigterm"]["exit_s"] > 10 or not w["restored"]["2xx"]
    )
    if bad:
        sys.exit("FAILED: see above")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
