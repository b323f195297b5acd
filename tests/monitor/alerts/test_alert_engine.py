"""The rule engine on a fake clock: deduplication, suppression, escalation timing, acknowledgement, and the
threshold, rate and absence rules firing and resolving."""

from __future__ import annotations

from typing import Any

import pytest

from modelshield.core.errors import InputError
from modelshield.monitor.alerts.engine import AlertEngine
from modelshield.monitor.alerts.rules import RulesFile
from modelshield.monitor.alerts.signals import Signal


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def rules(*rule: dict[str, Any]) -> RulesFile:
    return RulesFile.model_validate(
        {
            "version": 1,
            "routes": {
                "siem": {"type": "syslog", "host": "127.0.0.1"},
                "hook": {"type": "webhook", "url": "http://127.0.0.1:9/x"},
                "mail": {"type": "email", "host": "127.0.0.1", "sender": "a@b", "to": ["c@d"]},
            },
            "escalation": {
                "critical": [{"route": "siem"}, {"route": "hook"}, {"route": "mail", "after_s": 300}],
                "medium": [{"route": "siem"}],
            },
            "rules": list(rule),
        }
    )


POISONING = {
    "name": "poisoning",
    "kind": "threshold",
    "signal": "outputs.alarm",
    "where": {"kind": "poisoning"},
    "op": ">",
    "value": 0,
    "severity": "critical",
    "group_by": ["stream"],
    "resolve_after_s": 120,
    "suppress_s": 60,
}


def alarm(clock: Clock, stream: str = "class:0", kind: str = "poisoning") -> Signal:
    return Signal("outputs.alarm", clock.now, 16.0, {"kind": kind, "stream": stream, "detector": "cusum"})


def test_a_sustained_alarm_is_one_alert_per_stream() -> None:
    clock = Clock()
    engine = AlertEngine(rules(POISONING), clock=clock)
    notices = []
    for _ in range(50):  # the detectors re-fire every few windows while the campaign goes on
        clock.now += 5
        notices += engine.observe(alarm(clock))
    assert [n.action for n in notices] == ["fired"]
    assert notices[0].routes == ["siem", "hook"]  # the steps due at once; email waits for escalation
    (alert,) = engine.firing()
    assert alert.count == 50 and alert.labels == {"stream": "class:0"}
    # another stream is another alert; an evasion alarm matches nothing
    assert [n.action for n in engine.observe(alarm(clock, "class:3"))] == ["fired"]
    assert engine.observe(alarm(clock, "confidence", "evasion")) == []
    assert len(engine.firing()) == 2


def test_escalation_waits_for_after_s_and_stops_when_acknowledged() -> None:
    clock = Clock()
    engine = AlertEngine(rules(POISONING), clock=clock)
    (fired,) = engine.observe(alarm(clock))
    clock.now += 299
    engine.observe(alarm(clock))  # keep it firing
    assert engine.tick() == []
    clock.now += 1
    (escalated,) = engine.tick()
    assert (escalated.action, escalated.routes, escalated.alert.id) == ("escalated", ["mail"], fired.alert.id)
    assert engine.tick() == []  # each step once

    clock2 = Clock()
    acked = AlertEngine(rules(POISONING), clock=clock2)
    (fired2,) = acked.observe(alarm(clock2))
    clock2.now += 10
    (ack,) = acked.acknowledge(fired2.alert.id, "alice")
    assert ack.action == "acknowledged" and ack.routes == ["siem", "hook"] and ack.by == "alice"
    assert acked.acknowledge(fired2.alert.id, "bob") == []
    clock2.now += 1000
    acked.observe(alarm(clock2))
    assert [n.action for n in acked.tick()] == []
    with pytest.raises(InputError, match="no alert"):
        acked.acknowledge("0" * 16, "alice")


def test_quiet_threshold_alert_resolves_then_is_suppressed_while_flapping() -> None:
    clock = Clock()
    engine = AlertEngine(rules(POISONING), clock=clock)
    engine.observe(alarm(clock))
    clock.now += 119
    assert engine.tick() == []
    clock.now += 1
    (resolved,) = engine.tick()
    assert resolved.action == "resolved" and resolved.routes == ["siem", "hook"]
    clock.now += 30  # inside suppress_s: counted, not sent
    assert engine.observe(alarm(clock)) == []
    clock.now += 31
    (again,) = engine.observe(alarm(clock))
    assert again.action == "fired" and again.alert.suppressed == 1 and again.alert.id != resolved.alert.id


def test_threshold_resolves_when_a_gauge_falls_back() -> None:
    drift = {"name": "drift", "kind": "threshold", "signal": "drift.report", "value": 3, "severity": "medium"}
    clock = Clock()
    engine = AlertEngine(rules(drift), clock=clock)
    assert engine.observe(Signal("drift.report", clock.now, 2.0)) == []
    assert [n.action for n in engine.observe(Signal("drift.report", clock.now, 5.0))] == ["fired"]
    assert [n.action for n in engine.observe(Signal("drift.report", clock.now, 0.0))] == ["resolved"]


def test_rate_rule_counts_within_its_window_per_group() -> None:
    deny = {
        "name": "denials", "kind": "rate", "signal": "gateway.deny", "window_s": 60, "count": 5,
        "group_by": ["subject"], "severity": "medium", "suppress_s": 0,
    }  # fmt: skip
    clock = Clock()
    engine = AlertEngine(rules(deny), clock=clock)

    def deny_from(who: str) -> list[Any]:
        return engine.observe(Signal("gateway.deny", clock.now, 1.0, {"subject": who}))

    out = []
    for _ in range(4):
        clock.now += 20  # 4 in 60 s: below the rate
        out += deny_from("mallory")
    assert out == []
    for _ in range(5):
        clock.now += 5
        out += deny_from("mallory")
        out += deny_from("alice") if clock.now % 10 == 0 else []
    assert [(n.action, n.alert.labels["subject"]) for n in out] == [("fired", "mallory")]
    assert "5+ in 60 s" in out[0].alert.summary
    clock.now += 61
    assert [n.action for n in engine.tick()] == ["resolved"]


def test_absence_rule_fires_on_silence_and_resolves_on_the_next_signal() -> None:
    silent = {"name": "silent", "kind": "absence", "signal": "gateway.*", "for_s": 600, "severity": "medium"}
    clock = Clock()
    engine = AlertEngine(rules(silent), clock=clock)
    clock.now += 300
    assert engine.observe(Signal("gateway.allow", clock.now)) == []  # traffic resets the clock
    clock.now += 599
    assert engine.tick() == []
    clock.now += 1
    (fired,) = engine.tick()
    assert fired.action == "fired" and fired.alert.summary == "no gateway.* for 600 s"
    clock.now += 60
    assert engine.tick() == []  # still one alert
    (resolved,) = engine.observe(Signal("gateway.deny", clock.now))
    assert resolved.action == "resolved" and resolved.alert.id == fired.alert.id
    assert engine.observe(Signal("outputs.alarm", clock.now)) == []
