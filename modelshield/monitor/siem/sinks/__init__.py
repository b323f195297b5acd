"""SIEM destinations for OCSF events: syslog (RFC 5424 over UDP/TCP/TLS), an HTTP collector (spooled), a file.

``open_sink("syslog+tls://siem:6514", ca_file=...)`` picks one from a URL, the way ``modelshield siem export
--to`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelshield.core.errors import InputError
from modelshield.core.storage import data_home
from modelshield.monitor.siem.sinks.base import Sink, SinkError
from modelshield.monitor.siem.sinks.file import FileSink
from modelshield.monitor.siem.sinks.http import HttpCollectorSink
from modelshield.monitor.siem.sinks.spool import Spool, SpoolFullError, SpoolStatus
from modelshield.monitor.siem.sinks.syslog import SyslogSink

_SYSLOG = {"syslog": "udp", "syslog+udp": "udp", "syslog+tcp": "tcp", "syslog+tls": "tls"}
_DEFAULT_PORT = {"udp": 514, "tcp": 514, "tls": 6514}


def default_spool() -> Path:
    """Where the HTTP collector's spool lives unless told: ``$MODELSHIELD_HOME/siem-spool.db``."""
    return data_home() / "siem-spool.db"


def open_sink(
    destination: str, *, ca_file: str | None = None, spool: Path | str | None = None, **http_options: Any
) -> Sink:
    """A sink for ``destination``: ``syslog://host:port`` (UDP), ``syslog+tcp://``, ``syslog+tls://``,
    ``http(s)://collector/path`` (spooled in ``spool``, default ``default_spool()``), or a file path (JSON lines)."""
    parts = urlsplit(destination)
    if parts.scheme in _SYSLOG:
        if not parts.hostname:
            raise InputError(f"syslog destination {destination!r} has no host")
        transport = _SYSLOG[parts.scheme]
        try:
            port = parts.port or _DEFAULT_PORT[transport]
        except ValueError as exc:
            raise InputError(f"bad port in {destination!r}: {exc}") from None
        return SyslogSink(parts.hostname, port, transport, ca_file=ca_file)  # type: ignore[arg-type]
    if parts.scheme in ("http", "https"):
        return HttpCollectorSink(destination, spool or default_spool(), ca_file=ca_file, **http_options)
    if parts.scheme and len(parts.scheme) > 1:
        raise InputError(
            f"unknown destination scheme {parts.scheme!r} (syslog, syslog+tcp, syslog+tls, http, https or a file)"
        )
    return FileSink(destination)


__all__ = [
    "FileSink",
    "HttpCollectorSink",
    "Sink",
    "SinkError",
    "Spool",
    "SpoolFullError",
    "SpoolStatus",
    "SyslogSink",
    "default_spool",
    "open_sink",
]
