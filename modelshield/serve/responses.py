"""The gateway's JSON answers: one shape for successes and errors, request ids, and audit decisions."""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelshield.serve.errors import GatewayError, RateLimitedError, RequestValidationError

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
JSON = "application/json"


class NotFound(GatewayError):
    """No model by that name is served here."""

    status = 404


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Compact JSON (no spaces): the bodies are small and sent often."""
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, media_type=JSON, headers=headers)


def error_response(exc: Exception, request_id: str) -> Response:
    """``{"error", "request_id"}`` with the exception's status; anything unexpected is a bare 500."""
    status = exc.status if isinstance(exc, GatewayError) else 500
    message = str(exc) if isinstance(exc, GatewayError) else "internal error"
    headers = {"X-Request-ID": request_id}
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="modelshield"'
    if status == 408:  # the rest of the body may still come: nothing after it on this connection is a request
        headers["Connection"] = "close"
    return json_response({"error": message, "request_id": request_id}, status, headers)


def request_id(request: Request) -> str:
    """The client's X-Request-ID when it is well-formed, else a fresh random one."""
    given = request.headers.get("x-request-id")
    return given if given and _REQUEST_ID.match(given) else secrets.token_hex(16)


def decision(exc: Exception) -> str:
    """The audit ``decision`` for a refused request."""
    if isinstance(exc, RateLimitedError):
        return "rate_limited"
    if isinstance(exc, RequestValidationError):
        return "invalid"
    if isinstance(exc, GatewayError) and exc.status in (401, 403, 404):
        return "deny"
    return "error"
