"""The alert records written to the audit log — and sent to every route — as one typed event.

``action`` is ``alert.fired``, ``alert.escalated``, ``alert.resolved``, ``alert.acknowledged`` or
``alert.delivery_failed``; ``alert`` is the alert's whole state after the change (so the log alone tells its
story, and the id ties the records of one alert together). The model is strict: an event that does not fit is a
bug here, caught before it reaches the hash chain.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from modelshield.monitor.alerts.engine import Alert, Notice

AlertAction = Literal["alert.fired", "alert.escalated", "alert.resolved", "alert.acknowledged", "alert.delivery_failed"]
ALERT_ACTOR = {"subject": "modelshield-alerts", "method": "system", "tenant": None}


class AlertEvent(BaseModel):
    """One ``alert.*`` audit record."""

    model_config = ConfigDict(extra="forbid", strict=True)

    time: str
    action: AlertAction
    actor: dict[str, str | None]
    decision: Literal["flag"] = "flag"
    reason: str
    alert: Alert
    #: routes this notice goes to (for delivery_failed: the one that failed)
    routes: list[str]
    by: str | None = None
    error: str | None = None


def alert_event(notice: Notice, *, error: str | None = None, route: str | None = None) -> dict[str, Any]:
    """The audit event (and payload) for ``notice``; with ``error``, the record of a failed delivery to ``route``."""
    event = AlertEvent(
        time=datetime.fromtimestamp(notice.at, UTC).isoformat(),
        action="alert.delivery_failed" if error is not None else f"alert.{notice.action}",  # type: ignore[arg-type]
        actor=ALERT_ACTOR if notice.by is None else {"subject": notice.by, "method": "local", "tenant": None},
        reason=notice.alert.summary,
        alert=notice.alert,
        routes=[route] if route is not None else list(notice.routes),
        by=notice.by,
        error=error,
    )
    return event.model_dump(mode="json", exclude_none=True)


def event_alert(event: dict[str, Any]) -> Alert | None:
    """The alert state an ``alert.*`` record carries (None for other records)."""
    if not str(event.get("action", "")).startswith("alert.") or not isinstance(event.get("alert"), dict):
        return None
    return Alert.from_dict(event["alert"])


__all__ = ["ALERT_ACTOR", "AlertAction", "AlertEvent", "alert_event", "event_alert"]
