"""Gateway overhead on loopback: the same model with the full security stack vs with every control off.

Each server is the real ``modelshield serve`` in its own process (one uvicorn worker); the load comes
from an asyncio client speaking HTTP/1.1 keep-alive over raw streams (cheap enough not to be the
bottleneck). Measured: p50/p99 latency at concurrency 1 (the added latency), requests/s at
concurrency ``--concurrency``, and how closely a 10x burst is held to the configured rate limit.
With ``--schemathesis`` (needs ``pip install schemathesis`` in the venv, bench only) it also fuzzes
``/openapi.json`` with a valid key and counts 5xx answers.

    python bench/gateway.py --seconds 10 --concurrency 32
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
    store.close()
    sample = sklearn_dataset("digits", "test", seed=0).x[:1].tolist()
    return {"weights": weights, "digest": file_digest(weights), "pepper": pepper, "db": db, "key": key,
            "body": json.dumps({"inputs": sample}).encode(), "work": work}


def write_config(ctx: dict[str, Any], name: str, *, secure: bool, rps: float = 1e6, burst: float = 1e6) -> Path:
    w = ctx["work"]
    model = (f'[models.demo]\npath = "{ctx["weights"]}"\ndigest = "{ctx["digest"]}"\n'
             'arch = "modelshield.demo:DigitsCNN"\ninput_shape = [1, 8, 8]\n\n')
    if secure:
        rest = (f'[server]\nstore_url = "{ctx["db"]}"\n\n[auth]\napi_key_pepper_file = "{ctx["pepper"]}"\n\n'
                f'[audit]\ndb_url = "{ctx["db"]}"\nsigning_key_file = "{w / "audit.pem"}"\n'
                f'public_key_file = "{w / "audit.pub.pem"}"\n\n'
                f"[rate_limits]\nper_identity_rps = {rps}\nper_identity_burst = {burst}\n"
                f"per_model_rps = 1e6\nper_model_burst = 1e6\ndaily_quota = 1000000000\n"
                f"\n[logging]\nlevel = \"warning\"\n")
    else:
        rest = ("[auth]\ninsecure_disabled = true\n[policy]\ninsecure_disabled = true\n"
                "[rate_limits]\ninsecure_disabled = true\n[audit]\ninsecure_disabled = true\n"
                "[logging]\nlevel = \"error\"\n")
    path = w / f"{name}.toml"
    path.write_text(model + rest)
    return path


class Server:
    """``modelshield serve --config`` in a subprocess on a free port."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelshield", "serve", "--config", str(config), "--port", str(self.port)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
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
    head = (f"POST /v1/models/demo/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
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
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "statuses": statuses, "seconds": elapsed}


def measure(ctx: dict[str, Any], secure: bool, seconds: float, concurrency: int) -> dict[str, Any]:
    server = Server(write_config(ctx, "full" if secure else "none", secure=secure))
    try:
        req = request_bytes(server.port, ctx["body"], ctx["key"] if secure else None)
        asyncio.run(load(server.port, req, concurrency=4, seconds=1.0))  # warm-up
        single = asyncio.run(load(server.port, req, concurrency=1, seconds=seconds))
        many = asyncio.run(load(server.port, req, concurrency=concurrency, seconds=seconds))
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
    return {"offered_rps": got["rps"], "allowed": allowed, "expected": expected,
            "error": (allowed - expected) / expected, "limited": got["statuses"].get(429, 0)}


def fuzz(ctx: dict[str, Any], max_examples: int) -> dict[str, Any]:
    """schemathesis against /openapi.json with a valid key: count 5xx answers."""
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        return {"skipped": "schemathesis not installed (pip install schemathesis into the venv)"}
    server = Server(write_config(ctx, "fuzz", secure=True))
    try:
        done = subprocess.run(
            [str(exe), "run", f"{server.url}/openapi.json", "-H", f"Authorization: Bearer {ctx['key']}",
             "--checks", "not_a_server_error", "--max-examples", str(max_examples), "--no-color"],
            capture_output=True, text=True, timeout=600,
        )
    finally:
        server.stop()
    tail = done.stdout[-3000:]
    return {"exit_code": done.returncode, "five_xx_found": done.returncode != 0, "tail": tail}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--burst-rate", type=float, default=50.0)
    ap.add_argument("--schemathesis", action="store_true")
    ap.add_argument("--max-examples", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ms-gw-bench-"))
    try:
        ctx = prepare(work)
        none = measure(ctx, False, args.seconds, args.concurrency)
        full = measure(ctx, True, args.seconds, args.concurrency)
        result: dict[str, Any] = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other jobs)",
            "none": none, "full": full,
            "added_p50_ms": full["c1"]["p50_ms"] - none["c1"]["p50_ms"],
            "added_p99_ms": full["c1"]["p99_ms"] - none["c1"]["p99_ms"],
            "burst": burst(ctx, args.burst_rate, 5.0),
        }
        if args.schemathesis:
            result["schemathesis"] = fuzz(ctx, args.max_examples)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    c = f"c{args.concurrency}"
    print(f"{'stack':6} {'p50 ms (c=1)':>13} {'p99 ms (c=1)':>13} {'req/s (c=1)':>12} {'req/s (c=' + str(args.concurrency) + ')':>13} "
          f"{'p50 ms':>8} {'p99 ms':>8}")
    for name in ("none", "full"):
        r = result[name]
        print(f"{name:6} {r['c1']['p50_ms']:13.2f} {r['c1']['p99_ms']:13.2f} {r['c1']['rps']:12.0f} {r[c]['rps']:13.0f} "
              f"{r[c]['p50_ms']:8.2f} {r[c]['p99_ms']:8.2f}")
    print(f"added latency (c=1): p50 {result['added_p50_ms']:+.2f} ms, p99 {result['added_p99_ms']:+.2f} ms; "
          f"throughput ratio full/none at c={args.concurrency}: {result['full'][c]['rps'] / result['none'][c]['rps']:.2f}")
    b = result["burst"]
    print(f"burst: offered {b['offered_rps']:.0f} req/s against {args.burst_rate:g}/s (burst {args.burst_rate:g}); "
          f"allowed {b['allowed']} vs expected {b['expected']:.0f} ({b['error']:+.1%}), {b['limited']} answered 429")
    if "schemathesis" in result:
        print("schemathesis:", json.dumps({k: v for k, v in result["schemathesis"].items() if k != "tail"}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
