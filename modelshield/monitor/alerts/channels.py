"""Where alerts go: a webhook (signed JSON POST), email (SMTP) and a SIEM (any ``Sink``, as OCSF Detection Findings).

Every channel has one method, ``send(payload)``, and raises ``DeliveryError`` when the alert did not get
through (after its own retries), so the dispatcher can record the failure in the audit log and carry on with
the other routes. Secrets are read from the environment variable the rules file names, at send time, and appear
in no message, log line or error.

Webhook signature: ``X-Modelshield-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``
— the timestamp is signed with the body (the scheme Stripe and Slack use), so a receiver that checks it and
refuses old timestamps cannot be replayed to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Literal, Protocol, runtime_checkable

from modelshield.core.errors import DependencyError, InputError, ModelShieldError
from modelshield.monitor.alerts.rules import CollectorRoute, EmailRoute, Route, SyslogRoute, WebhookRoute

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Modelshield-Signature"


class DeliveryError(ModelShieldError):
    """An alert could not be delivered to a route."""

    hint = "check the route's address and that the receiver is up; the failure is in the audit log"


@runtime_checkable
class Sink(Protocol):
    """Anything that takes an event: a SIEM forwarder, a syslog sender, a queue."""

    def send(self, event: dict[str, Any]) -> None: ...


def _secret(name: str | None, what: str) -> bytes | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise DeliveryError(f"{what}: environment variable {name} is not set", hint=f"export {name}=...")
    return value.encode()


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: bytes, body: bytes, header: str, *, now: float | None = None, tolerance_s: float = 300
) -> bool:
    """A receiver's check: the header is ours for this body, and not older than ``tolerance_s``."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, t), header)


class WebhookChannel:
    """POST the payload as JSON; retries transport errors, 429 and 5xx with exponential backoff. One HTTP client
    (its TLS context and pooled keep-alive connections) serves every alert: building one costs more than the POST."""

    def __init__(self, route: WebhookRoute, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.route, self.sleep = route, sleep
        self._client: Any = None

    def _http(self) -> Any:
        if self._client is None:
            try:
                import httpx
            except ImportError as e:
                raise DependencyError(
                    "the webhook channel needs httpx", hint="pip install 'modelshield[remote]'"
                ) from e
            self._client = httpx.Client(timeout=self.route.timeout_s, follow_redirects=False)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def send(self, payload: dict[str, Any]) -> None:
        import httpx

        client = self._http()
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "modelshield-alerts", **self.route.headers}
        secret = _secret(self.route.secret_env, "webhook secret")
        problem = ""
        for attempt in range(self.route.retries + 1):
            if attempt:
                self.sleep(self.route.backoff_s * 2 ** (attempt - 1))
            if secret is not None:
                headers[SIGNATURE_HEADER] = sign(secret, body, int(time.time()))
            try:
                response = client.post(self.route.url, content=body, headers=headers)
            except httpx.TransportError as e:
                problem = f"{type(e).__name__}: {e}"
                continue
            if response.status_code < 300:
                return
            problem = f"HTTP {response.status_code}"
            if response.status_code != 429 and response.status_code < 500:
                break  # the receiver refused this payload; sending it again will not help
        raise DeliveryError(f"webhook {_host(self.route.url)}: {problem} after {attempt + 1} attempt(s)")


def _host(url: str) -> str:
    """The URL without path or query (which may hold a token)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}"


class EmailChannel:
    """One message per notice: a subject line to triage by, the summary and the alert's fields as JSON."""

    def __init__(self, route: EmailRoute) -> None:
        self.route = route

    def send(self, payload: dict[str, Any]) -> None:
        r = self.route
        alert = payload.get("alert", {})
        msg = EmailMessage()
        msg["From"] = r.sender
        msg["To"] = ", ".join(r.to)
        subject = (
            f"[modelshield {alert.get('severity', '?')}] {payload.get('action', 'alert')}: {alert.get('rule', '?')} — "
            f"{alert.get('summary', '')}"
        )
        msg["Subject"] = " ".join(subject.split())[:200]  # labels may hold newlines; a header may not
        msg["X-Modelshield-Alert-Id"] = str(alert.get("id", ""))
        msg.set_content(f"{alert.get('summary', '')}\n\n{json.dumps(payload, indent=2, sort_keys=True)}\n")
        password = _secret(r.password_env, "SMTP password")
        try:
            with smtplib.SMTP(r.host, r.port, timeout=r.timeout_s) as smtp:
                if r.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=r.ca_file))
                if r.username is not None and password is not None:
                    smtp.login(r.username, password.decode())
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as e:
            # SMTP errors carry the server's reply, never our password
            raise DeliveryError(f"email via {r.host}:{r.port}: {type(e).__name__}: {e}") from None


