"""How strong a membership attack is: ROC curve, AUC and TPR at low FPR.

Carlini et al. (https://arxiv.org/abs/2112.03570) argue that an attack matters when it identifies
*some* members with near certainty, so the headline figures are the true-positive rate at 0.1 % and
1 % false-positive rate; AUC averages over thresholds nobody would use. A TPR at FPR α is only
measured when there are enough non-members to see that rate: with ``n`` non-members the smallest
non-zero FPR is ``1/n``, so ``RocSummary.resolved(α)`` is False below it and callers say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from modelshield.core.errors import InputError

#: the false-positive rates every summary reports a TPR at
LOW_FPRS = (0.001, 0.01)


@dataclass(frozen=True)
class RocSummary:
    """A membership attack's ROC curve and its summary figures (scores: higher means member).

    ``tpr_at_fpr_0_001`` and ``tpr_at_fpr_0_01`` are read off the ROC curve by linear
    interpolation between its vertices, which is the rate a threshold randomised between two
    neighbouring scores achieves; ``fpr_resolution`` (1 / non-members) says whether that rate
    rests on at least one observed false positive.
    """

    auc: float
    tpr_at_fpr_0_001: float
    tpr_at_fpr_0_01: float
    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    n_members: int
    n_non_members: int

    @property
    def fpr_resolution(self) -> float:
        """The smallest non-zero false-positive rate this many non-members can show."""
        return 1.0 / self.n_non_members

    def resolved(self, fpr: float) -> bool:
        """Whether ``fpr`` is at or above the resolution of the non-member count."""
        return fpr >= self.fpr_resolution * (1 - 1e-9)

    def tpr_at(self, fpr: float) -> float:
        """True-positive rate at false-positive rate ``fpr`` (interpolated between ROC vertices)."""
        if not 0.0 <= fpr <= 1.0:
            raise InputError(f"a false-positive rate lies in [0, 1], got {fpr}")
        return _tpr_at(self.fpr, self.tpr, fpr)

    def to_dict(self, *, curve: bool = False) -> dict[str, Any]:
        """JSON-ready figures under the keys report.json uses; ``curve`` adds the ROC arrays."""
        out: dict[str, Any] = {
            "auc": round(self.auc, 6),
            "tpr_at_fpr_0.001": round(self.tpr_at_fpr_0_001, 6),
            "tpr_at_fpr_0.01": round(self.tpr_at_fpr_0_01, 6),
            "n_members": self.n_members,
            "n_non_members": self.n_non_members,
            "fpr_resolution": self.fpr_resolution,
            "unresolved_fprs": [f for f in LOW_FPRS if not self.resolved(f)],
        }
        if curve:
            out["roc"] = {"fpr": self.fpr.tolist(), "tpr": self.tpr.tolist()}
        return out


def _tpr_at(fpr: np.ndarray, tpr: np.ndarray, at: float) -> float:
    # at an FPR shared by several vertices (a vertical ROC segment) the highest TPR is achievable
    last = np.searchsorted(fpr, at, side="right") - 1
    if last >= 0 and fpr[last] == at:
        return float(tpr[last])
    return float(np.interp(at, fpr, tpr))


def checked_membership(scores: ArrayLike, is_member: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Scores as float64 and membership as bool, refused when they cannot make a ROC curve."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    m = np.asarray(is_member).reshape(-1)
    if s.shape != m.shape:
        raise InputError(f"{s.size} scores but {m.size} membership labels")
    if m.dtype != np.bool_:
        if not np.isin(m, (0, 1)).all():
            raise InputError("membership labels must be booleans or 0/1")
        m = m.astype(bool)
    if not np.isfinite(s).all():
        raise InputError("membership scores contain NaN or Inf values")
    if m.all() or not m.any():
        raise InputError("a ROC curve needs both members and non-members")
    return s, m


def roc_summary(scores: ArrayLike, is_member: ArrayLike) -> RocSummary:
    """The ROC curve of per-sample membership ``scores`` (higher = member) against the truth.

    Example::

        summary = roc_summary(LossThreshold().scores(model, x, y), is_member)
        summary.auc, summary.tpr_at_fpr_0_001, summary.resolved(0.001)
    """
    from sklearn.metrics import roc_curve

    s, m = checked_membership(scores, is_member)
    fpr, tpr, thresholds = roc_curve(m, s, drop_intermediate=True)
    return RocSummary(
        auc=float(np.trapezoid(tpr, fpr)),
        tpr_at_fpr_0_001=_tpr_at(fpr, tpr, LOW_FPRS[0]),
        tpr_at_fpr_0_01=_tpr_at(fpr, tpr, LOW_FPRS[1]),
        fpr=fpr,
        tpr=tpr,
        thresholds=thresholds,
        n_members=int(m.sum()),
        n_non_members=int((~m).sum()),
    )


__all__ = ["LOW_FPRS", "RocSummary", "checked_membership", "roc_summary"]
