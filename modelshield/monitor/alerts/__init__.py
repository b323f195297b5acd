"""Alerts on what the monitors and the gateway see: rules in a YAML file (threshold, rate, absence of data),
deduplication, escalation chains (severity → routes with delays), delivery to a webhook, email and a SIEM, and
every fired, escalated, acknowledged and resolved alert recorded in the audit log.

    rules = load_rules(Path("alerts.yaml"))
    dispatcher = AlertDispatcher(AlertEngine(rules), build_channels(rules.routes), audit_log)
    for alarm in output_monitor.update(batch):
        dispatcher.observe(output_alarm_signal(alarm))
    dispatcher.tick()  # absence rules, quiet alerts resolving, escalation steps due
"""

from modelshield.monitor.alerts.channels import DeliveryError, Sink, build_channels
from modelshield.monitor.alerts.dispatch import AlertDispatcher, AuditFollower, Delivery, send_test
from modelshield.monitor.alerts.engine import Alert, AlertEngine, Notice
from modelshield.monitor.alerts.events import AlertEvent, alert_event
from modelshield.monitor.alerts.rules import RulesFile, load_rules, parse_rules
from modelshield.monitor.alerts.signals import (
    Signal,
    drift_signal,
    output_alarm_signal,
    signal_event,
    training_alarm_signal,
)

__all__ = [
    "Alert",
    "AlertDispatcher",
    "AlertEngine",
    "AlertEvent",
    "AuditFollower",
    "Delivery",
    "DeliveryError",
    "Notice",
    "RulesFile",
    "Signal",
    "Sink",
    "alert_event",
    "build_channels",
    "drift_signal",
    "load_rules",
    "output_alarm_signal",
    "parse_rules",
    "send_test",
    "signal_event",
    "training_alarm_signal",
]
