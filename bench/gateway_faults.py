"""Gateway faults, measured on the real server: kill -9 mid-load, and Redis going away under shared rate limits.

(a) ``kill -9`` the gateway while 16 clients send predictions, each with its own X-Request-ID. Every
    request that got a 2xx must be in the audit log (by request id), and ``modelshield audit verify``
    must pass on the log the dead process left behind. Run once per ``audit.durability``.
(b) Rate limits in Redis (a private redis-server on a free port, so the shared one is untouched): while
    Redis is up the gateway answers 200; after ``kill -9`` of Redis every request must get 503 with a
    clear error (fail closed: no 2xx without a rate decision); after Redis restarts, 200 again.

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
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import ROOT, Server, free_port, prepare, write_config  # noqa: E402

CLIENTS = 16


async def _client(port: int, body: bytes, key: str, prefix: str, results: dict[str, int], stop: asyncio.Event) -> None:
    """Keep-alive requests with unique ids until ``stop`` or the connection dies; records id -> status."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    n = 0
    try:
        while not stop.is_set():
            rid = f"{prefix}-{n}"
            n += 1
            head = (f"POST /v1/models/demo/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
                    f"X-Request-ID: {rid}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
            writer.write(head.encode() + body)
            raw = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line[15:]) for line in raw.split(b"\r\n") if line[:15].lower() == b"content-length:")
            payload = await reader.readexactly(length)
            results[rid] = int(raw[9:12])
            if prefix.startswith("redis") and results[rid] == 503:
                results[f"{rid}:error"] = json.loads(payload)["error"]  # type: ignore[assignment]
    except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
        pass  # the server died mid-request: that request got no answer
    finally:
        writer.close()


async def _load(port: int, body: bytes, key: str, tag: str, seconds: float,
                during: Any = None, at: float = 0.0) -> dict[str, int]:
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
    results = asyncio.run(_load(server.port, ctx["body"], ctx["key"], f"k{durability[0]}", 4.0,
                                during=lambda: server.proc.send_signal(signal.SIGKILL), at=2.0))
    server.proc.wait(timeout=10)
    ok = {rid for rid, status in results.items() if 200 <= status < 300}
    others = sorted({status for status in results.values() if not 200 <= status < 300})
    with sqlite3.connect(db_file) as conn:
        events = [json.loads(e) for (e,) in conn.execute("SELECT event FROM audit_records")]
    audited = {e.get("request_id") for e in events}
    verify = subprocess.run(
        [sys.executable, "-m", "modelshield", "audit", "verify", "--db", db,
         "--public-key", str(ctx["work"] / "audit.pub.pem")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    return {"answered_2xx": len(ok), "answered_other": len(results) - len(ok), "other_statuses": others, "audit_records": len(events),
            "missing_from_audit": len(ok - audited), "verify_exit": verify.returncode,
            "verify": (verify.stdout or verify.stderr).strip().splitlines()[-1:]}


def _redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    config.write_text(config.read_text().replace("[rate_limits]\n", f'[rate_limits]\nredis_url = "redis://127.0.0.1:{port}/0"\n'))
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
            phases[phase] = {"2xx": sum(200 <= s < 300 for s in statuses), "503": statuses.count(503),
                             "other": sum(not (200 <= s < 300) and s != 503 for s in statuses), "errors": errors[:2]}
    finally:
        server.stop()
        redis.kill()
        redis.wait()
    return phases


def main() -> None:
    if shutil.which("redis-server") is None:
        sys.exit("bench/gateway_faults.py needs redis-server")
    work = Path(tempfile.mkdtemp(prefix="ms-gw-faults-"))
    try:
        ctx = prepare(work)
        result = {"kill9": {d: kill9(ctx, d) for d in ("fsync", "process")}, "redis": redis_down(ctx)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for durability, r in result["kill9"].items():
        print(f"kill -9 (durability={durability}): {r['answered_2xx']} requests answered 2xx before the kill, "
              f"{r['answered_other']} other {r['other_statuses']}, {r['missing_from_audit']} of the 2xx missing from the audit log ({r['audit_records']} records); "
              f"audit verify exit {r['verify_exit']}: {' '.join(r['verify'])}")
    for phase, r in result["redis"].items():
        print(f"redis {phase:9}: {r['2xx']} x 2xx, {r['503']} x 503, {r['other']} other  {r['errors']}")
    bad = any(r["missing_from_audit"] or r["verify_exit"] or not r["answered_2xx"] for r in result["kill9"].values())
    bad |= result["redis"]["down"]["2xx"] > 0 or not result["redis"]["up"]["2xx"]
    if bad:
        sys.exit("FAILED: see above")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
