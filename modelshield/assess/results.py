"""What an assessment produces; every report format renders this one object."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelshield.core.findings import Finding


class AttackRecord(BaseModel):
    """One attack at one budget on the whole evaluation set."""

    attack: str
    norm: Literal["linf", "l2"]
    eps: float | None = Field(description="budget in the norm; null for minimum-norm attacks")
    robust_accuracy: float = Field(description="fraction of all samples still classified correctly")
    success_rate: float = Field(description="fraction of correctly classified samples the attack fooled")
    queries: int | None = Field(default=None, description="model queries used (black-box only)")
    seconds: float
    targeted: bool = False
    median_l2: float | None = Field(default=None, description="median L2 norm of successful perturbations")
    samples: int | None = Field(default=None, description="how many samples the attack ran on")
    params: dict[str, Any] = Field(default_factory=dict)


class QueryCurve(BaseModel):
    """Black-box success as a function of the query budget per sample."""

    attack: str
    norm: Literal["linf", "l2"]
    eps: float | None
    budgets: list[int]
    success_rate: list[float]


class SanityFlag(BaseModel):
    """A check, in the AutoAttack spirit, that tells whether the numbers can be trusted."""

    name: str
    passed: bool
    detail: str


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


class AssessmentResult(BaseModel):
    """The whole outcome of ``modelshield assess``; ``report.json`` is this, serialised."""

    tool: str = "modelshield"
    version: str
    created: str
    command: str = ""
    model: dict[str, Any]
    data: dict[str, Any]
    clean_accuracy: float
    gating: dict[str, Any] = Field(default_factory=dict)
    attacks: list[AttackRecord] = Field(default_factory=list)
    query_curves: list[QueryCurve] = Field(default_factory=list)
    perturbation_l2: dict[str, list[float]] = Field(
        default_factory=dict, description="per-attack L2 norms of successful perturbations"
    )
    sanity: list[SanityFlag] = Field(default_factory=list)
    certified: list[CertifiedPoint] = Field(default_factory=list, description="certified accuracy against L2 radius")
    detectors: list[DetectionRecord] = Field(default_factory=list, description="adversarial-input detector evaluation")
    findings: list[Finding] = Field(default_factory=list)
    passed: bool = True
