"""Certified robustness by randomized smoothing (Cohen, Rosenfeld, Kolter 2019).

``SmoothedClassifier(model, sigma).certify(x)`` gives each input a class and an L2 radius within
which no perturbation can change it (with probability 1 − α over the sampling);
``certify_dataset`` turns that into a certified-accuracy-vs-radius curve, and
``train_with_noise`` trains the base model the method needs.
"""

from __future__ import annotations

from modelshield.defenses.smoothing.bounds import certified_radius, clopper_pearson_lower, top_two_significant
from modelshield.defenses.smoothing.certification import (
    CertificationResult,
    CertifiedPoint,
    certify_dataset,
    default_radii,
)
from modelshield.defenses.smoothing.noise_training import GaussianAugmentation, train_with_noise
from modelshield.defenses.smoothing.smooth import ABSTAIN, Certificate, SmoothedClassifier

__all__ = [
    "ABSTAIN",
    "Certificate",
    "CertificationResult",
    "CertifiedPoint",
    "SmoothedClassifier",
    "certified_radius",
    "certify_dataset",
    "clopper_pearson_lower",
    "default_radii",
    "top_two_significant",
    "GaussianAugmentation",
    "train_with_noise",
]
