"""A real uvicorn server over mutual TLS in a background thread, for the mTLS tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from modelshield.serve.auth import Authenticator
from modelshield.serve.errors import AuthenticationError
from modelshield.serve.mtls import MtlsH11Protocol, peer_cert_from_scope, server_ssl_context


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def identity_app(auth: Authenticator, calls: list[str]) -> Any:
    """ASGI app answering with the caller's identity (200) or the authentication error (401)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        calls.append(scope["path"])
        headers = {k.decode("latin1"): v.decode("latin1") for k, v in scope["headers"]}
        try:
            ident = auth.authenticate(headers, peer_cert_from_scope(scope))
            status, body = (
                200,
                {"subject": ident.subject, "method": ident.method, "roles": list(ident.roles), "tenant": ident.tenant},
            )
        except AuthenticationError as exc:
            status, body = 401, {"error": str(exc)}
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return app


@contextmanager
def serve_mtls(app: Any, certfile: Any, keyfile: Any, client_ca: Any, *, require: bool = True) -> Iterator[int]:
    """Run ``app`` on 127.0.0.1 over TLS with client certificates; yields the port."""
    ctx = server_ssl_context(certfile, keyfile, client_ca, require_client_cert=require)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=MtlsH11Protocol,
        log_level="critical",
        lifespan="off",
        ssl_context_factory=lambda _cfg, _default: ctx,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=5)
