"""What every SIEM sink does: ``send`` one OCSF event, ``flush`` what is buffered, ``close``.

Alert dispatch (``modelshield.monitor.alerts``) and ``modelshield siem export`` both deliver through this
protocol, so a new destination is one new class.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

from modelshield.core.errors import ModelShieldError


@runtime_checkable
class Sink(Protocol):
    """A destination for OCSF events."""

    def send(self, event: dict[str, Any]) -> None:
        """Hand over one event; raises ``SinkError`` when it cannot be accepted (never loses it silently)."""

    def flush(self) -> None:
        """Deliver (or make durable) everything handed over so far."""

    def close(self) -> None:
        """Flush, then release sockets, files and threads."""


class SinkError(ModelShieldError):
    """An event could not be handed to its destination."""

    hint = "check that the SIEM destination is reachable, and its address, port and certificates"


def dumps(event: dict[str, Any]) -> str:
    """One event as a compact JSON line body (ASCII, so it is safe in syslog and any transport)."""
    return json.dumps(event, ensure_ascii=True, separators=(",", ":"))
