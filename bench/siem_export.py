"""SIEM export throughput and loss: `python bench/siem_export.py [--records 20000] [--rate 2000] [--outage 30] --markdown`.

Real receivers on loopback, the same ones the tests start (``tests/monitor/siem/conftest.py``): an rsyslog daemon
(UDP, TCP and TLS inputs writing to files) and an HTTP collector (``http.server`` in threads, keep-alive).

1. Throughput, end to end: N OCSF prediction events (gateway records with the ai_operation profile, ~1 KB each)
   sent with ``SyslogSink`` over UDP, TCP (octet counting) and TLS, and with ``HttpCollectorSink`` (spool +
   batches of 500), timed until the receiver has written or acknowledged the last one. Beside them, the peer
   in the standard library: ``logging.handlers.SysLogHandler`` (RFC 3164 framing, no TLS) sending the same JSON.
2. Outage: events produced at ``--rate`` per second for 5 s, the collector down for ``--outage`` seconds while
   production goes on, back for 5 s; then how many events the collector never got (target 0), duplicates
   (delivery is at least once), the deepest the spool got, and how long after recovery it was empty.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from modelshield.audit.ocsf import to_ocsf  # noqa: E402
from modelshield.monitor.siem import HttpCollectorSink, SyslogSink  # noqa: E402
from tests.monitor.siem.conftest import Collector, free_port, start_rsyslog  # noqa: E402

RECORD = {
    "action": "predict",
    "actor": {"subject": "svc-scoring", "method": "api_key", "tenant": "acme"},
    "model": "digits",
    "model_version": 3,
    "model_digest": "sha256:" + "ab" * 32,
    "decision": "allow",
    "status_code": 200,
    "latency_ms": 1.7,
    "input_digest": "cd" * 32,
    "output_digest": "ef" * 32,
    "request_id": "req-0",
    "client_ip": "10.0.0.7",
    "time": "2026-12-06T09:00:00+00:00",
}


def events(n: int) -> list[dict[str, Any]]:
    now_us = time.time_ns() // 1000
    return [to_ocsf(i, now_us + i, f"{i:064x}", {**RECORD, "request_id": f"req-{i}"}, "bench") for i in range(1, n + 1)]


def _wait_lines(path: Path, n: int, quiet: float = 1.0) -> tuple[int, float]:
    """Wait until ``path`` holds ``n`` lines, or has stopped growing for ``quiet`` seconds (UDP loses some):
    (lines, when the last one arrived)."""
    count, last = 0, time.perf_counter()
    while count < n and time.perf_counter() - last < quiet:
        now = path.read_bytes().count(b"\n") if path.exists() else 0
        if now > count:
            count, last = now, time.perf_counter()
        time.sleep(0.01)
    return count, last


def syslog_run(rs: Any, transport: str, evs: list[dict[str, Any]], peer: bool = False) -> tuple[float, int]:
    """(records/s until rsyslog wrote the last line it got, lines written) for one transport."""
    rs.reset(transport)
    out = rs.folder / f"{transport}.log"
    start = time.perf_counter()
    if peer:
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        handler = logging.handlers.SysLogHandler(("127.0.0.1", rs.ports[transport]), socktype=kind)
        handler.append_nul = False  # rsyslog's TCP input splits on LF, so end each message with one
        logger = logging.Logger("peer")
        logger.addHandler(handler)
        for e in evs:
            logger.warning(json.dumps(e, separators=(",", ":")) + ("\n" if transport == "tcp" else ""))
        handler.close()
    else:
        sink = SyslogSink("127.0.0.1", rs.ports[transport], transport, ca_file=str(rs.ca))  # type: ignore[arg-type]
        for e in evs:
            sink.send(e)
        sink.close()
    got, last = _wait_lines(out, len(evs))
    return got / (last - start), got


def http_run(evs: list[dict[str, Any]], folder: Path) -> tuple[float, int]:
    collector = Collector(free_port(socket.SOCK_STREAM))
    collector.up()
    spool = folder / "throughput.db"
    spool.unlink(missing_ok=True)
    sink = HttpCollectorSink(collector.url, spool, batch_size=500)
    start = time.perf_counter()
    for e in evs:
        sink.send(e)
    sink.drain(120)
    seconds = time.perf_counter() - start
    sink.close()
    collector.down()
    return len(collector.lines) / seconds, len(collector.lines)


def outage_run(rate: float, outage: float, folder: Path) -> dict[str, float]:
    collector = Collector(free_port(socket.SOCK_STREAM))
    collector.up()
    sink = HttpCollectorSink(collector.url, folder / "outage.db", batch_size=500)
    evs = events(int(rate * (outage + 10)) + 1)
    deepest = 0
    caught_up: float | None = None  # seconds from the collector's return until the backlog was delivered
    start = time.perf_counter()
    phases = [(5.0, "up"), (5.0 + outage, "down"), (10.0 + outage, "up")]
    i = 0
    for end, state in phases:
        if state == "down":
            collector.down()
        elif not collector.is_up:
            collector.up()
        while time.perf_counter() - start < end and i < len(evs):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sink.send(evs[i])
            i += 1
            if i % 100 == 0:
                depth = len(sink.spool)
                deepest = max(deepest, depth)
                if caught_up is None and state == "up" and end > 5.0 and depth < sink.batch_size:
                    caught_up = time.perf_counter() - (start + 5.0 + outage)
    sink.drain(120)
    if caught_up is None:
        caught_up = time.perf_counter() - (start + 5.0 + outage)
    sink.close()
    collector.down()
    sent = [e["metadata"]["uid"] for e in evs[:i]]
    got = [e["metadata"]["uid"] for e in collector.received]
    unique = list(dict.fromkeys(got))
    return {
        "sent": len(sent),
        "lost": len(set(sent) - set(unique)),
        "duplicates": len(got) - len(unique),
        "in_order": float(unique == sent),
        "deepest_spool": deepest,
        "caught_up_s": caught_up,
    }


def validation_rates(evs: list[dict[str, Any]]) -> dict[str, float]:
    """Events/s checked by our validator (compiled from the 1.9-dev source, errors only / with warnings) and by
    pydantic-ocsf's compiled 1.7 ``ApiActivity`` model, on the same events minus the 1.8 profile."""
    from ocsf.v1_7_0.events import ApiActivity

    from modelshield.monitor.siem import validate_event

    plain = [{k: v for k, v in e.items() if k != "ai_model"} for e in evs]
    for e in plain:
        e["metadata"] = {k: v for k, v in e["metadata"].items() if k != "profiles"}
    out: dict[str, float] = {}
    for name, check in (
        ("modelshield (errors)", lambda e: validate_event(e, warnings=False)),
        ("modelshield (errors + warnings)", lambda e: validate_event(e)),
        ("pydantic-ocsf 1.7 model_validate", ApiActivity.model_validate),
    ):
        check(plain[0])  # compile / build the model outside the timing
        start = time.perf_counter()
        for e in plain:
            check(e)
        out[name] = len(plain) / (time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s produced in the outage run")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the collector is down")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs per row (median reported)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    evs = events(args.records)
    size = sum(len(json.dumps(e, separators=(",", ":"))) for e in evs) / len(evs)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        proc, rs = start_rsyslog(folder)
        rows: list[tuple[str, str, float, int]] = []

        def measure(dest: str, sender: str, run: Any) -> None:
            """Median rate of ``--repeats`` runs (the machine is shared), and the fewest events received."""
            results = [run() for _ in range(args.repeats)]
            rows.append((dest, sender, statistics.median(r for r, _ in results), min(g for _, g in results)))

        try:
            for transport in ("udp", "tcp", "tls"):
                if transport in rs.ports:
                    measure(f"syslog {transport}", "SyslogSink (RFC 5424)", lambda t=transport: syslog_run(rs, t, evs))
                    if transport != "tls":
                        measure(
                            f"syslog {transport}",
                            "stdlib SysLogHandler (RFC 3164)",
                            lambda t=transport: syslog_run(rs, t, evs, peer=True),
                        )
        finally:
            proc.terminate()
            proc.wait(10)
        measure("HTTP collector", "HttpCollectorSink.send (spool, batches of 500)", lambda: http_run(evs, folder))
        checks = validation_rates(evs[:2000])
        outage = outage_run(args.rate, args.outage, folder)
    cpu = platform.processor() or platform.machine()
    if args.markdown:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"{args.records:,} OCSF API Activity events (ai_operation profile), {size:.0f} bytes of JSON each; "
            f"{cpu}, {os.cpu_count()} CPUs, load average at the end {load}; median of {args.repeats} runs\n"
        )
        print("| destination | sender | records/s (end to end) | received |")
        print("|---|---|---:|---:|")
        for dest, sender, r, g in rows:
            print(f"| {dest} | {sender} | {r:,.0f} | {g:,} / {args.records:,} |")
        print("\n| validator (2,000 API Activity events) | events/s |")
        print("|---|---:|")
        for name, rate in checks.items():
            print(f"| {name} | {rate:,.0f} |")
        print(
            f"\nCollector down for {args.outage:.0f} s while events keep coming at {args.rate:,.0f}/s: "
            f"{outage['sent']:,.0f} sent, **{outage['lost']:,.0f} lost**, {outage['duplicates']:,.0f} duplicates, "
            f"order kept: {'yes' if outage['in_order'] else 'NO'}, spool peaked at {outage['deepest_spool']:,.0f} events, "
            f"backlog delivered {outage['caught_up_s']:.1f} s after the collector came back."
        )
    else:
        print(json.dumps({"rows": rows, "validation": checks, "outage": outage, "bytes_per_event": size}, indent=1))


if __name__ == "__main__":
    main()
