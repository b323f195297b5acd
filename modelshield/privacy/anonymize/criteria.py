"""The privacy criteria an equivalence class must meet: k-anonymity, distinct l-diversity, t-closeness.

- k-anonymity (Sweeney 2002): every combination of released quasi-identifiers is shared by ≥ k rows.
- distinct l-diversity (Machanavajjhala et al. 2007): every class holds ≥ l distinct sensitive values.
- t-closeness (Li, Li, Venkatasubramanian 2007, https://doi.org/10.1109/ICDE.2007.367856): the sensitive
  values' distribution in every class is within Earth Mover's Distance t of the whole table's — the
  equal-distance EMD (half the L1 distance) for categories, the ordered-distance EMD for numbers.

These are the definitions pycanon checks (the tests cross-check against it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelshield.core.errors import InputError


@dataclass(frozen=True)
class Criteria:
    """What every released class must satisfy; ``l``/``t`` need a sensitive attribute."""

    k: int
    l: int | None = None  # noqa: E741 - the letter of the paper
    t: float | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InputError(f"k must be at least 1, got {self.k}")
        if self.l is not None and self.l < 1:
            raise InputError(f"l must be at least 1, got {self.l}")
        if self.t is not None and not 0 <= self.t <= 1:
            raise InputError(f"t must lie in [0, 1], got {self.t}")

    @property
    def needs_sensitive(self) -> bool:
        return self.l is not None or self.t is not None


def emd(counts: np.ndarray, overall: np.ndarray, ordered: bool) -> np.ndarray:
    """EMD between each row of ``counts`` (class histograms) and the distribution ``overall``."""
    counts = np.atleast_2d(counts).astype(np.float64)
    q = counts / counts.sum(axis=1, keepdims=True)
    diff = q - overall
    if ordered:
        m = diff.shape[1]
        return np.abs(np.cumsum(diff, axis=1)[:, :-1]).sum(axis=1) / max(m - 1, 1)
    return 0.5 * np.abs(diff).sum(axis=1)


@dataclass(frozen=True)
class SensitiveCheck:
    """l and t for histograms of the sensitive attribute, against the whole table's distribution."""

    criteria: Criteria
    overall: np.ndarray  # distribution of the sensitive values over the whole table
    ordered: bool

    def ok(self, counts: np.ndarray) -> np.ndarray:
        """Which classes (rows of ``counts``) meet l and t."""
        counts = np.atleast_2d(counts)
        good = np.ones(len(counts), dtype=bool)
        if self.criteria.l is not None:
            good &= (counts > 0).sum(axis=1) >= self.criteria.l
        if self.criteria.t is not None:
            good &= emd(counts, self.overall, self.ordered) <= self.criteria.t + 1e-12
        return good


def histograms(class_of: np.ndarray, sensitive: np.ndarray, classes: int, values: int) -> np.ndarray:
    """(classes, values) counts of each sensitive value in each class."""
    flat = np.bincount(class_of.astype(np.int64) * values + sensitive, minlength=classes * values)
    return flat.reshape(classes, values)
