"""Receivers on 127.0.0.1 for the demo and the tests: a webhook (http.server), an SMTP server (aiosmtpd) and a
syslog collector (UDP or TCP socket). Each keeps what it received, in order, and starts on a free port."""

from __future__ import annotations

import json
import re
import socket
import socketserver
import ssl
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from modelshield.core.errors import DependencyError


class Received:
    """What a receiver got: a list of dicts, each stamped with the time it arrived (``received_at``)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def add(self, item: dict[str, Any]) -> None:
        with self._cond:
            self.items.append({**item, "received_at": time.time()})
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until ``count`` items have arrived (or ``timeout``); returns what there is."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.items) >= count, timeout)
            return list(self.items)


class WebhookReceiver(Received):
    """An HTTP server that records each POST (headers, raw body) and answers with ``statuses`` in turn (the last
    one from then on; default 204)."""

    def __init__(self, statuses: tuple[int, ...] = (204,)) -> None:
        super().__init__()
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                receiver.add({"path": self.path, "headers": dict(self.headers), "body": body.decode(), "status": code})
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver(Received):
    """aiosmtpd's SMTP server on loopback; records each message's envelope, headers and body. With
    ``tls_context`` it offers STARTTLS and requires it; with ``logins`` ({user: password}) it requires AUTH."""

    def __init__(self, *, tls_context: ssl.SSLContext | None = None, logins: dict[str, str] | None = None) -> None:
        super().__init__()
        try:
            from aiosmtpd.controller import Controller
        except ImportError as e:
            raise DependencyError("the loopback SMTP server needs aiosmtpd", hint="pip install aiosmtpd") from e
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
                msg = message_from_bytes(envelope.content, policy=default_policy)
                body = msg.get_body(preferencelist=("plain",))
                receiver.add(
                    {
                        "from": envelope.mail_from,
                        "to": list(envelope.rcpt_tos),
                        "subject": str(msg["Subject"]),
                        "headers": {k: str(v) for k, v in msg.items()},
                        "body": body.get_content().replace("\r\n", "\n") if body is not None else "",
                    }
                )
                return "250 Message accepted for delivery"

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        options: dict[str, Any] = {}
        if tls_context is not None:
            options.update(tls_context=tls_context, require_starttls=True)
        if logins is not None:
            from aiosmtpd.smtp import AuthResult, LoginPassword

            def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                ok = isinstance(data, LoginPassword) and logins.get(data.login.decode()) == data.password.decode()
                return AuthResult(success=ok)

            options.update(authenticator=check, auth_require_tls=tls_context is not None)
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


class SyslogReceiver(Received):
    """A syslog collector: UDP datagrams, or TCP with RFC 6587 octet counting; records each raw line."""

    def __init__(self, protocol: str = "udp") -> None:
        super().__init__()
        self.protocol = protocol
        receiver = self
        if protocol == "udp":

            class UdpHandler(socketserver.BaseRequestHandler):
                def handle(self) -> None:
                    receiver.add(_syslog_line(self.request[0]))

            self.server: socketserver.BaseServer = socketserver.ThreadingUDPServer(("127.0.0.1", 0), UdpHandler)
        else:

            class TcpHandler(socketserver.StreamRequestHandler):
                def handle(self) -> None:
                    while True:
                        count = b""
                        while (c := self.rfile.read(1)) not in (b" ", b""):
                            count += c
                        if not count:
                            return
                        receiver.add(_syslog_line(self.rfile.read(int(count))))

            self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), TcpHandler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="syslog-receiver", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_SD = re.compile(r"(?:-|(?:\[(?:[^\]\\]|\\.)*\])+) ?")


def _syslog_line(data: bytes) -> dict[str, Any]:
    """An RFC 5424 message's header fields, structured data and JSON message."""
    text = data.decode("utf-8", errors="replace")
    parts = text.split(" ", 6)  # <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, then SD and MSG
    pri = parts[0][1 : parts[0].index(">")] if parts[0].startswith("<") and ">" in parts[0] else ""
    rest = parts[6] if len(parts) > 6 else ""
    sd = _SD.match(rest)
    msg = rest[sd.end() :] if sd else rest
    try:
        event: Any = json.loads(msg.lstrip("\ufeff"))
    except ValueError:
        event = None
    return {
        "raw": text,
        "pri": int(pri) if pri.isdigit() else None,
        "app_name": parts[3] if len(parts) > 3 else "",
        "msgid": parts[5] if len(parts) > 5 else "",
        "structured_data": sd.group(0).strip() if sd else "",
        "event": event,
    }


__all__ = ["Received", "SmtpReceiver", "SyslogReceiver", "WebhookReceiver"]
