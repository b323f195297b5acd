"""What the defences' evaluations produce, torch-free so reports and the CLI can read them cheaply.

``certify_dataset(...).curve`` yields ``CertifiedPoint``; ``evaluate_detectors`` yields ``DetectionRecord``;
``modelshield.assess`` puts both in its result without redefining them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DETECTOR_NAMES = ("feature-squeezing", "mahalanobis", "lid", "energy", "max-softmax")
"""Every adversarial-input detector, by the name ``make_detector`` takes."""
DEFAULT_DETECTORS = DETECTOR_NAMES[:4]
"""What ``evaluate_detectors`` runs unless told: max-softmax is the baseline, asked for by name."""


class CertifiedPoint(BaseModel):
    """Randomized smoothing: certified accuracy at one L2 radius (Cohen et al. 2019)."""

    radius: float = Field(description="L2 radius, in input units")
    certified_accuracy: float = Field(description="fraction certified correct with at least this radius")
    abstain_rate: float = Field(description="fraction the smoothed classifier abstained on")
    sigma: float = Field(description="standard deviation of the smoothing noise")


class DetectionRecord(BaseModel):
    """How well one detector separates clean inputs from one attack's adversarial examples."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    name: str = Field(description="detector")
    attack: str
    adaptive: bool = Field(description="the attack knew the detector and optimised against it")
    auc: float | None = Field(description="ROC AUC, clean vs successful adversarial; null with no successes")
    tpr_at_fpr_005: float | None = Field(
        alias="tpr_at_fpr_0.05", description="share of adversarial examples flagged at a 5% false-positive rate"
    )
    samples: int = Field(default=0, description="successful adversarial examples scored")


__all__ = ["DEFAULT_DETECTORS", "DETECTOR_NAMES", "CertifiedPoint", "DetectionRecord"]
