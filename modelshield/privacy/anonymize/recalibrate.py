"""Using a model on anonymised records: decode generalised values, and move the decision threshold.

A model trained on raw data sees shifted inputs once records are generalised (an age becomes a range, an
occupation ``*``), so its scores drift and the threshold chosen on raw data no longer gives the error
rates it was chosen for. The remedy that needs no retraining is to choose the threshold again on
anonymised records with known labels (a held-out set put through the same release).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from modelshield.core.errors import InputError
from modelshield.privacy.anonymize.hierarchy import ROOT
from modelshield.privacy.anonymize.tables import days

_RANGE = r"^\[\s*(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*-\s*(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*\]$"


def _date_bounds(text: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """Released date labels (``2021-03-14``, ``2021-03-01..2021-03-31``, ``*``) as day numbers, else None."""
    star = text == ROOT
    ends = text[~star].str.split("..", n=1, expand=True, regex=False)
    if star.all() or ends.empty:
        return None
    low = days(ends[0])
    high = days(ends[ends.columns[-1]].fillna(ends[0]))
    if low is None or high is None:
        return None
    out_low, out_high = np.full(len(text), -np.inf), np.full(len(text), np.inf)
    out_low[~star.to_numpy()], out_high[~star.to_numpy()] = low, high
    return out_low, out_high


def label_bounds(labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Released numeric labels as inclusive (low, high): a number is itself, ``[lo-hi]`` its ends, ``*`` ±∞.

    On a date column (every label a date, a ``first..last`` range or ``*``) the bounds are day numbers."""
    text = labels.astype(str).str.strip()
    dated = _date_bounds(text)
    if dated is not None:
        return dated
    spans = text.str.extract(_RANGE)
    single = pd.to_numeric(text, errors="coerce")
    low = pd.to_numeric(spans[0], errors="coerce").fillna(single)
    high = pd.to_numeric(spans[1], errors="coerce").fillna(single)
    star = text == ROOT
    low[star], high[star] = -np.inf, np.inf
    bad = low.isna() & ~star
    if bad.any():
        raise InputError(f"column {labels.name!r} holds {text[bad].iloc[0]!r}, not a number or a range")
    return low.to_numpy(np.float64), high.to_numpy(np.float64)


def midpoints(labels: pd.Series, fill: float) -> np.ndarray:
    """Each released numeric label's midpoint (``fill`` for ``*``): the usual way to feed a range to a model."""
    low, high = label_bounds(labels)
    middle = (low + high) / 2
    return np.where(np.isfinite(middle), middle, fill)


def recalibrated_threshold(
    scores: np.ndarray, labels: np.ndarray, target: Literal["f1", "rate"] = "f1", rate: float | None = None
) -> float:
    """The threshold on ``scores`` (positive when ≥) that maximises F1 on ``labels``, or that flags ``rate``.

    ``target="rate"`` keeps the share of positive decisions the model had on raw data — what a lender or
    a screening programme budgets for — and needs no labels beyond the count."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    if scores.shape != labels.shape or scores.ndim != 1 or len(scores) == 0:
        raise InputError("scores and labels must be two 1-d arrays of the same, non-zero length")
    if target == "rate":
        if rate is None or not 0 < rate < 1:
            raise InputError(f"target 'rate' needs a rate in (0, 1), got {rate}")
        return float(np.quantile(scores, 1 - rate, method="higher"))
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], labels[order]
    true_pos = np.cumsum(hits)
    flagged = np.arange(1, len(scores) + 1)
    f1 = 2 * true_pos / (flagged + hits.sum())
    last = np.r_[ranked[1:] != ranked[:-1], True]  # a threshold can only sit between distinct scores
    best = int(np.argmax(np.where(last, f1, -1)))
    return float(ranked[best])
