"""SIEM export: audit records and alerts as OCSF events, checked against the OCSF schema, shipped to syslog,
an HTTP collector (with an on-disk spool, so an outage loses nothing) or a file.

    from modelshield.monitor.siem import detection_finding, open_sink, check_event

    sink = open_sink("syslog+tls://siem.example.org:6514", ca_file="ca.pem")
    finding = detection_finding(title="output drift", severity="high", rule="drift", time=time.time(), model="digits")
    check_event(finding)
    sink.send(finding)
    sink.close()
"""

from modelshield.monitor.siem.findings import detection_finding
from modelshield.monitor.siem.schema import OcsfSchema, default_schema
from modelshield.monitor.siem.sinks import (
    FileSink,
    HttpCollectorSink,
    Sink,
    SinkError,
    Spool,
    SpoolFullError,
    SyslogSink,
    open_sink,
)
from modelshield.monitor.siem.validate import OcsfValidationError, Problem, check_event, validate_event

__all__ = [
    "FileSink",
    "HttpCollectorSink",
    "OcsfSchema",
    "OcsfValidationError",
    "Problem",
    "Sink",
    "SinkError",
    "Spool",
    "SpoolFullError",
    "SyslogSink",
    "check_event",
    "default_schema",
    "detection_finding",
    "open_sink",
    "validate_event",
]
