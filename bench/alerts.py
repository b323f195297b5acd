"""Alerts: how long from the start of a poisoning campaign to the alert, and how long each channel takes.

`python bench/alerts.py [--repeats 10] [--deliveries 200] [--markdown]`

Part 1 — detection delay. The digits logistic regression of ``modelshield.monitor.alerts.campaign``: reference
traffic is its outputs on 450 held-out images, live traffic is drawn from the other 449; the campaign sends a
share of inputs the model maps to class 0 from output 20,000 on, for 20,000 outputs, in batches of 100. The
outputs go through ``OutputMonitor`` (CUSUM and Page–Hinkley), each alarm through the alert engine with the
rule of ``examples/alerts.yaml`` (poisoning alarm > 0, one alert per stream), and the alert to a webhook, an SMTP
server and a syslog collector on loopback. Measured per run: outputs from the campaign's start to the first
poisoning alarm and to the alert fired, alarms raised against notifications sent (deduplication), and alerts
raised on the 20,000 clean outputs before the campaign (false alerts).

Part 2 — delivery latency per channel: ``--deliveries`` alert notices sent one after another to each loopback
receiver; the time is from the start of ``send`` to the receiver having the whole message (webhook: a new
HTTP client kept by the channel, keep-alive connection reused; email: one SMTP session per alert; syslog: one datagram or one
TCP connection per alert). Also the durable audit append each notice costs before it is sent (SQLite, fsync).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from modelshield.monitor.alerts.campaign import campaign_batches, demo_rules, digits_outputs
from modelshield.monitor.alerts.channels import build_channels
from modelshield.monitor.alerts.dispatch import AlertDispatcher
from modelshield.monitor.alerts.engine import Alert, AlertEngine, Notice
from modelshield.monitor.alerts.events import alert_event
from modelshield.monitor.alerts.loopback import Received, SmtpReceiver, SyslogReceiver, WebhookReceiver
from modelshield.monitor.alerts.rules import SyslogRoute
from modelshield.monitor.alerts.signals import output_alarm_signal
from modelshield.monitor.outputs import OutputMonitor, OutputReference

CLEAN = AFTER = 20_000


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def delay_part(
    rates: list[float], repeats: int, receivers: tuple[WebhookReceiver, SmtpReceiver, SyslogReceiver]
) -> list[dict[str, Any]]:
    hook, smtp, syslog = receivers
    data = digits_outputs()
    reference = OutputReference.from_outputs(data.reference)
    rules = demo_rules(hook.url, smtp.port, syslog.port)
    rows = []
    for rate in rates:
        runs = []
        for seed in range(repeats):
            clock = _Clock()
            dispatcher = AlertDispatcher(AlertEngine(rules, clock=clock), build_channels(rules.routes))
            monitor = OutputMonitor(reference)
            first_alarm = fired = None
            false_alerts = alarms = 0
            for batch in campaign_batches(data, rate=rate, clean=CLEAN, after=AFTER, seed=seed):
                clock.now += 1.0
                for alarm in monitor.update(batch):
                    campaign = alarm.sample > CLEAN
                    alarms += campaign and alarm.kind == "poisoning"
                    if campaign and alarm.kind == "poisoning" and first_alarm is None:
                        first_alarm = alarm.sample - CLEAN
                    for d in dispatcher.observe(output_alarm_signal(alarm)):
                        if d.action == "fired" and d.route == "siem":
                            if not campaign:
                                false_alerts += 1
                            elif fired is None:
                                fired = alarm.sample - CLEAN
                dispatcher.tick()
            sent = sum(d.action == "fired" for d in dispatcher.deliveries if d.route == "siem")
            runs.append(
                {"first_alarm": first_alarm, "fired": fired, "alarms": alarms, "alerts": sent, "false": false_alerts}
            )
        delays = [r["fired"] for r in runs if r["fired"] is not None]
        rows.append(
            {
                "rate": rate,
                "runs": repeats,
                "missed": sum(r["fired"] is None for r in runs),
                "alarm_median": statistics.median(
                    [r["first_alarm"] for r in runs if r["first_alarm"] is not None] or [0]
                ),
                "alert_median": statistics.median(delays) if delays else None,
                "alert_p90": _pct(delays, 90) if delays else None,
                "alarms": sum(r["alarms"] for r in runs) / repeats,
                "alerts": sum(r["alerts"] for r in runs) / repeats,
                "false": sum(r["false"] for r in runs),
            }
        )
        print(json.dumps(rows[-1]), flush=True, file=sys.stderr)
    return rows


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _notice(i: int) -> dict[str, Any]:
    now = time.time()
    alert = Alert(f"{i:016x}", "poisoning-campaign", "threshold", "critical", "poisoning-campaign|stream=class:0",
                  {"stream": "class:0"}, "share of class:0 rising", now, now, 16.0)  # fmt: skip
    return alert_event(Notice("fired", alert, ["x"], now))


def latency_part(n: int, receivers: tuple[WebhookReceiver, SmtpReceiver, SyslogReceiver]) -> list[dict[str, Any]]:
    hook, smtp, syslog_udp = receivers
    syslog_tcp = SyslogReceiver("tcp")
    try:
        rules = demo_rules(hook.url, smtp.port, syslog_udp.port)
        routes = dict(rules.routes)
        routes["siem-tcp"] = SyslogRoute(type="syslog", host="127.0.0.1", port=syslog_tcp.port, protocol="tcp")
        channels = build_channels(routes)
        targets: list[tuple[str, str, Received]] = [
            ("webhook (HTTP POST, HMAC-signed)", "oncall", hook),
            ("email (SMTP, aiosmtpd)", "secops", smtp),
            ("syslog RFC 5424 over UDP", "siem", syslog_udp),
            ("syslog RFC 5424 over TCP", "siem-tcp", syslog_tcp),
        ]
        rows = []
        for label, route, receiver in targets:
            before = len(receiver.items)
            channel = channels[route]
            channel.send(_notice(0))  # warm-up: imports, first connection
            receiver.wait(before + 1)
            times = []
            for i in range(n):
                expected = before + 2 + i
                start = time.time()
                channel.send(_notice(i + 1))
                got = receiver.wait(expected)
                times.append(got[-1]["received_at"] - start)
            rows.append({"channel": label, "n": n, "median_ms": 1000 * statistics.median(times),
                         "p95_ms": 1000 * _pct(times, 95), "max_ms": 1000 * max(times)})  # fmt: skip
        rows.append(_audit_append(n))
        return rows
    finally:
        syslog_tcp.close()


def _audit_append(n: int) -> dict[str, Any]:
    from modelshield.audit import AuditLog

    with tempfile.TemporaryDirectory() as tmp, AuditLog.open(f"sqlite:///{Path(tmp) / 'a.db'}") as audit:
        audit.append(_notice(0))
        times = []
        for i in range(n):
            start = time.perf_counter()
            audit.append(_notice(i + 1))
            times.append(time.perf_counter() - start)
    return {"channel": "audit append before sending (SQLite, fsync)", "n": n, "median_ms": 1000 * statistics.median(times),
            "p95_ms": 1000 * _pct(times, 95), "max_ms": 1000 * max(times)}  # fmt: skip


def markdown(delays: list[dict[str, Any]], latency: list[dict[str, Any]], args: argparse.Namespace) -> str:
    out = [
        f"Detection delay to the alert — `python bench/alerts.py --repeats {args.repeats} --deliveries {args.deliveries} "
        "--markdown`; campaign from output 20,000 for 20,000 outputs, batches of 100; delays in outputs since the "
        f"campaign began (clean and poisoned), median / 90th percentile over {args.repeats} runs.",
        "",
        "| poisoned share | first alarm (median) | alert fired: median / p90 | missed | poisoning alarms per run | alerts sent per run | false alerts (20k clean outputs × runs) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in delays:
        fired = "—" if r["alert_median"] is None else f"{r['alert_median']:,.0f} / {r['alert_p90']:,.0f}"
        out.append(
            f"| {r['rate']:.0%} | {r['alarm_median']:,.0f} | {fired} | {r['missed']}/{r['runs']} | {r['alarms']:.1f} "
            f"| {r['alerts']:.1f} | {r['false']} |"
        )
    out += ["", "| channel (loopback) | alerts | median ms | p95 ms | max ms |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in latency:
        out.append(f"| {r['channel']} | {r['n']} | {r['median_ms']:.2f} | {r['p95_ms']:.2f} | {r['max_ms']:.2f} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="0.05,0.1,0.2,0.3", help="poisoned shares of traffic")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("MODELSHIELD_DEMO_WEBHOOK_SECRET", "bench-secret")
    receivers = (WebhookReceiver(), SmtpReceiver(), SyslogReceiver("udp"))
    try:
        delays = delay_part([float(r) for r in args.rates.split(",")], args.repeats, receivers)
        latency = latency_part(args.deliveries, receivers)
    finally:
        for r in receivers:
            r.close()
    if args.markdown:
        print(markdown(delays, latency, args))
    else:
        print(json.dumps({"delays": delays, "latency": latency}, indent=2))


if __name__ == "__main__":
    main()
