"""End to end: a simulated poisoning campaign raises one alert that reaches the webhook, email and syslog; the
audit log holds typed alert records and still verifies; `alerts run` follows the gateway's audit records; an
acknowledgement written by `alerts ack` stops the escalation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelshield.audit import AuditLog, generate_keypair, load_private_key, load_public_key, verify_log
from modelshield.monitor.alerts.channels import build_channels
from modelshield.monitor.alerts.dispatch import AlertDispatcher, AuditFollower, acknowledge_in_log
from modelshield.monitor.alerts.engine import AlertEngine
from modelshield.monitor.alerts.events import AlertEvent
from modelshield.monitor.alerts.loopback import SmtpReceiver, SyslogReceiver, WebhookReceiver
from modelshield.monitor.alerts.rules import RulesFile
from modelshield.monitor.alerts.signals import read_records

if TYPE_CHECKING:
    from conftest import RunMain


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def receivers() -> Iterator[tuple[WebhookReceiver, SmtpReceiver, SyslogReceiver]]:
    hook, smtp, syslog = WebhookReceiver(), SmtpReceiver(), SyslogReceiver("tcp")
    yield hook, smtp, syslog
    hook.close()
    smtp.close()
    syslog.close()


def _rules(hook: WebhookReceiver, smtp: SmtpReceiver, syslog: SyslogReceiver) -> dict[str, Any]:
    return {
        "version": 1,
        "routes": {
            "siem": {"type": "syslog", "host": "127.0.0.1", "port": syslog.port, "protocol": "tcp"},
            "oncall": {"type": "webhook", "url": hook.url},
            "secops": {
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp.port,
                "sender": "ms@x.org",
                "to": ["s@x.org"],
            },
        },
        "escalation": {"critical": [{"route": "siem"}, {"route": "oncall"}, {"route": "secops", "after_s": 60}]},
        "rules": [],
    }


def test_the_alerts_demo_reaches_webhook_email_and_syslog(run_main: RunMain, tmp_path: Path) -> None:
    code, out, err = run_main("monitor", "alerts", "demo", "--out", str(tmp_path))
    assert code == 0, err
    result = json.loads((tmp_path / "alerts.json").read_text())
    (alert,) = result["alerts"]  # one alert for a sustained campaign, however often the detectors re-fired
    assert alert["count"] > 10 and alert["labels"] == {"stream": "class:0"} and alert["state"] == "resolved"
    assert 0 < result["first_alert_after"] <= 2_000
    got = result["received"]
    assert [json.loads(w["body"])["action"] for w in got["webhook"]] == ["alert.fired", "alert.resolved"]
    # the SIEM files one finding, created then closed
    findings = [s["event"] for s in got["syslog"]]
    assert [f["activity_name"] for f in findings] == ["Create", "Close"]
    assert {f["finding_info"]["uid"] for f in findings} == {alert["id"]}
    # email is the chain's late step: it hears of the alert by escalation, then of its end
    assert [m["subject"].split("]")[1].split(":")[0].strip() for m in got["email"]] == [
        "alert.escalated", "alert.resolved"]  # fmt: skip
    assert result["webhook_signatures_valid"] and result["audit"]["ok"]
    assert "email    received 2: alert.escalated, alert.resolved" in out
    # the audit log verifies with its key and holds the three typed alert records
    from modelshield.core.storage import open_engine

    db = open_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        assert verify_log(db, load_public_key(tmp_path / "audit.pub")).ok
        events = [e for _, _, e in read_records(db)]
    finally:
        db.dispose()
    assert [e["action"] for e in events] == ["alert.fired", "alert.escalated", "alert.resolved"]
    for e in events:
        AlertEvent.model_validate_json(json.dumps(e), strict=False)


def test_alerts_run_follows_gateway_records_and_ack_stops_escalation(
    receivers: tuple[WebhookReceiver, SmtpReceiver, SyslogReceiver], tmp_path: Path
) -> None:
    hook, smtp, syslog = receivers
    rules = _rules(hook, smtp, syslog)
    rules["rules"] = [
        {"name": "denials", "kind": "rate", "signal": "gateway.deny", "window_s": 300, "count": 5,
         "group_by": ["subject"], "severity": "critical"},
        {"name": "extraction", "kind": "threshold", "signal": "security.extraction", "value": 1,
         "group_by": ["subject"], "severity": "critical"},
    ]  # fmt: skip
    parsed = RulesFile.model_validate(rules)
    key = tmp_path / "audit.key"
    generate_keypair(key, tmp_path / "audit.pub")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    clock = Clock()
    with AuditLog.open(url, signing_key=load_private_key(key), durability="process") as audit:
        follower = AuditFollower(
            AlertDispatcher(AlertEngine(parsed, clock=clock), build_channels(parsed.routes), audit),
            audit.engine,
            tmp_path / "state.json",
        )
        # the gateway's records, as pipeline.audited writes them: mallory is refused again and again
        for i in range(8):
            audit.append({"action": "predict", "model": "digits", "decision": "deny", "status_code": 403,
                          "reason": "not allowed", "request_id": f"r{i}", "client_ip": "127.0.0.1",
                          "actor": {"subject": "mallory", "method": "api_key", "tenant": None}})  # fmt: skip
        audit.append({"action": "predict", "model": "digits", "decision": "allow", "status_code": 200,
                      "actor": {"subject": "alice", "method": "api_key", "tenant": None}})  # fmt: skip
        audit.append({"time": "2026-01-01T00:00:00+00:00", "action": "security.extraction", "model": "digits",
                      "decision": "flag", "actor": {"subject": "eve", "method": "api_key", "tenant": None},
                      "reason": "queries look like model extraction", "extraction": {"score": 3.2}})  # fmt: skip
        first = follower.poll()
        assert sorted((d.action, d.route) for d in first) == [
            ("fired", "oncall"), ("fired", "oncall"), ("fired", "siem"), ("fired", "siem")]  # fmt: skip
        alerts = {a.rule: a for a in follower.dispatcher.engine.firing()}
        assert alerts["denials"].labels == {"subject": "mallory"} and alerts["extraction"].labels == {"subject": "eve"}
        # someone takes the extraction alert (as `alerts ack` does, through the log); the other one escalates
        acknowledge_in_log(audit, alerts["extraction"].id, "alice")
        clock.now += 61
        later = follower.poll()
        assert sorted((d.action, d.alert_id, d.route) for d in later) == sorted(
            [("acknowledged", alerts["extraction"].id, "siem"), ("acknowledged", alerts["extraction"].id, "oncall"),
             ("escalated", alerts["denials"].id, "secops")])  # fmt: skip
        assert follower.poll() == []  # nothing new, nothing sent twice
        audit.checkpoint()
        actions = [e["action"] for _, _, e in read_records(audit.engine) if e["action"].startswith("alert.")]
        assert actions == ["alert.fired", "alert.fired", "alert.acknowledged", "alert.escalated"]
        assert verify_log(audit.engine, load_public_key(tmp_path / "audit.pub")).ok
    (mail,) = smtp.wait(1)
    assert "alert.escalated: denials" in mail["subject"]
    assert len(hook.wait(3)) == 3 and len(syslog.wait(3)) == 3  # fired ×2, acknowledged ×1 each
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["cursor"] == 14 and {a["rule"] for a in state["alerts"]} == {"denials", "extraction"}


def test_alerts_run_once_and_test_from_the_command_line(
    run_main: RunMain, receivers: tuple[WebhookReceiver, SmtpReceiver, SyslogReceiver], tmp_path: Path
) -> None:
    hook, smtp, syslog = receivers
    rules = _rules(hook, smtp, syslog)
    rules["rules"] = [{"name": "guard", "kind": "rate", "signal": "gateway.guard_reject", "window_s": 300,
                       "count": 3, "severity": "critical"}]  # fmt: skip
    rules_file = tmp_path / "rules.yaml"
    import yaml

    rules_file.write_text(yaml.safe_dump(rules))
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog.open(url, durability="process") as audit:
        for _ in range(3):
            audit.append({"action": "predict", "model": "digits", "decision": "guard_reject", "status_code": 422,
                          "actor": {"subject": "bob", "method": "api_key", "tenant": None}})  # fmt: skip
    state = str(tmp_path / "state.json")
    code, out, err = run_main("monitor", "alerts", "run", "--rules", str(rules_file), "--audit-db", url, "--once",
                              "--state", state)  # fmt: skip
    assert code == 0, err
    assert out.count("fired") == 2 and "→ siem: ok" in out and "→ oncall: ok" in out
    assert "read through record 3; 1 alert(s) firing" in out
    code, out, _ = run_main("monitor", "alerts", "run", "--rules", str(rules_file), "--audit-db", url, "--once",
                            "--state", state)  # fmt: skip
    assert code == 0 and "fired" not in out and "read through record 4" in out  # its own alert record
    alert_id = json.loads(hook.wait(1)[0]["body"])["alert"]["id"]
    code, out, _ = run_main("monitor", "alerts", "ack", alert_id, "--by", "carol", "--audit-db", url)
    assert code == 0 and "acknowledged by carol" in out
    code, _, err = run_main("monitor", "alerts", "ack", alert_id, "--by", "dave", "--audit-db", url)
    assert code == 2 and "already acknowledged by carol" in err
    code, out, err = run_main("monitor", "alerts", "test", "--rules", str(rules_file), "--route", "secops")
    assert code == 0 and "delivered" in out
    assert smtp.wait(1)[0]["subject"].startswith("[modelshield info] alert.fired: test")
    code, _, err = run_main("monitor", "alerts", "test", "--rules", str(rules_file), "--route", "nope")
    assert code == 2 and "no route named 'nope'" in err
    missing = f"sqlite:///{tmp_path / 'typo.db'}"  # never created by looking: absence rules would all fire on it
    code, _, err = run_main("monitor", "alerts", "run", "--rules", str(rules_file), "--audit-db", missing, "--once")
    assert code == 2 and "typo.db does not exist" in err and not (tmp_path / "typo.db").exists()
