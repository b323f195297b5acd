"""Who is calling, as every control sees it: the ``Identity`` an API key, a JWT or a client certificate yields.

Its own module so that the verifiers (``apikeys``, ``jwt_auth``, ``mtls``) and the ``Authenticator`` that
combines them (``auth``) all import it from below, instead of the verifiers importing the module that imports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Method = Literal["api_key", "jwt", "mtls", "none"]
"""How the caller proved who it is; ``none`` only on a gateway whose authentication is switched off."""


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: what the policy engine, rate limiter and audit log see."""

    subject: str
    method: Method
    roles: tuple[str, ...]
    tenant: str | None = None
    scopes: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", tuple(self.roles))
        object.__setattr__(self, "scopes", tuple(self.scopes))
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    def audit_actor(self) -> dict[str, Any]:
        """The ``actor`` fields of an audit event (no credential material)."""
        return {"subject": self.subject, "method": self.method, "tenant": self.tenant, "roles": list(self.roles)}


ANONYMOUS = Identity("anonymous", "none", ("anonymous",))
"""The caller on a gateway run with ``[auth] insecure_disabled = true``."""
