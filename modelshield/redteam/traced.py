"""A black-box model that remembers when each of its queries was answered, so events can be mapped to queries."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable

from torch import Tensor

from modelshield.core.model import Model


class TracedModel(Model):
    """Wraps a black-box ``Model`` (a ``RemoteModel``) and logs ``(time, samples sent so far)`` after every call.

    The blue side timestamps what it saw; the timeline turns such a time into "after N queries": the first call
    that finished at or after the event is the one whose request the gateway was answering. Failed calls are
    logged too (the wrapped adapter counted their samples), then the error goes on to the attack unchanged.
    """

    def __init__(self, inner: Model, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.inner = inner
        self.bounds = inner.bounds
        self.num_classes = inner.num_classes
        self.input_shape = inner.input_shape
        self.labels_from_scores = inner.labels_from_scores
        self.clock = clock
        self.times: list[float] = []
        self.counts: list[int] = []
        self._base = inner.queries

    @property
    def has_scores(self) -> bool:  # type: ignore[override]
        return self.inner.has_scores

    @property
    def sent(self) -> int:
        """Samples sent to the victim through this wrapper (refused ones included)."""
        return self.inner.queries - self._base

    def _mark(self) -> None:
        self.times.append(self.clock())
        self.counts.append(self.sent)

    def _scores(self, x: Tensor) -> Tensor:
        try:
            return self.inner.logits(x)
        finally:
            self._mark()

    def _labels(self, x: Tensor) -> Tensor:
        self.queries += int(x.shape[0])
        try:
            return self.inner.predict(x, batch_size=max(1, int(x.shape[0])))
        finally:
            self._mark()

    def queries_at(self, when: float) -> int:
        """Samples sent by the first call that finished at or after ``when`` (all of them if none did)."""
        i = bisect.bisect_left(self.times, when)
        return self.counts[i] if i < len(self.counts) else self.sent
