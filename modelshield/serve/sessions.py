"""Browser sessions for the dashboard, so an admin key is typed once and never put in a URL, a page or a log.

``POST /v1/admin/session`` with the key in the ``Authorization`` header (the page sends it from a password field)
opens a session: a random 256-bit token goes back in a cookie that scripts cannot read (``HttpOnly``), that the
browser sends only to this gateway's own pages (``SameSite=Strict``, ``Path=/``; ``Secure`` under TLS), and that
expires with the session. The gateway keeps only the token's SHA-256 and the caller's identity, in memory: a
restart or ``DELETE /v1/admin/session`` ends it; so does its lifetime. The policy is asked again on every read,
so a policy change takes effect at once; a revoked key's session lasts until it expires (``SESSION_SECONDS``).
Cookies are accepted only on the dashboard's GET reads; every write still needs the header, so a forged
cross-site request has nothing to ride on.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from modelshield.serve.identity import Identity

COOKIE = "modelshield_session"
SESSION_SECONDS = 3600
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class Session:
    identity: Identity
    expires: float


class Sessions:
    """Open sessions by token hash; bounded (the oldest goes first when full)."""

    def __init__(self, lifetime: float = SESSION_SECONDS) -> None:
        self.lifetime = lifetime
        self._open: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, identity: Identity) -> tuple[str, float]:
        """A new session for ``identity``: (token for the cookie, expiry as a Unix time)."""
        token = secrets.token_urlsafe(32)
        expires = time.time() + self.lifetime
        with self._lock:
            self._expire()
            while len(self._open) >= MAX_SESSIONS:
                self._open.pop(next(iter(self._open)))
            self._open[_hash(token)] = Session(identity, expires)
        return token, expires

    def identity(self, token: str) -> Identity | None:
        """The identity of a live session, else None."""
        with self._lock:
            session = self._open.get(_hash(token))
            if session is None or session.expires <= time.time():
                return None
            return session.identity

    def close(self, token: str) -> None:
        with self._lock:
            self._open.pop(_hash(token), None)

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, s in self._open.items() if s.expires <= now]:
            del self._open[key]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


__all__ = ["COOKIE", "SESSION_SECONDS", "Session", "Sessions"]