_FINDING_ACTIVITY: dict[str, Literal["create", "update", "close"]] = {
    "alert.fired": "create",
    "alert.escalated": "update",
    "alert.acknowledged": "update",
    "alert.delivery_failed": "update",
    "alert.resolved": "close",
}


def detection_finding_of(payload: dict[str, Any]) -> dict[str, Any]:
    """An alert record as the OCSF Detection Finding a SIEM files it under (``modelshield.monitor.siem``): one
    finding uid per alert, created when it fires, updated on escalation or acknowledgement, closed on resolution."""
    from modelshield.monitor.siem import detection_finding

    alert = payload["alert"]
    labels = alert.get("labels", {})
    evidence = {
        k: alert.get(k) for k in ("key", "kind", "value", "count", "suppressed", "acknowledged_by", "routes_sent")
    }
    return detection_finding(
        title=f"{alert['rule']}: {alert['summary']}",
        severity=alert["severity"],
        rule=alert["rule"],
        time=datetime.fromisoformat(payload["time"]).timestamp(),
        uid=alert["id"],
        model=labels.get("model"),
        evidence={
            "action": payload["action"],
            "labels": labels,
            **{k: v for k, v in evidence.items() if v is not None},
        },
        activity=_FINDING_ACTIVITY.get(payload["action"], "update"),
        first_seen=alert["fired_at"],
        last_seen=alert["last_seen"],
    )


class SiemChannel:
    """Send alerts to a SIEM sink (any object with ``send(event)``: ``modelshield.monitor.siem``'s syslog, HTTP
    collector or file sinks, or your own) as OCSF Detection Findings."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def send(self, payload: dict[str, Any]) -> None:
        try:
            self.sink.send(detection_finding_of(payload))
        except ModelShieldError as e:  # the sink's SinkError (or a refused event): this route failed
            raise DeliveryError(f"SIEM: {e}") from None


def _syslog_sink(route: SyslogRoute) -> Sink:
    from modelshield.monitor.siem import SyslogSink

    return SyslogSink(
        route.host, route.port, route.protocol, ca_file=route.ca_file, app_name=route.app_name, timeout=route.timeout_s
    )


def _collector_sink(name: str, route: CollectorRoute) -> Sink:
    from modelshield.core.storage import data_home
    from modelshield.monitor.siem import HttpCollectorSink

    token = _secret(route.token_env, f"route {name}: collector token")
    headers = {"Authorization": f"{route.auth_scheme} {token.decode()}"} if token is not None else {}
    spool = route.spool or data_home() / f"alerts-{name}.spool.db"
    return HttpCollectorSink(route.url, spool, headers=headers, ca_file=route.ca_file, timeout=route.timeout_s)


def close_channels(channels: Mapping[str, Sink]) -> None:
    """Release what channels hold: HTTP clients, sockets, the collector's sender thread (which first tries for a
    few seconds to deliver what is spooled; the rest waits in the spool for the next run)."""
    for channel in channels.values():
        target = channel.sink if isinstance(channel, SiemChannel) else channel
        close = getattr(target, "close", None)
        if callable(close):
            close()


def build_channels(routes: Mapping[str, Route], **webhook_options: Any) -> dict[str, Sink]:
    """One channel per route of a rules file."""
    out: dict[str, Sink] = {}
    for name, route in routes.items():
        if isinstance(route, WebhookRoute):
            out[name] = WebhookChannel(route, **webhook_options)
        elif isinstance(route, EmailRoute):
            out[name] = EmailChannel(route)
        elif isinstance(route, SyslogRoute):
            out[name] = SiemChannel(_syslog_sink(route))
        elif isinstance(route, CollectorRoute):
            out[name] = SiemChannel(_collector_sink(name, route))
        else:  # pragma: no cover - the rules schema admits no other type
            raise InputError(f"route {name}: unknown type")
    return out


__all__ = [
    "SIGNATURE_HEADER",
    "DeliveryError",
    "EmailChannel",
    "Sink",
    "SiemChannel",
    "WebhookChannel",
    "build_channels",
    "close_channels",
    "detection_finding_of",
    "sign",
    "verify_signature",
]
