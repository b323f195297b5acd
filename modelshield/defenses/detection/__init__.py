"""Adversarial-input detectors with one fit / score / calibrate API, and their evaluation.

=====================  ==========================================  ===============
detector               signal                                      needs
=====================  ==========================================  ===============
``FeatureSqueezing``   prediction change under bit-depth/median    scores
``MahalanobisDetector``  distance to class means, penultimate layer  white box
``LIDDetector``        local intrinsic dimensionality per layer    white box, adv.
``EnergyDetector``     energy −T·logsumexp(z/T)                    scores
``MaxSoftmaxDetector`` −max softmax (baseline)                     scores
=====================  ==========================================  ===============

``evaluate_detectors`` measures ROC AUC and TPR at 5% FPR against FGSM, PGD and C&W, and
against an adaptive attacker (``AdaptivePGD``) who optimises against the detector.
"""

from __future__ import annotations

from modelshield.defenses.detection.adaptive import AdaptivePGD
from modelshield.defenses.detection.base import Detector
from modelshield.defenses.detection.confidence import EnergyDetector, MaxSoftmaxDetector
from modelshield.defenses.detection.evaluation import (
    DEFAULT_DETECTORS,
    DETECTORS,
    EVAL_ATTACKS,
    evaluate_detectors,
    make_detector,
    roc_auc,
    tpr_at_fpr,
)
from modelshield.defenses.detection.lid import LIDDetector
from modelshield.defenses.detection.mahalanobis import MahalanobisDetector
from modelshield.defenses.detection.squeezing import FeatureSqueezing

__all__ = [
    "DEFAULT_DETECTORS",
    "DETECTORS",
    "EVAL_ATTACKS",
    "AdaptivePGD",
    "Detector",
    "EnergyDetector",
    "FeatureSqueezing",
    "LIDDetector",
    "MahalanobisDetector",
    "MaxSoftmaxDetector",
    "evaluate_detectors",
    "make_detector",
    "roc_auc",
    "tpr_at_fpr",
]
