"""Live monitoring on the demo gateway: how many queries a Square evasion campaign gets in before the gateway's
drift test and output monitor flag it, and what the monitor costs each request.

1. ``modelshield serve --demo`` in its own process (the demo's guard and live monitoring as shipped: a 500-input
   window checked every 2 s). Clean traffic first: the digits test split, in batches of 10, through the
   predictor key; the monitor must stay quiet on it (a false alarm here is reported, not hidden).
2. The campaign: modelshield's Square attack (L∞, ε = 0.3) through ``RemoteModel`` against the gateway, on test
   digits the model gets right, one request per Square iteration. The bench polls ``/v1/admin/monitor`` (admin key) and
   records, for the drift test and the output monitor, the inputs the gateway had seen since the campaign began
   when the first check flagged it (the delay in queries), and the seconds.
3. Overhead: the live-monitoring hooks that run per request (window copy, output queue, window counters) timed
   in-process on the demo model; one live check's time (it runs in a worker thread, off the request path); and
   the same 1-sample request sent one at a time, alternately, to two gateway processes running the demo config
   without and with ``[monitor]`` (rate limits raised in both), p50 of each.

    python bench/live_monitor.py --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[str], seconds: float = 180.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the gateway did not become ready")


def start_demo(state: Path, port: int) -> tuple[subprocess.Popen[str], str, str]:
    """``modelshield serve --demo``; returns the process, the predictor key (read from its banner) and the admin key."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelshield", "serve", "--demo", "--port", str(port), "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert proc.stderr is not None
    key = ""
    deadline = time.monotonic() + 300
    while not key and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError("the demo gateway exited before printing its keys")
        if m := re.search(r"predictor API key[^:]*: (\S+)", line):
            key = m.group(1)
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining the log
    wait_ready(f"http://127.0.0.1:{port}", proc)
    return proc, key, (state / "admin.key").read_text().strip()


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def monitor_view(url: str, admin: str) -> dict[str, Any]:
    r = httpx.get(f"{url}/v1/admin/monitor", headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    r.raise_for_status()
    return dict(r.json()["models"]["demo"])


def wait_check(url: str, admin: str, seen: int, seconds: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        view = monitor_view(url, admin)
        if view["last_check"] and view["last_check"]["seen"] >= seen:
            return view
        time.sleep(0.2)
    raise RuntimeError("no live check covered the traffic")


def campaign(url: str, key: str, admin: str, samples: int, queries: int) -> dict[str, Any]:
    """Clean traffic, then Square through RemoteModel while the monitor view is polled."""
    import torch

    from modelshield.attacks.evasion.square import Square
    from modelshield.core.adapters.remote import RemoteModel
    from modelshield.core.datasets import sklearn_dataset

    class AbstainingRemote(RemoteModel):
        """The demo's guard abstains on some inputs (probabilities null): the attacker reads that as no preference."""

        def _post(self, batch: np.ndarray) -> np.ndarray:
            response = self._send({"inputs": batch.tolist()})
            self._kind = "probabilities"
            rows = response.json()["probabilities"]
            return np.asarray([r if r is not None else [0.1] * 10 for r in rows], dtype=np.float64)

    headers = {"Authorization": f"Bearer {key}"}
    test = sklearn_dataset("digits", "test", seed=0)
    x = test.x.numpy()
    remote = AbstainingRemote(
        f"{url}/v1/models/demo/predict", input_shape=(1, 8, 8), num_classes=10, headers=headers, max_retries=10
    )
    right = remote.predict(test.x[:200]) == test.y[:200]  # through the gateway: part of the clean traffic
    xs, ys = test.x[:200][right][:samples], test.y[:200][right][:samples]
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for start in range(0, len(x), 10):
            client.post("/v1/models/demo/predict", json={"inputs": x[start : start + 10].tolist()}).raise_for_status()
            time.sleep(0.02)  # under the demo's 50 requests/s per caller
    clean = wait_check(url, admin, len(x) + 200)
    clean_alarms = len(clean["alarms"])
    start_seen, started = clean["last_check"]["seen"], time.monotonic()
    start_outputs = clean["outputs_seen"]

    found: dict[str, Any] = {}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set() or not found.get("final"):
            view = monitor_view(url, admin)
            last = view["last_check"] or {}
            for what, hit in (("drift", bool(last.get("drift"))), ("output", len(view["alarms"]) > clean_alarms)):
                if hit and what not in found:
                    found[what] = {"queries": last["seen"] - start_seen, "seconds": time.monotonic() - started}
                    if what == "output":
                        found["alarm"] = view["alarms"][0]
            if done.is_set():
                found["final"] = last.get("seen", 0) - start_seen
                found["answered"] = view["outputs_seen"] - start_outputs
            time.sleep(0.1)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    torch.manual_seed(0)
    attack = Square(eps=0.3, n_queries=queries, seed=0)
    x_adv = attack(remote, xs, ys)
    time.sleep(3.0)  # one more check interval, so an alarm on the last queries is seen
    done.set()
    watcher.join(timeout=60)
    evaded = float((remote.predict(x_adv) != ys).float().mean())
    remote.close()
    return {
        "clean_inputs": len(x) + 200,
        "clean_drift": bool(clean["last_check"]["drift"]),
        "clean_alarms": clean_alarms,
        "samples": int(len(xs)),
        "campaign_queries": int(attack.queries_per_sample.sum()),
        "campaign_seconds": time.monotonic() - started,
        "evaded": evaded,
        "drift": found.get("drift"),
        "output": found.get("output"),
        "alarm": found.get("alarm"),
        "answered": found.get("answered"),
    }


def hook_cost(n: int = 20_000) -> dict[str, float]:
    """Microseconds the per-request hooks take (1-sample batches), on the demo model's monitor."""
    import tomllib

    from modelshield.cli.serve import DEMO_MONITOR
    from modelshield.demo import demo_model_and_data
    from modelshield.serve.config import MonitorConfig
    from modelshield.serve.live import GatewayLive, build_monitor
    from modelshield.serve.metrics import GatewayMetrics

    model, test = demo_model_and_data(seed=0)
    setting = MonitorConfig(**tomllib.loads(DEMO_MONITOR)["monitor"])
    live = GatewayLive(["demo"], {"demo": (build_monitor("demo", setting, model), setting)}, GatewayMetrics(), None)
    x = test.x.numpy()[:1]
    probs = np.full((1, 10), 0.1)
    record = {"action": "predict", "model": "demo", "decision": "allow", "guard": {"action": "accept"}}
    started = time.perf_counter()
    for _ in range(n):
        live.observe_inputs("demo", x)
        live.observe_outputs("demo", probs)
        live.observe_request(record)
    per = (time.perf_counter() - started) / n * 1e6
    monitor = live.watches["demo"].monitor
    assert monitor is not None
    monitor.check()  # drains the queued outputs; the next check sees one window's worth, as between two demo checks
    for _ in range(100):
        live.observe_inputs("demo", x)
        live.observe_outputs("demo", probs)
    started = time.perf_counter()
    check = monitor.check()
    return {"hooks_us": per, "check_ms": (time.perf_counter() - started) * 1e3, "check_rows": float(check.rows)}


def start_config(state: Path, monitor: bool) -> tuple[subprocess.Popen[str], str]:
    """The demo config with or without ``[monitor]``, rate limits raised, served on a free port."""
    text = (state / "serve.toml").read_text()
    port = free_port()
    text = re.sub(r"port = \d+", f"port = {port}", text)
    text = text.replace("per_identity_rps = 50", "per_identity_rps = 100000").replace(
        "per_identity_burst = 100", "per_identity_burst = 100000"
    )
    if not monitor:
        text = text[: text.index("[monitor]")]
    config = state / f"bench-{'on' if monitor else 'off'}.toml"
    config.write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelshield", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def paired_p50(state: Path, requests: int) -> tuple[float, float]:
    """p50 (ms) of 1-sample requests to the demo config without and with ``[monitor]``: both gateways run at once
    and the requests alternate between them, so the load of a shared machine falls on both alike."""
    key = (state / "admin.key").read_text().strip()
    body = json.loads((state / "example-request.json").read_text())
    procs = []
    try:
        urls = []
        for monitor in (False, True):
            proc, url = start_config(state, monitor)
            procs.append(proc)
            urls.append(url)
        times: list[list[float]] = [[], []]
        clients = [httpx.Client(base_url=u, headers={"Authorization": f"Bearer {key}"}, timeout=30) for u in urls]
        for i in range(requests + 50):
            for j, client in enumerate(clients):
                t = time.perf_counter()
                client.post("/v1/models/demo/predict", json=body).raise_for_status()
                if i >= 50:  # warm-up
                    times[j].append(time.perf_counter() - t)
        for client in clients:
            client.close()
        return statistics.median(times[0]) * 1e3, statistics.median(times[1]) * 1e3
    finally:
        for proc in procs:
            stop(proc)


def markdown(r: dict[str, Any]) -> str:
    c = r["campaign"]

    def delay(d: dict[str, Any] | None) -> str:
        return "not flagged" if d is None else f"{d['queries']} queries ({d['seconds']:.1f} s)"

    rows = [
        "| measure | value |",
        "|---|---|",
        f"| clean traffic: inputs, drift flagged, output alarms | {c['clean_inputs']}, {c['clean_drift']}, "
        f"{c['clean_alarms']} |",
        f"| Square campaign: samples, queries, seconds, evaded | {c['samples']}, {c['campaign_queries']}, "
        f"{c['campaign_seconds']:.1f}, {c['evaded']:.0%} |",
        f"| campaign queries the model answered (the rest the guard abstained on) | {c['answered']} |",
        f"| detection delay, drift test (KS per pixel, window 500, check every 2 s) | {delay(c['drift'])} |",
        f"| detection delay, output monitor (CUSUM / Page–Hinkley) | {delay(c['output'])} |",
    ]
    if c["alarm"]:
        a = c["alarm"]
        rows.append(f"| first output alarm | {a['detector']} on {a['stream']} ({a['direction']}, {a['kind']}) |")
    h = r["hooks"]
    rows += [
        f"| per-request hooks (window copy, output queue, counters), in-process | {h['hooks_us']:.1f} µs |",
        f"| one live check off the request path (500-input window, 64 KS tests, 100 outputs) | {h['check_ms']:.1f} ms |",
    ]
    if "p50_on" in r:
        rows.append(
            f"| 1-sample request p50, alternating between two gateways, monitor off → on | {r['p50_off']:.2f} → {r['p50_on']:.2f} ms |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=40, help="digits the campaign attacks")
    ap.add_argument("--queries", type=int, default=500, help="Square's query budget per sample")
    ap.add_argument("--requests", type=int, default=500, help="sequential requests per gateway for the p50")
    ap.add_argument("--no-latency", action="store_true", help="skip the monitor on/off latency comparison")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ms-live-bench-") as tmp:
        state = Path(tmp) / "demo"
        port = free_port()
        proc, key, admin = start_demo(state, port)
        try:
            result: dict[str, Any] = {
                "campaign": campaign(f"http://127.0.0.1:{port}", key, admin, args.samples, args.queries)
            }
        finally:
            stop(proc)
        result["hooks"] = hook_cost()
        if not args.no_latency:
            result["p50_off"], result["p50_on"] = paired_p50(state, args.requests)
    result["machine"] = f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(markdown(result) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
