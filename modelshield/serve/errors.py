"""Errors the gateway turns into HTTP responses; each carries the status code it maps to.

    ModelShieldError
    └── GatewayError                 (status 500)
        ├── AuthenticationError      401  no, bad, expired or revoked credentials
        ├── AuthorizationError       403  authenticated, but the policy says no
        ├── RateLimitedError         429  over a rate limit or quota; ``retry_after`` seconds
        ├── RequestValidationError   400 / 408 / 413 / 415 / 422  the request or body is not what the model takes
        └── ServiceUnavailableError  503  a dependency the gateway fails closed on is down (Redis)

Messages are safe to send to the client: they never contain a credential or an input value.
"""

from __future__ import annotations

from modelshield.core.errors import ModelShieldError


class GatewayError(ModelShieldError):
    """Base of the gateway's errors; ``status`` is the HTTP status the server answers with."""

    status: int = 500


class AuthenticationError(GatewayError):
    """The caller could not be identified: credentials missing, malformed, expired, revoked or forged."""

    status = 401


class AuthorizationError(GatewayError):
    """The caller is known, but the policy does not allow this action on this resource."""

    status = 403


#: the longest Retry-After told: a day (the quota's period); a near-zero rate (an admin override may set
#: 5e-324/s) would otherwise give an infinite wait, which no header can carry
MAX_RETRY_AFTER = 86400.0


class RateLimitedError(GatewayError):
    """Over a rate limit or daily quota; the client may retry after ``retry_after`` seconds (at most a day)."""

    status = 429

    def __init__(self, message: str, retry_after: float, hint: str = "") -> None:
        super().__init__(message, hint)
        self.retry_after = min(max(0.0, float(retry_after)), MAX_RETRY_AFTER)


class RequestValidationError(GatewayError):
    """The request is malformed (400), its body too slow to arrive (408) or too large (413), not plain JSON (415),
    or does not fit the model's input signature (422)."""

    status = 400

    def __init__(self, message: str, status: int = 400, hint: str = "") -> None:
        if status not in (400, 408, 413, 415, 422):
            raise ValueError(f"RequestValidationError status must be 400, 408, 413, 415 or 422, not {status}")
        super().__init__(message, hint)
        self.status = status


class ServiceUnavailableError(GatewayError):
    """A dependency the gateway fails closed on (Redis for shared rate limits) is unreachable."""

    status = 503
