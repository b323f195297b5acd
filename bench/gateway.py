"""Gateway overhead on loopback: the same model with the full security stack vs every control off, one run.

Each server is the real ``modelshield serve`` in its own process (one uvicorn worker, uvloop + httptools).
Load comes from ``wrk`` (C, one thread; POST body and API key from a Lua script) so the client costs far
less CPU than the server; ``--pin`` puts the server on CPU 1 and wrk on CPU 0 (taskset). Measured for each
of: no controls; full stack with ``audit.durability = "fsync"`` (default); full stack with ``"process"``:
p50/p99 at concurrency 1 (the added latency) and req/s, p50/p99 at ``--concurrency``. Then a 10x burst
against a per-identity limit (paced asyncio client): how closely the 200s match burst + rate x seconds.
Also the fsync latency of the disk under the audit database (it bounds "fsync" latency from below).

    apt-get install -y wrk        # bench only
    python bench/gateway.py --seconds 10 --concurrency 64 [--pin]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(work: Path) -> dict[str, Any]:
    """Demo weights, a store with one predictor key, audit keys; returns what the configs need."""
    import torch

    from modelshield.audit.keys import generate_keypair
    from modelshield.core.datasets import sklearn_dataset
    from modelshield.core.loading import save_torch_model
    from modelshield.demo import train_digits_cnn
    from modelshield.serve.apikeys import ApiKeyStore
    from modelshield.serve.runtime import file_digest

    torch.set_num_threads(1)
    weights = work / "digits.safetensors"
    save_torch_model(train_digits_cnn(sklearn_dataset("digits", "train", seed=0)), weights)
    pepper = work / "pepper"
    fd = os.open(pepper, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(secrets.token_bytes(32)).decode())
    generate_keypair(work / "audit.pem", work / "audit.pub.pem")
    db = f"sqlite:///{work / 'store.db'}"
    store = ApiKeyStore.open(db, pepper_file=pepper)
    key = store.create("bench", ["predictor"], attributes={"clearance": "internal"}).plaintext
    admin_key = store.create("bench-admin", ["admin"], attributes={"clearance": "restricted"}).plaintext
    store.close()
    sample = sklearn_dataset("digits", "test", seed=0).x[:1].tolist()
    return {
        "weights": weights,
        "digest": file_digest(weights),
        "pepper": pepper,
        "db": db,
        "key": key,
        "admin_key": admin_key,
        "body": json.dumps({"inputs": sample}).encode(),
        "work": work,
    }


def write_config(
    ctx: dict[str, Any],
    name: str,
    *,
    secure: bool,
    durability: str = "fsync",
    rps: float = 1e6,
    burst: float = 1e6,
    guard: bool = False,
) -> Path:
    w = ctx["work"]
    model = (
        f'[models.demo]\npath = "{ctx["weights"]}"\ndigest = "{ctx["digest"]}"\n'
        'arch = "modelshield.demo:DigitsCNN"\ninput_shape = [1, 8, 8]\n\n'
    )
    if secure:
        rest = (
            f'[server]\nstore_url = "{ctx["db"]}"\n\n[auth]\napi_key_pepper_file = "{ctx["pepper"]}"\n\n'
            f'[audit]\ndb_url = "{ctx["db"]}"\nsigning_key_file = "{w / "audit.pem"}"\n'
            f'public_key_file = "{w / "audit.pub.pem"}"\ndurability = "{durability}"\n\n'
            f"[rate_limits]\nper_identity_rps = {rps}\nper_identity_burst = {burst}\n"
            f"per_model_rps = 1e6\nper_model_burst = 1e6\ndaily_quota = 1000000000\n"
            f'\n[logging]\nlevel = "warning"\n'
        )
    else:
        rest = (
            "[auth]\ninsecure_disabled = true\n[policy]\ninsecure_disabled = true\n"
            "[rate_limits]\ninsecure_disabled = true\n[audit]\ninsecure_disabled = true\n"
            '[logging]\nlevel = "error"\n'
        )
    path = w / f"{name}.toml"
    path.write_text(model + rest + (GUARD_TABLE if guard else ""))
    return path


class Server:
    """``modelshield serve --config`` in a subprocess on a free port."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, cpus: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        pin = ["taskset", "-c", cpus] if cpus else []
        self.proc = subprocess.Popen(
            [*pin, sys.executable, "-m", "modelshield", "serve", "--config", str(config), "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        )
        import httpx

        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def request_bytes(port: int, body: bytes, key: str | None) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST /v1/models/demo/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> tuple[int, float]:
    t0 = time.perf_counter()
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status, time.perf_counter() - t0


async def load(port: int, req: bytes, *, concurrency: int, seconds: float, rate: float | None = None) -> dict[str, Any]:
    """Closed-loop load (or paced at ``rate`` req/s in total); latencies of every answered request."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    interval = concurrency / rate if rate else 0.0

    async def worker(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        next_at = time.perf_counter() + (interval * i / concurrency)
        while time.perf_counter() < stop:
            if interval:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
            status, lat = await _one(reader, writer, req)
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(lat)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "statuses": statuses,
        "seconds": elapsed,
    }


WRK_LUA = """
wrk.method = "POST"
wrk.body = io.open(os.getenv("MS_BODY_FILE"), "rb"):read("*a")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("MS_KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
function done(summary, latency, requests)
  io.write(string.format('MSJSON {"requests": %d, "us": %d, "p50_us": %d, "p99_us": %d, "non2xx": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    ctx: dict[str, Any], server: Server, key: str | None, *, connections: int, seconds: float, cpus: str | None
) -> dict[str, Any]:
    """One wrk run (one client thread) against the predict route; p50/p99 from wrk's HdrHistogram, and the
    server's CPU time per request (robust to other jobs on the machine, unlike latency)."""
    url = server.url
    cpu0 = cpu_seconds(server.proc.pid)
    pin = ["taskset", "-c", cpus] if cpus else []
    cmd = [
        *pin,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(ctx["lua"]),
        f"{url}/v1/models/demo/predict",
    ]
    env = {**os.environ, "MS_BODY_FILE": str(ctx["body_file"]), "MS_KEY": key or ""}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60, check=True).stdout
    cpu = cpu_seconds(server.proc.pid) - cpu0
    data = json.loads(next(line for line in out.splitlines() if line.startswith("MSJSON "))[7:])
    return {
        "requests": data["requests"],
        "rps": data["requests"] / (data["us"] / 1e6),
        "server_cpu_ms_per_request": 1000 * cpu / max(1, data["requests"]),
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "non_2xx": data["non2xx"],
        "socket_errors": data["errors"],
    }


def measure(
    ctx: dict[str, Any],
    name: str,
    *,
    secure: bool,
    durability: str,
    guard: bool,
    seconds: float,
    concurrency: int,
    pin: bool,
) -> dict[str, Any]:
    """c=1 (latency) and c=concurrency (throughput) against one fresh server."""
    config = write_config(ctx, name, secure=secure, durability=durability, guard=guard)
    server = Server(config, cpus="1" if pin else None)
    client_cpus = "0" if pin else None
    key = ctx["key"] if secure else None
    try:
        wrk(ctx, server, key, connections=4, seconds=2, cpus=client_cpus)  # warm-up
        single = wrk(ctx, server, key, connections=1, seconds=seconds, cpus=client_cpus)
        many = wrk(ctx, server, key, connections=concurrency, seconds=seconds, cpus=client_cpus)
    finally:
        server.stop()
    return {"c1": single, f"c{concurrency}": many}


def burst(ctx: dict[str, Any], rate: float, seconds: float) -> dict[str, Any]:
    """Offer 10x the per-identity limit for ``seconds``; compare 200s with burst + rate*seconds."""
    server = Server(write_config(ctx, "burst", secure=True, rps=rate, burst=rate))
    try:
        req = request_bytes(server.port, ctx["body"], ctx["key"])
        got = asyncio.run(load(server.port, req, concurrency=16, seconds=seconds, rate=10 * rate))
    finally:
        server.stop()
    allowed = got["statuses"].get(200, 0)
    expected = rate + rate * got["seconds"]
    return {
        "offered_rps": got["rps"],
        "allowed": allowed,
        "expected": expected,
        "error": (allowed - expected) / expected,
        "limited": got["statuses"].get(429, 0),
    }


def fsync_latency(folder: Path, n: int = 200) -> dict[str, float]:
    """p50/p99 of write(4 KiB) + fsync on the disk holding the audit database."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


SCHEMATHESIS_TOML = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 413, 422]
"""


def fuzz(ctx: dict[str, Any], max_examples: int) -> dict[str, Any]:
    """schemathesis (all checks) against /openapi.json of the full-stack gateway with an admin key (it may
    call every operation); counts answers by status from its NDJSON report. 413 counts as a rejection."""
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        return {"skipped": "schemathesis is not installed in the venv (pip install 'modelshield[bench]')"}
    (ctx["work"] / "schemathesis.toml").write_text(SCHEMATHESIS_TOML)
    reports = ctx["work"] / "st"
    server = Server(write_config(ctx, "fuzz", secure=True))
    try:
        done = subprocess.run(
            [
                str(exe),
                "--config-file",
                str(ctx["work"] / "schemathesis.toml"),
                "run",
                f"{server.url}/openapi.json",
                "-H",
                f"Authorization: Bearer {ctx['admin_key']}",
                "--checks",
                "all",
                "--max-examples",
                str(max_examples),
                "--no-color",
                "--report",
                "ndjson",
                "--report-dir",
                str(reports),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    statuses: dict[int, int] = {}
    for report in reports.glob("*.ndjson"):
        for line in report.read_text().splitlines():
            finished = json.loads(line).get("ScenarioFinished")
            for interaction in (finished or {}).get("recorder", {}).get("interactions", {}).values():
                code = (interaction.get("response") or {}).get("status_code")
                if code is not None:
                    statuses[code] = statuses.get(code, 0) + 1
    summary = [line.strip() for line in done.stdout.splitlines() if "generated" in line or "❌" in line]
    return {
        "exit_code": done.returncode,
        "requests": sum(statuses.values()),
        "statuses": statuses,
        "five_xx": sum(n for code, n in statuses.items() if code >= 500),
        "summary": summary,
    }


# (name, every control on, audit durability, adversarial-input guard as in `modelshield serve --demo`)
STACKS = (
    ("none", False, "fsync", False),
    ("fsync", True, "fsync", False),
    ("process", True, "process", False),
    ("fsync+guard", True, "fsync", True),
)
GUARD_TABLE = (
    '\n[guard]\ndetector = "feature-squeezing"\ndetector_options = { bits = 2 }\n'
    'calibration_data = "sklearn:digits:train"\nfpr = 0.05\nfallback = "abstain"\n'
)


def report(result: dict[str, Any], concurrency: int, burst_rate: float) -> None:
    c = f"c{concurrency}"
    print(f"machine: {result['machine']}; pinned: {result['pinned']}")
    disk = result["disk_fsync"]
    print(f"disk fsync: p50 {disk['p50_ms']:.2f} ms, p99 {disk['p99_ms']:.2f} ms")
    print(
        f"{'stack':18} {'p50 c=1':>8} {'p99 c=1':>8} {'req/s c=1':>10} {'req/s ' + c:>11} {'p50 ' + c:>9} "
        f"{'p99 ' + c:>9} {'CPU ms/req':>10} {'non-2xx':>8}"
    )
    for name, *_ in STACKS:
        r = result[name]
        label = "no controls" if name == "none" else f"full, {name}"
        print(
            f"{label:18} {r['c1']['p50_ms']:8.2f} {r['c1']['p99_ms']:8.2f} {r['c1']['rps']:10.0f} {r[c]['rps']:11.0f} "
            f"{r[c]['p50_ms']:9.2f} {r[c]['p99_ms']:9.2f} {r[c]['server_cpu_ms_per_request']:10.2f} "
            f"{r['c1']['non_2xx'] + r[c]['non_2xx']:8d}"
        )
    base = result["none"]
    for name, *_ in STACKS[1:]:
        r = result[name]
        print(
            f"full/{name}: added p50 {r['c1']['p50_ms'] - base['c1']['p50_ms']:+.2f} ms, "
            f"p99 {r['c1']['p99_ms'] - base['c1']['p99_ms']:+.2f} ms (c=1); "
            f"throughput full/none at {c}: {r[c]['rps'] / base[c]['rps']:.2f}"
        )
    b = result["burst"]
    print(
        f"burst: offered {b['offered_rps']:.0f} req/s against {burst_rate:g}/s (burst {burst_rate:g}); "
        f"allowed {b['allowed']} vs expected {b['expected']:.0f} ({b['error']:+.1%}), {b['limited']} answered 429"
    )
    if "schemathesis" in result:
        print("schemathesis:", json.dumps(result["schemathesis"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--burst-rate", type=float, default=50.0)
    ap.add_argument("--pin", action="store_true", help="server on CPU 1, wrk on CPU 0 (taskset)")
    ap.add_argument(
        "--schemathesis",
        type=int,
        default=0,
        metavar="N",
        help="also fuzz /openapi.json with schemathesis, N examples per operation",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/gateway.py needs wrk: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="ms-gw-bench-"))
    try:
        ctx = prepare(work)
        ctx["lua"] = work / "post.lua"
        ctx["lua"].write_text(WRK_LUA)
        ctx["body_file"] = work / "body.json"
        ctx["body_file"].write_bytes(ctx["body"])
        result: dict[str, Any] = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other jobs)",
            "pinned": "server CPU 1, wrk CPU 0" if args.pin else "no (OS scheduling)",
            "disk_fsync": fsync_latency(work),
        }
        for name, secure, durability, guard in STACKS:
            result[name] = measure(
                ctx,
                name,
                secure=secure,
                durability=durability,
                guard=guard,
                seconds=args.seconds,
                concurrency=args.concurrency,
                pin=args.pin,
            )
        result["burst"] = burst(ctx, args.burst_rate, 5.0)
        if args.schemathesis:
            result["schemathesis"] = fuzz(ctx, args.schemathesis)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(result, args.concurrency, args.burst_rate)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
