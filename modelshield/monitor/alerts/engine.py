"""The rule engine: signals in, notices out (fired, escalated, resolved, acknowledged), on an injectable clock.

* **Deduplication.** An alert is identified by its rule and the values of the rule's ``group_by`` labels (its
  key). While it is firing, further triggers for the same key are counted into it, not sent again: a sustained
  poisoning alarm that re-fires every window is one alert.
* **Suppression.** After an alert resolves, triggers for its key are counted but fire nothing for
  ``suppress_s`` (a flapping signal), then a new alert may fire.
* **Escalation.** The rule's severity picks a chain of steps (route, ``after_s``). Steps due at once go out with
  the ``fired`` notice; later steps go out as ``escalated`` notices from ``tick()`` while nobody has acknowledged
  the alert. ``resolved`` and ``acknowledged`` notices go to every route already told.

Nothing here sleeps or reads the wall clock directly: ``clock`` (default ``time.time``) is called for "now", so
tests drive escalation by moving a fake clock.
"""

from __future__ import annotations

import fnmatch
import hashlib
import operator
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from modelshield.core.errors import InputError
from modelshield.monitor.alerts.rules import AbsenceRule, RateRule, RulesFile, ThresholdRule
from modelshield.monitor.alerts.signals import Signal

NoticeAction = Literal["fired", "escalated", "resolved", "acknowledged"]
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass
class Alert:
    """One deduplicated alert: a rule firing for one key."""

    id: str
    rule: str
    kind: str
    severity: str
    key: str
    labels: dict[str, str]
    summary: str
    fired_at: float
    last_seen: float
    value: float
    count: int = 1
    #: indices of the escalation steps already sent
    steps_sent: list[int] = field(default_factory=list)
    routes_sent: list[str] = field(default_factory=list)
    state: Literal["firing", "resolved"] = "firing"
    acknowledged_by: str | None = None
    resolved_at: float | None = None
    suppressed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Notice:
    """Something to tell the routes: what happened to which alert, and where to send it."""

    action: NoticeAction
    alert: Alert
    routes: list[str]
    at: float
    by: str | None = None


def _matches(rule: ThresholdRule | RateRule | AbsenceRule, signal: Signal) -> bool:
    if not fnmatch.fnmatchcase(signal.name, rule.signal):
        return False
    return all(signal.labels.get(k) == v for k, v in rule.where.items())


