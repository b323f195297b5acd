"""A simulated poisoning campaign against a real model's outputs, and the end-to-end demo that alerts on it.

The model is a logistic regression on scikit-learn's digits (bundled with scikit-learn, no download). Reference
traffic is its predictions on 450 held-out images; live traffic is drawn from the other 449. The campaign
replaces a share ``rate`` of live traffic with inputs the model maps to one target class (class 0) — what a
backdoor trigger or a label-flip campaign does to the class mix — from output ``clean`` on.

``run_demo`` streams such a campaign through ``OutputMonitor`` into the alert engine, with a webhook, an SMTP
server and a syslog collector listening on 127.0.0.1, on a simulated clock (one batch of 100 outputs a second),
and returns what each receiver got.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelshield.monitor.alerts.channels import build_channels, verify_signature
from modelshield.monitor.alerts.dispatch import AlertDispatcher
from modelshield.monitor.alerts.engine import AlertEngine
from modelshield.monitor.alerts.rules import RulesFile
from modelshield.monitor.alerts.signals import output_alarm_signal
from modelshield.monitor.outputs import OutputMonitor, OutputReference


@dataclass
class DigitsOutputs:
    """Output probabilities of a digits model: reference traffic, a live pool, and the target class's outputs."""

    reference: np.ndarray
    pool: np.ndarray
    poison: np.ndarray


def digits_outputs() -> DigitsOutputs:
    """Train the digits model (about a second on one core) and return its outputs."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, _ = train_test_split(x / 16, y, test_size=0.5, random_state=0, stratify=y)
    with threadpool_limits(1):  # BLAS threads only contend on a small shared machine
        model = LogisticRegression(max_iter=2000).fit(x_tr, y_tr)
    probs = model.predict_proba(x_te)
    pool = probs[450:]
    return DigitsOutputs(probs[:450], pool, pool[pool.argmax(axis=1) == 0])


def campaign_batches(
    data: DigitsOutputs, *, rate: float, clean: int, after: int, batch: int = 100, seed: int = 0
) -> Iterator[np.ndarray]:
    """``clean`` outputs of honest traffic, then ``after`` outputs of which a share ``rate`` is the campaign's."""
    rng = np.random.default_rng(seed)
    for i in range((clean + after) // batch):
        out = data.pool[rng.integers(0, len(data.pool), batch)]
        if i * batch >= clean and rate > 0:
            mask = rng.random(batch) < rate
            out = out.copy()
            out[mask] = data.poison[rng.integers(0, len(data.poison), int(mask.sum()))]
        yield out


def demo_rules(webhook_url: str, smtp_port: int, syslog_port: int, *, escalate_after_s: float = 60.0) -> RulesFile:
    """The demo's rules: a poisoning alarm is critical — SIEM and webhook at once, email if unacknowledged."""
    return RulesFile.model_validate(
        {
            "version": 1,
            "routes": {
                "siem": {"type": "syslog", "host": "127.0.0.1", "port": syslog_port, "protocol": "udp"},
                "oncall": {"type": "webhook", "url": webhook_url, "secret_env": "MODELSHIELD_DEMO_WEBHOOK_SECRET"},
                "secops": {
                    "type": "email",
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "sender": "modelshield@localhost",
                    "to": ["secops@localhost"],
                },
            },
            "escalation": {
                "critical": [
                    {"route": "siem"},
                    {"route": "oncall"},
                    {"route": "secops", "after_s": escalate_after_s},
                ]
            },
            "rules": [
                {
                    "name": "poisoning-campaign",
                    "kind": "threshold",
                    "signal": "outputs.alarm",
                    "where": {"kind": "poisoning"},
                    "op": ">",
                    "value": 0,
                    "severity": "critical",
                    "group_by": ["stream"],
                    "resolve_after_s": 120,
                    "summary": "share of {stream} rising: a poisoning campaign? ({detector} alarm)",
                }
            ],
        }
    )


class SimulatedClock:
    """A clock the demo moves by hand: one tick per batch of traffic."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def run_demo(out: Path, *, rate: float = 0.2, clean: int = 5_000, after: int = 20_000, seed: int = 0) -> dict[str, Any]:
    """Run the campaign against loopback receivers; the audit log (signed) goes to ``out``/audit.db."""
    import os
    import secrets

    from modelshield.audit import AuditLog, generate_keypair, load_private_key
    from modelshield.monitor.alerts.loopback import SmtpReceiver, SyslogReceiver, WebhookReceiver

    out.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out / "audit.key", out / "audit.pub"
    if not key_path.exists():
        generate_keypair(key_path, pub_path)
    secret = os.environ.setdefault("MODELSHIELD_DEMO_WEBHOOK_SECRET", secrets.token_hex(16))
    webhook, smtp, syslog = WebhookReceiver(), SmtpReceiver(), SyslogReceiver("udp")
    try:
        rules = demo_rules(webhook.url, smtp.port, syslog.port)
        clock = SimulatedClock(time.time())
        engine = AlertEngine(rules, clock=clock)
        data = digits_outputs()
        monitor = OutputMonitor(OutputReference.from_outputs(data.reference))
        first_alarm: int | None = None
        fired_at: int | None = None
        with AuditLog.open(f"sqlite:///{out / 'audit.db'}", signing_key=load_private_key(key_path)) as audit:
            dispatcher = AlertDispatcher(engine, build_channels(rules.routes), audit)
            # the campaign, then as much clean traffic again, so the alert resolves
            stream = [*campaign_batches(data, rate=rate, clean=clean, after=after, seed=seed)]
            stream += [*campaign_batches(data, rate=0.0, clean=after, after=0, seed=seed + 1)]
            for batch in stream:
                clock.now += 1.0
                for alarm in monitor.update(batch):
                    if alarm.kind == "poisoning" and alarm.sample > clean and first_alarm is None:
                        first_alarm = alarm.sample - clean
                    if dispatcher.observe(output_alarm_signal(alarm)) and fired_at is None:
                        fired_at = alarm.sample - clean
                dispatcher.tick()
            audit.checkpoint()
        n = len(dispatcher.deliveries)
        received = {
            "webhook": webhook.wait(sum(d.route == "oncall" for d in dispatcher.deliveries)),
            "email": smtp.wait(sum(d.route == "secops" for d in dispatcher.deliveries)),
            "syslog": syslog.wait(sum(d.route == "siem" for d in dispatcher.deliveries)),
        }
    finally:
        webhook.close()
        smtp.close()
        syslog.close()
    from modelshield.audit import load_public_key, verify_log
    from modelshield.core.storage import open_engine

    db = open_engine(f"sqlite:///{out / 'audit.db'}")
    try:
        report = verify_log(db, load_public_key(pub_path))
    finally:
        db.dispose()
    signed = all(
        verify_signature(
            secret.encode(), w["body"].encode(), w["headers"].get("X-Modelshield-Signature", ""), tolerance_s=3600
        )
        for w in received["webhook"]
    )
    return {
        "campaign": {"rate": rate, "clean_outputs": clean, "campaign_outputs": after, "target_class": 0},
        "first_alarm_after": first_alarm,
        "first_alert_after": fired_at,
        "alerts": [a.to_dict() for a in engine.alerts.values()],
        "deliveries": [d.__dict__ for d in dispatcher.deliveries],
        "delivered": n,
        "received": received,
        "webhook_signatures_valid": signed,
        "audit": {"records": report.records, "ok": report.ok, "problems": report.problems[:3]},
    }


__all__ = ["DigitsOutputs", "SimulatedClock", "campaign_batches", "demo_rules", "digits_outputs", "run_demo"]
