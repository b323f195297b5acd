"""The blue side: what the gateway saw of each attack, read from its audit log and the alert rules over it.

Controls, by the audit records they leave:

* ``rate_limited``, ``denied``, ``guard_reject``, ``guard_fallback`` (the guard abstained), ``invalid``: the
  decision on each predict request, credited to the attack whose API key made it. These are controls *acting*
  on one request; nobody is told;
* ``extraction_signal``: a ``security.extraction`` event for the attack's key;
* ``drift_alarm`` / ``output_alarm``: the live monitor's ``monitor.drift`` / ``monitor.output_alarm`` records.
  They are about the model, not a caller, so they are credited to the attack running then (its time window,
  plus ``settle_s`` for a check that reads the window after the last query);
* ``alert:<rule>``: an alert rule (:mod:`modelshield.monitor.alerts`) fired by those records' signals, replayed
  through the engine on the records' own clock; credited by its ``subject`` label, else by time window.

The others are *detections*: someone is told (the extraction signal and the monitor's alarms are themselves
security events on the dashboard's feed). An attack is ``detected`` once one of them is credited to it. A
control's time is mapped to the attacker's query count with the attack's timeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from modelshield.monitor.alerts.engine import AlertEngine
from modelshield.monitor.alerts.rules import RulesFile
from modelshield.monitor.alerts.signals import read_records, record_signal
from modelshield.redteam.campaign import AttackRun

#: predict decisions that are a control acting (``allow`` is not)
_DECISIONS = {
    "deny": "denied",
    "rate_limited": "rate_limited",
    "guard_reject": "guard_reject",
    "guard_fallback": "guard_fallback",
    "invalid": "invalid",
}
_MODEL_EVENTS = {"monitor.drift": "drift_alarm", "monitor.output_alarm": "output_alarm"}


@dataclass(frozen=True)
class Detection:
    """One control acting: which, when (gateway clock, seconds), against whom (None: the model as a whole), and
    whether it tells someone (``alert``) or only acts on one request."""

    control: str
    at: float
    subject: str | None
    alert: bool = True


def blue_rules() -> RulesFile:
    """The blue team's default alert rules: one per control, grouped by caller where the signal names one.

    The route is a syslog target that is never contacted: the red-team run replays the rules to see what would
    fire, it sends nothing.
    """
    rules: list[dict[str, Any]] = [
        {"name": "extraction-suspect", "kind": "threshold", "signal": "security.extraction", "value": 1},
        {"name": "throttled-caller", "kind": "rate", "signal": "gateway.rate_limited", "window_s": 60, "count": 3},
        {"name": "guard-abstentions", "kind": "rate", "signal": "gateway.guard_fallback", "window_s": 60, "count": 10},
        {"name": "guard-rejections", "kind": "rate", "signal": "gateway.guard_reject", "window_s": 60, "count": 3},
        {"name": "denied-caller", "kind": "rate", "signal": "gateway.deny", "window_s": 60, "count": 3},
        {"name": "input-drift", "kind": "threshold", "signal": "drift.report", "value": 1, "group_by": ["model"]},
        {"name": "output-alarm", "kind": "threshold", "signal": "outputs.alarm", "value": 1, "group_by": ["model"]},
    ]
    for rule in rules:
        rule.setdefault("group_by", ["subject"])
        rule.setdefault("severity", "high")
        rule["suppress_s"] = 0
    return RulesFile.model_validate(
        {
            "version": 1,
            "routes": {"soc": {"type": "syslog", "host": "127.0.0.1", "port": 514, "protocol": "udp"}},
            "escalation": {"high": [{"route": "soc"}]},
            "rules": rules,
        }
    )


def _event_time(event: Mapping[str, Any], recorded_at_us: int) -> float:
    """The gateway's own time of the event (set before the answer left), else when the log recorded it."""
    raw = event.get("time")
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw).timestamp()
        except ValueError:
            pass
    return recorded_at_us / 1e6


def read_detections(engine: Engine, rules: RulesFile | None, *, since: float) -> list[Detection]:
    """Every control that acted from ``since`` on, from the audit log, plus the alerts its records fire."""
    found: list[Detection] = []
    clock = [since]
    alerts = AlertEngine(rules, clock=lambda: clock[0]) if rules is not None else None
    for _seq, recorded_at, event in read_records(engine, since=since):
        at = _event_time(event, recorded_at)
        action = str(event.get("action", ""))
        actor = event.get("actor")
        subject = actor.get("subject") if isinstance(actor, dict) else None
        if action == "predict" and event.get("decision") in _DECISIONS:
            found.append(Detection(_DECISIONS[str(event["decision"])], at, subject, alert=False))
        elif action == "security.extraction":
            found.append(Detection("extraction_signal", at, subject))
        elif action in _MODEL_EVENTS:
            found.append(Detection(_MODEL_EVENTS[action], at, None))
        if alerts is None:
            continue
        signal = record_signal(event, recorded_at)
        if signal is None:
            continue
        clock[0] = max(clock[0], signal.at)
        for notice in alerts.observe(signal):
            if notice.action == "fired":
                who = notice.alert.labels.get("subject") or None
                found.append(Detection(f"alert:{notice.alert.rule}", notice.at, who))
    return sorted(found, key=lambda d: d.at)


def _credited(run: AttackRun, d: Detection, settle_s: float) -> bool:
    """Whether ``d`` belongs to ``run``: its key's events in its time window, or a model-wide one in the window."""
    if not run.started <= d.at <= run.finished + settle_s:
        return False
    return d.subject == run.subject if d.subject is not None else True


def score_attack(run: AttackRun, detections: Iterable[Detection], *, settle_s: float = 3.0) -> dict[str, Any]:
    """The joint report's row for one attack: the red side's figures and what the blue side saw of it."""
    mine = [d for d in detections if _credited(run, d, settle_s)]
    controls: dict[str, dict[str, Any]] = {}
    for d in mine:
        c = controls.setdefault(
            d.control,
            {
                "count": 0,
                "alert": d.alert,
                "credited_by": "identity" if d.subject is not None else "time_window",
                "first_after_queries": run.trace.queries_at(d.at),
            },
        )
        c["count"] += 1
    alerts = {k: c["first_after_queries"] for k, c in controls.items() if c["alert"]}
    first = min(alerts.values(), default=None)
    first_controls = sorted(k for k, q in alerts.items() if q == first)
    acted = min((c["first_after_queries"] for c in controls.values()), default=None)
    return {
        "attack": run.attack,
        "subject": run.subject,
        "queries": run.queries,
        "budget": run.budget,
        "success": round(run.success, 4),
        "success_metric": run.success_metric,
        "stop_reason": run.stop_reason,
        "stopped_by": run.refusal,
        "detected": first is not None,
        "detected_after_queries": first,
        "first_controls": first_controls,
        "controls": sorted(controls),
        "first_action_after_queries": acted,
        "control_detail": controls,
        "attacker_had_at_detection": None if first is None else round(run.got_at(first), 4),
        "seconds": round(run.finished - run.started, 2),
        "details": run.details,
    }


def score_campaign(
    runs: list[AttackRun], engine: Engine, rules: RulesFile | None = None, *, settle_s: float = 3.0
) -> list[dict[str, Any]]:
    """Score every attack of a campaign against one read of the audit log (from the first attack's start)."""
    if not runs:
        return []
    detections = read_detections(engine, rules, since=min(r.started for r in runs) - 1.0)
    return [score_attack(r, detections, settle_s=settle_s) for r in runs]
