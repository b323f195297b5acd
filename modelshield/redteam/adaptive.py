"""The evasion attacker's answer to a guard that withholds answers: a withheld input is one that did not work.

The demo gateway's guard abstains on inputs it flags (no probabilities, label -1). ``RemoteModel`` refuses such
a batch as a whole; an attacker who knows the guard is there asks the batch again one input at a time and reads
each withheld answer as "still the true class": the search then moves only through inputs that fool the model
*and* pass the guard — the adaptive evaluation (Carlini & Wagner, AISec 2017; Tramèr et al., NeurIPS 2020) of
the guarded system rather than of the bare model. Refusals (429, 401/403, 5xx) still end the attack.
"""

from __future__ import annotations

import torch
from torch import Tensor

from modelshield.attacks.extraction.base import refusal_of
from modelshield.core.errors import RemoteModelError
from modelshield.core.model import Model

_FLOOR = -30.0  # log-probability of the classes a withheld answer rules out


class WithheldAsClean(Model):
    """``inner`` (a traced ``RemoteModel``) for one attacked input of class ``label``: withheld answers read as
    that class. ``withheld`` counts them."""

    def __init__(self, inner: Model, label: int) -> None:
        super().__init__()
        self.inner = inner
        self.label = int(label)
        self.bounds = inner.bounds
        self.num_classes = inner.num_classes
        self.input_shape = inner.input_shape
        self.labels_from_scores = inner.labels_from_scores
        self.withheld = 0

    @property
    def has_scores(self) -> bool:  # type: ignore[override]
        return self.inner.has_scores

    def _clean(self, n: int) -> Tensor:
        out = torch.full((n, self.num_classes), _FLOOR)
        out[:, self.label] = 0.0
        return out

    def _scores(self, x: Tensor) -> Tensor:
        try:
            return self.inner.logits(x).float()
        except RemoteModelError as exc:
            if refusal_of(exc) is not None:
                raise
        if x.shape[0] == 1:
            self.withheld += 1
            return self._clean(1)
        return torch.cat([self._scores(x[i : i + 1]) for i in range(x.shape[0])])

    def _labels(self, x: Tensor) -> Tensor:
        return self._scores(x).argmax(dim=1)
