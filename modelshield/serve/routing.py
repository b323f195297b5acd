"""Canary and shadow releases for one public model name.

Canary: ``percent`` of the traffic is answered by a candidate version. The choice is a hash of the
identity (a caller always sees the same version: sticky) or of the request id, so it is
deterministic, needs no shared state between replicas, and splits traffic in the asked proportion.

Shadow: a copy of ``percent`` of the requests goes to a candidate in the background after the
primary has answered; the candidate's output is compared (agreement of predicted labels) and then
dropped, never returned. At most ``max_pending`` shadow forwards are in flight; more are skipped
and counted, so a slow candidate can never slow the main path or pile up memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

import numpy as np

T = TypeVar("T")
log = logging.getLogger("modelshield.serve")


def bucket(key: str, salt: str) -> float:
    """A stable position in [0, 100) for ``key``; the salt makes each route's split independent."""
    h = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8, key=salt.encode()[:64])
    return int.from_bytes(h.digest(), "big") / 2**64 * 100.0


@dataclass
class ShadowStats:
    """Running comparison of a shadow candidate with the primary."""

    compared: int = 0
    agreed: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def agreement(self) -> float | None:
        """Fraction of compared samples where both predicted the same label (None before any)."""
        return self.agreed / self.compared if self.compared else None


@dataclass
class Router(Generic[T]):
    """Chooses the version that answers a request and mirrors requests to a shadow candidate."""

    name: str
    primary: T
    canary: T | None = None
    canary_percent: float = 0.0
    sticky: Literal["identity", "request"] = "identity"
    shadow: T | None = None
    shadow_percent: float = 100.0
    max_pending: int = 32
    stats: ShadowStats = field(default_factory=ShadowStats)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def choose(self, *, request_id: str, subject: str) -> T:
        """The primary, or the canary for its deterministic share of identities (or requests)."""
        if self.canary is None or self.canary_percent <= 0:
            return self.primary
        key = subject if self.sticky == "identity" else request_id
        return self.canary if bucket(key, f"canary:{self.name}") < self.canary_percent else self.primary

    def mirrors(self, request_id: str) -> bool:
        """Whether this request is copied to the shadow candidate."""
        return self.shadow is not None and bucket(request_id, f"shadow:{self.name}") < self.shadow_percent

    def mirror(
        self,
        primary_probs: np.ndarray,
        run: Callable[[], Awaitable[np.ndarray]],
        on_compared: Callable[[int, int], None] | None = None,
    ) -> None:
        """Run the shadow in the background and compare its labels with the primary's; never awaited."""
        if len(self._tasks) >= self.max_pending:
            self.stats.skipped += 1
            return
        task = asyncio.get_running_loop().create_task(self._compare(primary_probs, run, on_compared))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _compare(
        self,
        primary_probs: np.ndarray,
        run: Callable[[], Awaitable[np.ndarray]],
        on_compared: Callable[[int, int], None] | None,
    ) -> None:
        try:
            shadow_probs = await run()
        except Exception as exc:  # a failing candidate is a finding about the candidate, not an outage
            self.stats.failed += 1
            log.warning("shadow for %s failed: %s", self.name, " ".join(str(exc).split()))
            return
        agreed = int((shadow_probs.argmax(axis=1) == primary_probs.argmax(axis=1)).sum())
        n = len(primary_probs)
        self.stats.compared += n
        self.stats.agreed += agreed
        if on_compared is not None:
            on_compared(n, agreed)

    async def drain(self) -> None:
        """Wait for the shadow forwards in flight (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
