"""Re-identification risk from the sizes of the equivalence classes (El Emam & Dankar 2008, JAMIA 15(5)).

- *Prosecutor*: the attacker knows the target is in the table; a record in a class of f rows is picked
  out with probability 1/f.
- *Journalist*: the attacker does not know who is in the table and links against the population; the
  risk is 1/F with F the class's size in the population.
- *Marketer*: the attacker links every record and counts the hits; the expected share re-identified is
  the mean of 1/F over the records.

Without a population table, F is estimated from the sample and the population size N, as sdcMicro and
μ-Argus do (Benedetti & Franconi 1998; Franconi & Polettini 2004): given f, F − f is negative binomial
with f successes at the sampling fraction π = n/N, and a record's risk is E[1/F | f]. With no N, the table
is the population (π = 1) and the three measures coincide with 1/f.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from modelshield.core.errors import InputError

#: a record is "at risk" when its re-identification probability exceeds this (1/5: classes under 5 rows)
RISK_THRESHOLD = 0.2
_EXACT_MEAN = 20_000


@dataclass(frozen=True)
class RiskReport:
    """Re-identification risk of one table (shares are of its records)."""

    records: int
    classes: int
    sample_uniques: float
    prosecutor_highest: float
    prosecutor_at_risk: float
    prosecutor_success: float
    journalist_highest: float
    journalist_at_risk: float
    marketer_success: float
    population: int | None
    threshold: float = RISK_THRESHOLD

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_inverse(f: int, fraction: float) -> float:
    """E[1/F | f] when F − f ~ NegBin(f, π): the Benedetti–Franconi individual risk."""
    if fraction >= 1:
        return 1.0 / f
    if f == 1:
        return fraction / (1 - fraction) * -np.log(fraction)
    mean = f * (1 - fraction) / fraction
    if mean > _EXACT_MEAN:  # πF → Gamma(f, 1) as π → 0, and E[1/G] = 1/(f − 1)
        return min(fraction / (f - 1), 1.0 / f)
    from scipy.stats import nbinom

    upper = int(nbinom.ppf(1 - 1e-12, f, fraction)) + 1
    x = np.arange(upper + 1)
    return float(min((nbinom.pmf(x, f, fraction) / (f + x)).sum(), 1.0 / f))


def risk_from_classes(
    sizes: np.ndarray, population: int | None = None, threshold: float = RISK_THRESHOLD
) -> RiskReport:
    """Risk from the size of each equivalence class (one entry per class, suppressed rows excluded)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    sizes = sizes[sizes > 0]
    n = int(sizes.sum())
    if n == 0:
        raise InputError("no records to measure risk on")
    if population is not None and population < n:
        raise InputError(f"the population ({population}) is smaller than the table ({n} records)")
    fraction = n / population if population else 1.0
    distinct, per = np.unique(sizes, return_counts=True)  # class size → number of such classes
    records = distinct * per
    prosecutor = 1.0 / distinct
    journalist = np.array([expected_inverse(int(f), fraction) for f in distinct])
    return RiskReport(
        records=n,
        classes=int(len(sizes)),
        sample_uniques=float(records[distinct == 1].sum() / n),
        prosecutor_highest=float(prosecutor.max()),
        prosecutor_at_risk=float(records[prosecutor > threshold].sum() / n),
        prosecutor_success=float(len(sizes) / n),
        journalist_highest=float(journalist.max()),
        journalist_at_risk=float(records[journalist > threshold].sum() / n),
        marketer_success=float((records * journalist).sum() / n),
        population=population,
        threshold=threshold,
    )


def class_sizes(keys: np.ndarray) -> np.ndarray:
    """Sizes of the classes of rows sharing a key (any 1-d array of class ids)."""
    return np.unique(keys, return_counts=True)[1]
