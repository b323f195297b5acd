"""A deadline for a request's headers, which uvicorn does not have.

uvicorn closes a connection that stays idle ``timeout_keep_alive`` seconds, but its timer stops at the first byte
received: a client that sends part of a request line and then nothing (slowloris) holds the connection, and a file
descriptor, for as long as it likes. ``HeaderDeadline`` closes a connection whose request headers are not all in
``header_timeout`` seconds after it opened or after its previous response; a body that stops half-way is the
app's to time out (``validation.body_timeout_seconds``, 408).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderDeadline:
    """Mixin for uvicorn's HTTP protocols (both keep ``cycle``, ``transport`` and ``loop``)."""

    header_timeout: float = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[attr-defined]
        self._deadline = loop.call_later(self.header_timeout, self._expire)

    def _expire(self) -> None:
        cycle = self.cycle  # type: ignore[attr-defined]
        if cycle is None or cycle.response_complete:  # no request is being answered: its headers never came
            transport: asyncio.Transport = self.transport  # type: ignore[attr-defined]
            if not transport.is_closing():
                transport.close()


class HttpToolsWithDeadline(HeaderDeadline, HttpToolsProtocol):
    """uvicorn's httptools protocol (the fast one, with ``modelshield[serve]``) with the header deadline."""


class H11WithDeadline(HeaderDeadline, H11Protocol):
    """uvicorn's pure-Python h11 protocol with the header deadline."""


def http_protocol() -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's ``http`` option: httptools when installed, else h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return H11WithDeadline
    return HttpToolsWithDeadline
