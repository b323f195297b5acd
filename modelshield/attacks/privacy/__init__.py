"""Privacy attacks: membership inference, attribute inference, model inversion and feature sensitivity.

Every membership attack returns a score per sample (higher = more likely a training member);
:func:`roc_summary` turns scores and the known membership into AUC and TPR at 0.1 % / 1 % FPR::

    from modelshield.attacks.privacy import LossThreshold, roc_summary

    scores = LossThreshold().scores(model, x, y)
    summary = roc_summary(scores, is_member)      # .auc, .tpr_at_fpr_0_001, .tpr_at_fpr_0_01, .fpr, .tpr
"""

from __future__ import annotations

from modelshield.attacks.privacy.base import MembershipAttack
from modelshield.attacks.privacy.metrics import LOW_FPRS, RocSummary, roc_summary
from modelshield.attacks.privacy.threshold import ConfidenceThreshold, LossThreshold

__all__ = [
    "LOW_FPRS",
    "ConfidenceThreshold",
    "LossThreshold",
    "MembershipAttack",
    "RocSummary",
    "roc_summary",
]
