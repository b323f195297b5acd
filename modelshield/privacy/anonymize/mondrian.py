"""Mondrian multidimensional partitioning (LeFevre, DeWitt, Ramakrishnan, ICDE 2006).

"Mondrian Multidimensional K-Anonymity", https://doi.org/10.1109/ICDE.2006.101: start with the whole
table as one region; cut a region at the median of the quasi-identifier with the widest normalised range
when both halves still satisfy the criteria (an *allowable* cut), else try the next widest; a region with
no allowable cut is final. Strict partitioning: the halves do not overlap. The criteria are k-anonymity
and, as in LeFevre et al.'s later "Workload-aware anonymization" (KDD 2006), l-diversity and t-closeness
checked on both halves. Categorical values are ordered by their hierarchy's leaf order, so a cut tends to
fall between subtrees; the released label of a region is the lowest common ancestor of its values.

Each region costs a few NumPy calls (about 2n/k regions), so a million rows at k = 5 take seconds to tens
of seconds; the rows' quasi-identifiers are held as one float array.
"""

from __future__ import annotations

import numpy as np

from modelshield.core.errors import InputError
from modelshield.privacy.anonymize.criteria import Criteria, SensitiveCheck
from modelshield.privacy.anonymize.tables import Encoded


def sensitive_check(enc: Encoded, criteria: Criteria) -> SensitiveCheck | None:
    """The l/t check for this table, or None when only k is asked."""
    if not criteria.needs_sensitive:
        return None
    if enc.sensitive is None:
        raise InputError("l-diversity and t-closeness need a sensitive attribute (--sensitive)")
    counts = np.bincount(enc.sensitive, minlength=len(enc.sensitive_values))
    return SensitiveCheck(criteria, counts / counts.sum(), enc.sensitive_numeric)


def mondrian(enc: Encoded, criteria: Criteria) -> np.ndarray:
    """The region (an int id, 0 …) each row falls in; every region satisfies ``criteria``."""
    k = criteria.k
    check = sensitive_check(enc, criteria)
    values = len(enc.sensitive_values)
    secret = enc.sensitive

    def allowed(rows: np.ndarray) -> bool:
        if len(rows) < k:
            return False
        if check is None or secret is None:
            return True
        return bool(check.ok(np.bincount(secret[rows], minlength=values))[0])

    n = enc.rows
    everything = np.arange(n)
    if not allowed(everything):
        raise InputError(
            f"the whole table ({n} rows) does not satisfy k={k}"
            + (f", l={criteria.l}" if criteria.l is not None else "")
            + (f", t={criteria.t}" if criteria.t is not None else ""),
            hint="lower the requirement",
        )
    low, high = enc.low_high()
    scale = np.where(high > low, high - low, 1.0)
    region = np.empty(n, dtype=np.int64)
    count = 0
    stack = [everything]
    while stack:
        rows = stack.pop()
        cut = False
        if len(rows) >= 2 * k:
            part = enc.x[rows]
            widths = (part.max(axis=0) - part.min(axis=0)) / scale
            for d in np.argsort(-widths, kind="stable"):
                if widths[d] <= 0:
                    break
                column = part[:, d]
                middle = (len(column) - 1) // 2
                median = np.partition(column, middle)[middle]
                left = column <= median
                if left.all():
                    left = column < median
                size = int(left.sum())
                if size < k or len(rows) - size < k:
                    continue
                first, second = rows[left], rows[~left]
                if allowed(first) and allowed(second):
                    stack += [second, first]
                    cut = True
                    break
        if not cut:
            region[rows] = count
            count += 1
    return region
