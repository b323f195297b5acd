"""The ASGI app the mTLS tests serve over mutual TLS (with the ``serve_asgi`` fixture)."""

from __future__ import annotations

import json
from typing import Any

from modelshield.serve.auth import Authenticator
from modelshield.serve.errors import AuthenticationError
from modelshield.serve.mtls import peer_cert_from_scope


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