def _key(rule: ThresholdRule | RateRule | AbsenceRule, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    group = {k: labels.get(k, "") for k in rule.group_by}
    return rule.name + "".join(f"|{k}={v}" for k, v in group.items()), group


def _summary(rule: ThresholdRule | RateRule | AbsenceRule, signal: Signal | None, group: Mapping[str, str]) -> str:
    """The rule's own ``summary`` with {labels} filled in, or one written from the rule."""
    labels = {**(signal.labels if signal else {}), **group, "value": f"{signal.value:g}" if signal else ""}
    if rule.summary:
        try:
            return rule.summary.format_map(labels)
        except (KeyError, ValueError, IndexError):
            return rule.summary
    scope = "".join(f" {k}={v}" for k, v in group.items())
    if isinstance(rule, ThresholdRule):
        return f"{rule.signal}{scope} {signal.value if signal else '?':g} {rule.op} {rule.value:g}"
    if isinstance(rule, RateRule):
        return f"{rule.signal}{scope}: {rule.count}+ in {rule.window_s:g} s"
    return f"no {rule.signal} for {rule.for_s:g} s"


class AlertEngine:
    """Evaluate a rules file against signals; ``observe`` and ``tick`` return what to send now."""

    def __init__(self, rules: RulesFile, *, clock: Callable[[], float] = time.time) -> None:
        self.rules = rules
        self.clock = clock
        self.started = clock()
        #: alerts by key: the firing one, or the last resolved one (kept for suppression)
        self.alerts: dict[str, Alert] = {}
        self._by_id: dict[str, Alert] = {}
        self.rate_times: defaultdict[str, deque[float]] = defaultdict(deque)
        self.last_seen: dict[str, float] = {r.name: self.started for r in rules.rules if isinstance(r, AbsenceRule)}

    # -- inputs ---------------------------------------------------------------------------------------------

    def observe(self, signal: Signal) -> list[Notice]:
        """Fold in one signal; the notices it causes (fired or resolved alerts)."""
        now = self.clock()
        out: list[Notice] = []
        for rule in self.rules.rules:
            if not _matches(rule, signal):
                continue
            if isinstance(rule, AbsenceRule):
                self.last_seen[rule.name] = max(self.last_seen[rule.name], signal.at)
                out.extend(self._resolve(rule.name, now))
            elif isinstance(rule, ThresholdRule):
                key, group = _key(rule, signal.labels)
                if _OPS[rule.op](signal.value, rule.value):
                    out.extend(self._trigger(rule, key, group, signal, now))
                else:
                    out.extend(self._resolve(key, now))
            else:
                key, group = _key(rule, signal.labels)
                times = self.rate_times[key]
                times.append(signal.at)
                while times and times[0] <= now - rule.window_s:
                    times.popleft()
                if len(times) >= rule.count:
                    out.extend(self._trigger(rule, key, group, signal, now, value=float(len(times))))
        return out

    def tick(self) -> list[Notice]:
        """Time-driven changes: absence alerts, rates that fell, threshold alerts gone quiet, escalation steps due."""
        now = self.clock()
        out: list[Notice] = []
        for rule in self.rules.rules:
            if isinstance(rule, AbsenceRule):
                if now - self.last_seen[rule.name] >= rule.for_s:
                    out.extend(self._trigger(rule, rule.name, {}, None, now, value=now - self.last_seen[rule.name]))
            elif isinstance(rule, RateRule):
                for key, times in self.rate_times.items():
                    if not key.startswith(rule.name + "|") and key != rule.name:
                        continue
                    while times and times[0] <= now - rule.window_s:
                        times.popleft()
                    if len(times) < rule.count:
                        out.extend(self._resolve(key, now))
            else:
                for alert in list(self.alerts.values()):
                    if (
                        alert.rule == rule.name
                        and alert.state == "firing"
                        and now - alert.last_seen >= rule.resolve_after_s
                    ):
                        out.extend(self._resolve(alert.key, now))
        for alert in self.alerts.values():
            if alert.state == "firing" and alert.acknowledged_by is None:
                routes = self._due_steps(alert, now)
                if routes:
                    out.append(Notice("escalated", alert, routes, now))
        return out

    def acknowledge(self, alert_id: str, by: str) -> list[Notice]:
        """Someone is on it: stop escalating. Acknowledging twice (or a resolved alert) changes nothing."""
        alert = self._by_id.get(alert_id)
        if alert is None:
            raise InputError(f"no alert with id {alert_id!r}", hint="the ids are in the alert.fired audit records")
        if alert.state != "firing" or alert.acknowledged_by is not None:
            return []
        alert.acknowledged_by = by
        return [Notice("acknowledged", alert, list(alert.routes_sent), self.clock(), by)]

    def firing(self) -> list[Alert]:
        return [a for a in self.alerts.values() if a.state == "firing"]

    def get(self, alert_id: str) -> Alert | None:
        return self._by_id.get(alert_id)

    # -- state ----------------------------------------------------------------------------------------------

    def _trigger(
        self,
        rule: ThresholdRule | RateRule | AbsenceRule,
        key: str,
        group: dict[str, str],
        signal: Signal | None,
        now: float,
        value: float | None = None,
    ) -> list[Notice]:
        value = signal.value if value is None and signal is not None else value or 0.0
        alert = self.alerts.get(key)
        if alert is not None and alert.state == "firing":  # deduplicated
            alert.count += 1
            alert.last_seen = now
            alert.value = value
            return []
        if alert is not None and alert.resolved_at is not None and now - alert.resolved_at < rule.suppress_s:
            alert.suppressed += 1
            return []
        fired = Alert(
            id=hashlib.sha256(f"{key}@{now!r}".encode()).hexdigest()[:16],
            rule=rule.name,
            kind=rule.kind,
            severity=rule.severity,
            key=key,
            labels=group,
            summary=_summary(rule, signal, group),
            fired_at=now,
            last_seen=now,
            value=value,
            suppressed=alert.suppressed if alert is not None else 0,
        )
        self.alerts[key] = fired
        self._by_id[fired.id] = fired
        return [Notice("fired", fired, self._due_steps(fired, now), now)]

    def _resolve(self, key: str, now: float) -> list[Notice]:
        alert = self.alerts.get(key)
        if alert is None or alert.state != "firing":
            return []
        alert.state = "resolved"
        alert.resolved_at = now
        alert.suppressed = 0
        if alert.rule in self.last_seen:  # the absence clock restarts from the signal that ended it
            self.last_seen[alert.rule] = max(self.last_seen[alert.rule], now)
        return [Notice("resolved", alert, list(alert.routes_sent), now)]

    def _due_steps(self, alert: Alert, now: float) -> list[str]:
        """Routes of the escalation steps that are due and not yet sent (marked sent)."""
        routes = []
        for i, step in enumerate(self.rules.escalation[alert.severity]):  # type: ignore[index]
            if i not in alert.steps_sent and now - alert.fired_at >= step.after_s:
                alert.steps_sent.append(i)
                if step.route not in alert.routes_sent:
                    alert.routes_sent.append(step.route)
                    routes.append(step.route)
        return routes

    def restore(self, alert: Alert) -> None:
        """Take back an alert from a saved state (the audit log's latest ``alert.*`` record of it)."""
        current = self.alerts.get(alert.key)
        if current is None or current.fired_at <= alert.fired_at:
            self.alerts[alert.key] = alert
        self._by_id[alert.id] = alert


__all__ = ["Alert", "AlertEngine", "Notice", "NoticeAction"]
