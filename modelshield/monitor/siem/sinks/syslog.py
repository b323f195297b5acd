"""RFC 5424 syslog: UDP datagrams (RFC 5426), TCP with octet-counting framing (RFC 6587 §3.4.1), TLS (RFC 5425).

Each OCSF event is the MSG of one syslog message, as compact ASCII JSON; the structured-data element
``[ocsf@32473 class_uid=… type_uid=… severity_id=… uid=…]`` lets a relay route on the class and severity
without parsing the JSON (32473 is the example enterprise number RFC 5612 reserves for documentation — set
``sd_id`` to your own PEN). PRI = facility × 8 + the syslog severity the OCSF severity_id maps to.

Delivery: syslog has no application-level acknowledgement. UDP may drop under load; TCP/TLS hand each message
to the kernel, and a broken connection is reopened once and the message re-sent, but bytes in flight when a
receiver dies can be lost. For delivery that survives an outage, use ``HttpCollectorSink`` (spooled).
"""

from __future__ import annotations

import os
import socket
import ssl
from datetime import UTC, datetime
from typing import Any, Literal

from modelshield.core.errors import InputError
from modelshield.monitor.siem.sinks.base import SinkError, dumps

Transport = Literal["udp", "tcp", "tls"]
#: OCSF severity_id → syslog severity (RFC 5424 table 2)
SYSLOG_SEVERITY = {0: 6, 1: 6, 2: 5, 3: 4, 4: 3, 5: 2, 6: 1, 99: 5}
FACILITY_LOCAL0 = 16
MAX_UDP_BYTES = 65_000  # one IPv4 datagram; receivers must be set to accept it (rsyslog: $MaxMessageSize)


def _sd_value(value: object) -> str:
    """An SD-PARAM value with '"', '\\' and ']' escaped (RFC 5424 §6.3.3)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _printable(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most ``limit`` long, or the NILVALUE."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


class SyslogSink:
    """Send OCSF events to a syslog receiver at ``host:port`` over ``transport`` ("udp", "tcp" or "tls").

    TLS verifies the server against ``ca_file`` (default: the system store) and its name against ``host``
    (or ``server_name``); ``certfile``/``keyfile`` add a client certificate for mutual TLS.
    """

    def __init__(
        self,
        host: str,
        port: int,
        transport: Transport = "udp",
        *,
        ca_file: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        server_name: str | None = None,
        app_name: str = "modelshield",
        facility: int = FACILITY_LOCAL0,
        sd_id: str = "ocsf@32473",
        timeout: float = 10.0,
    ) -> None:
        if transport not in ("udp", "tcp", "tls"):
            raise InputError(f"unknown syslog transport {transport!r} (udp, tcp or tls)")
        if not 0 <= facility <= 23:
            raise InputError(f"syslog facility {facility} is outside 0-23")
        self.host, self.port, self.transport = host, port, transport
        self._facility = facility
        self._header_tail = " ".join(
            (_printable(socket.gethostname(), 255), _printable(app_name, 48), str(os.getpid()))
        )
        self._sd_id = sd_id
        self._timeout = timeout
        self._tls: ssl.SSLContext | None = None
        self._server_name = server_name or host
        if transport == "tls":
            self._tls = ssl.create_default_context(cafile=ca_file)
            if certfile:
                self._tls.load_cert_chain(certfile, keyfile)
        self._sock: socket.socket | None = None
        self.sent = 0

    def format(self, event: dict[str, Any]) -> bytes:
        """One event as an RFC 5424 message (without transport framing)."""
        severity_id = event.get("severity_id", 0)
        pri = self._facility * 8 + SYSLOG_SEVERITY.get(severity_id if isinstance(severity_id, int) else 0, 6)
        when = event.get("time")
        stamp = (
            datetime.fromtimestamp(when / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            if isinstance(when, int)
            else "-"
        )
        class_uid = event.get("class_uid", 0)
        meta = event.get("metadata") if isinstance(event.get("metadata"), dict) else {}
        params = [("class_uid", class_uid), ("type_uid", event.get("type_uid")), ("severity_id", severity_id)]
        params.append(("uid", meta.get("uid") if isinstance(meta, dict) else None))
        sd = " ".join(f'{k}="{_sd_value(v)}"' for k, v in params if v is not None)
        head = f"<{pri}>1 {stamp} {self._header_tail} ocsf-{class_uid} [{self._sd_id} {sd}] "
        return (head + dumps(event)).encode("ascii")

    def _connect(self) -> socket.socket:
        try:
            if self.transport == "udp":
                sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM)
                sock.connect((self.host, self.port))
                return sock
            sock = socket.create_connection((self.host, self.port), timeout=self._timeout)  # Nagle on: a
            # burst coalesces into full segments, a lone alert still leaves at once (nothing unacknowledged)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._server_name)
            return sock
        except (OSError, ssl.SSLError) as exc:
            raise SinkError(f"cannot reach syslog {self.transport}://{self.host}:{self.port}: {exc}") from exc

    def send(self, event: dict[str, Any]) -> None:
        msg = self.format(event)
        if self.transport == "udp":
            if len(msg) > MAX_UDP_BYTES:
                raise SinkError(f"event of {len(msg)} bytes does not fit a UDP datagram; send it over tcp or tls")
            frame = msg
        else:
            frame = b"%d %s" % (len(msg), msg)  # octet counting: "MSG-LEN SP SYSLOG-MSG"
        for attempt in (1, 2):
            if self._sock is None:
                self._sock = self._connect()
            try:
                self._sock.sendall(frame)
                self.sent += 1
                return
            except (OSError, ssl.SSLError) as exc:
                self._drop()
                if attempt == 2:
                    raise SinkError(f"syslog {self.transport}://{self.host}:{self.port} failed: {exc}") from exc

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def flush(self) -> None:
        """Nothing is buffered here: every ``send`` has reached the kernel."""

    def close(self) -> None:
        """Close the connection cleanly (TLS close_notify first, so the receiver sees an orderly end)."""
        sock = self._sock
        if sock is not None and self.transport != "udp":
            try:
                if isinstance(sock, ssl.SSLSocket):
                    sock = sock.unwrap()
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except (OSError, ssl.SSLError):
                pass
        self._drop()
