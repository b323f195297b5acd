"""The monitors' findings reach the rules: a drift check recorded by `monitor drift --audit-db`, a training loop's
data-access alarms, and a signal published through the audit log by another process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.datasets import load_wine
from torch.utils.data import DataLoader, SequentialSampler, TensorDataset

from modelshield.audit import AuditLog
from modelshield.monitor.alerts.channels import Sink
from modelshield.monitor.alerts.dispatch import AlertDispatcher, AuditFollower
from modelshield.monitor.alerts.engine import AlertEngine
from modelshield.monitor.alerts.rules import RulesFile
from modelshield.monitor.alerts.signals import Signal, record_signal, signal_event, training_alarm_signal
from modelshield.monitor.live import alarm_dict
from modelshield.monitor.outputs import OutputMonitor, OutputReference
from modelshield.monitor.training import DataAccessMonitor

if TYPE_CHECKING:
    from conftest import RunMain


class Collect:
    """A ``Sink`` that keeps what it is sent (stands in for a SIEM forwarder from another package)."""

    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []

    def send(self, event: dict[str, object]) -> None:
        self.events.append(event)


RULES = {
    "version": 1,
    "routes": {"siem": {"type": "syslog", "host": "127.0.0.1"}},
    "escalation": {"medium": [{"route": "siem"}], "high": [{"route": "siem"}]},
    "rules": [
        {"name": "drift", "kind": "threshold", "signal": "drift.report", "value": 2, "severity": "medium",
         "summary": "{value} drifted: {drifted}"},
        {"name": "data-order", "kind": "threshold", "signal": "training.alarm", "op": ">", "value": 0,
         "group_by": ["check"], "severity": "high"},
        {"name": "custom", "kind": "rate", "signal": "labeler.*", "where": {"team": "a"}, "window_s": 60,
         "count": 2, "severity": "medium"},
    ],
}  # fmt: skip


def test_drift_check_recorded_in_the_audit_log_raises_an_alert(run_main: RunMain, tmp_path: Path) -> None:
    wine = load_wine(as_frame=True).frame.drop(columns="target")
    reference, current = wine.iloc[::2], wine.iloc[1::2].copy()
    current["alcohol"] += 1.5
    current["proline"] *= 1.6
    reference.to_csv(tmp_path / "ref.csv", index=False)
    current.to_csv(tmp_path / "cur.csv", index=False)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    code, _, err = run_main("monitor", "drift", "--reference", str(tmp_path / "ref.csv"), "--current",
                            str(tmp_path / "cur.csv"), "--no-mmd", "--audit-db", url)  # fmt: skip
    assert code == 1, err
    sink = Collect()
    rules = RulesFile.model_validate(RULES)
    with AuditLog.open(url, durability="process") as audit:
        follower = AuditFollower(AlertDispatcher(AlertEngine(rules), {"siem": sink}, audit), audit.engine)
        (delivery,) = follower.poll()
    assert delivery.ok and delivery.route == "siem"
    (event,) = sink.events
    assert event["action"] == "alert.fired"
    assert event["alert"]["summary"] == "2 drifted: alcohol,proline"  # type: ignore[index]


def test_training_alarms_and_published_signals_fire_rules() -> None:
    x = np.random.default_rng(0).normal(size=(600, 4)).astype(np.float32)
    y = np.repeat(np.arange(3), 200)
    ds = TensorDataset(torch.from_numpy(x))
    monitor = DataAccessMonitor(len(ds), 32, labels=y)
    for _ in monitor.batches(DataLoader(ds, batch_size=32, sampler=monitor.sampler(SequentialSampler(ds)))):
        pass  # not shuffled, and batches that hold one class each
    sink: Sink = Collect()
    dispatcher = AlertDispatcher(AlertEngine(RulesFile.model_validate(RULES)), {"siem": sink})
    dispatcher.observe_all(training_alarm_signal(a) for a in monitor.alarms)
    assert {a.labels["check"] for a in dispatcher.engine.firing()} == {"shuffle", "batch-mix"}
    # any process can publish its own signals through the audit log; labels must match `where`
    now = time.time()
    for team in ("a", "b", "a"):
        event = signal_event(Signal("labeler.disagreement", now, 0.4, {"team": team}))
        signal = record_signal(event, int(now * 1e6))
        assert signal is not None
        dispatcher.observe(signal)
    assert {a.rule for a in dispatcher.engine.firing()} == {"data-order", "custom"}
    assert [e["action"] for e in sink.events] == ["alert.fired"] * 3  # type: ignore[attr-defined]


def test_the_gateways_live_monitor_records_raise_alerts(tmp_path: Path) -> None:
    """`monitor.output_alarm` and `monitor.drift` records, as the gateway's live monitoring writes them."""
    rng = np.random.default_rng(0)
    reference = rng.dirichlet(np.ones(4) * 0.3, size=2000)
    monitor = OutputMonitor(OutputReference.from_outputs(reference))
    shifted = reference[rng.integers(0, 2000, 3000)].copy()
    shifted[::3] = [0.97, 0.01, 0.01, 0.01]  # a third of the traffic pushed to class 0
    alarms = [*monitor.update(reference[rng.integers(0, 2000, 1000)]), *monitor.update(shifted)]
    assert any(a.kind == "poisoning" for a in alarms)
    gateway = {"subject": "modelshield-gateway", "method": "system", "tenant": None}
    rules = RulesFile.model_validate(
        {**RULES, "rules": [{"name": "poisoning", "kind": "threshold", "signal": "outputs.alarm", "op": ">",
                             "value": 0, "where": {"kind": "poisoning"}, "group_by": ["model", "stream"],
                             "severity": "high"}, RULES["rules"][0]]}  # type: ignore[index]
    )  # fmt: skip
    sink = Collect()
    with AuditLog.open(f"sqlite:///{tmp_path / 'audit.db'}", durability="process") as audit:
        for alarm in alarms:
            audit.append({"time": "2026-12-06T09:00:00+00:00", "actor": gateway, "action": "monitor.output_alarm",
                          "model": "digits", "decision": "flag", "reason": "...", "alarm": alarm_dict(alarm)})  # fmt: skip
        audit.append({"time": "2026-12-06T09:00:00+00:00", "actor": gateway, "action": "monitor.drift",
                      "model": "digits", "decision": "flag", "reason": "5 of 64 input features drifted",
                      "drift": {"rows": 512, "seen": 4000, "drifted": 5, "features": 64, "share": 0.078,
                                "min_p": 1e-9}})  # fmt: skip
        AuditFollower(AlertDispatcher(AlertEngine(rules), {"siem": sink}, audit), audit.engine).poll()
    fired = [e["alert"] for e in sink.events]
    assert {(a["rule"], a["labels"].get("model"), a["labels"].get("stream")) for a in fired} == {  # type: ignore[index]
        ("poisoning", "digits", "class:0"), ("drift", None, None)}  # fmt: skip
