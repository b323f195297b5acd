"""Privacy attacks: membership inference, attribute inference, model inversion and feature sensitivity.

Every membership attack returns a score per sample (higher = more likely a training member);
:func:`roc_summary` turns scores and the known membership into AUC and TPR at 0.1 % / 1 % FPR::

    from modelshield.attacks.privacy import LiRA, LossThreshold, ReferenceModels, roc_summary

    scores = LossThreshold().scores(model, x, y)
    summary = roc_summary(scores, is_member)      # .auc, .tpr_at_fpr_0_001, .tpr_at_fpr_0_01, .fpr, .tpr

    refs = ReferenceModels.train(train_fn, x, y, n_models=16)   # train_fn(x, y) -> Model, the target's recipe
    LiRA(refs).evaluate(model, x, y, is_member)
"""

from __future__ import annotations

from modelshield.attacks.privacy.attribute import AttributeInference, AttributeResult
from modelshield.attacks.privacy.base import MembershipAttack
from modelshield.attacks.privacy.catalog import MEMBERSHIP_ATTACKS, membership_attacks, needs_references
from modelshield.attacks.privacy.inversion import FeatureSensitivity, InversionResult, MIFace, feature_sensitivity
from modelshield.attacks.privacy.label_only import LabelOnly
from modelshield.attacks.privacy.lira import LiRA
from modelshield.attacks.privacy.metrics import LOW_FPRS, RocSummary, roc_summary
from modelshield.attacks.privacy.reference import ReferenceModels, TrainFn, sklearn_train_fn
from modelshield.attacks.privacy.rmia import RMIA
from modelshield.attacks.privacy.shadow import ShadowModels
from modelshield.attacks.privacy.threshold import ConfidenceThreshold, LossThreshold

__all__ = [
    "LOW_FPRS",
    "MEMBERSHIP_ATTACKS",
    "RMIA",
    "AttributeInference",
    "AttributeResult",
    "ConfidenceThreshold",
    "FeatureSensitivity",
    "InversionResult",
    "LabelOnly",
    "LiRA",
    "LossThreshold",
    "MIFace",
    "MembershipAttack",
    "ReferenceModels",
    "RocSummary",
    "ShadowModels",
    "TrainFn",
    "feature_sensitivity",
    "membership_attacks",
    "needs_references",
    "roc_summary",
    "sklearn_train_fn",
]
