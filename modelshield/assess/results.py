"""What an assessment produces; every report format renders this one object."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelshield.assess.catalog import BLACK_BOX_ATTACKS, MASKING_FLAGS
from modelshield.core.findings import Finding
from modelshield.defenses.results import CertifiedPoint, DetectionRecord

Verdict = Literal["PASSED", "FAILED", "UNTRUSTED", "NO GATE"]
"""PASSED/FAILED: robust accuracy at the gating ε against ``--fail-under``; UNTRUSTED: the sanity checks
say gradients are masked (or nothing could be measured at the gate), so a pass would mean nothing;
NO GATE: no threshold was set, so nothing was decided."""


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
    claimed: int | None = Field(default=None, description="successes the attack claimed")
    verified: int | None = Field(
        default=None,
        description="claimed successes the model's own labels confirm at the final inputs; only these count",
    )
    params: dict[str, Any] = Field(default_factory=dict)


class AttackError(BaseModel):
    """An attack that did not produce numbers: the model raised inside it, or it does not apply."""

    attack: str
    norm: Literal["linf", "l2"]
    eps: float | None = Field(description="budget in the norm; null for minimum-norm attacks")
    kind: Literal["error", "not-applicable"] = Field(
        description="error: the model or the attack raised; not-applicable: the model has no usable gradients "
        "(white-box attacks) or no scores (Square)"
    )
    error: str = Field(description="the exception's type")
    message: str = Field(description="what went wrong, in one line")


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


class PrivacyRecord(BaseModel):
    """One membership-inference attack against one model of the audited pair (``--privacy``).

    ``epsilon`` is the accountant's upper bound (null for the non-private baseline); ``epsilon_lower_bound``
    is what the attack demonstrates (Clopper–Pearson at ``confidence``, same δ). A sound DP model keeps the
    lower bound under the upper one; a leaking baseline shows a lower bound well above 0.
    """

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    attack: str
    model: Literal["baseline", "dp"]
    epsilon: float | None = Field(description="accountant's ε for the DP model; null for the baseline")
    auc: float = Field(description="ROC AUC of the membership scores, members against non-members")
    tpr_at_fpr_0001: float = Field(alias="tpr_at_fpr_0.001", description="members caught at 0.1% false positives")
    tpr_at_fpr_001: float = Field(alias="tpr_at_fpr_0.01", description="members caught at 1% false positives")
    epsilon_lower_bound: float = Field(description="empirical lower bound on ε from this attack's TPR/FPR")
    delta: float = Field(default=0.0, description="the δ both ε figures are stated at")
    confidence: float = Field(default=0.95, description="confidence level of the lower bound")


class RocCurve(BaseModel):
    """A membership attack's ROC, thinned to the points a log-scale plot needs."""

    attack: str
    model: Literal["baseline", "dp"]
    fpr: list[float]
    tpr: list[float]


class PoisoningRecord(BaseModel):
    """One poisoning attack at one poison rate, undefended and behind one defence (``--poisoning``)."""

    attack: str
    poison_rate: float = Field(description="fraction of training rows the attack touched")
    clean_accuracy: float = Field(description="the poisoned, undefended model's accuracy on clean test data")
    attack_success_rate: float = Field(
        description="backdoors: triggered inputs sent to the target; label flips: the test error rate"
    )
    defence: str | None = Field(description="the defence that screened the training set; null when none ran")
    defended_attack_success_rate: float | None = None
    defended_clean_accuracy: float | None = None
    detection_precision: float | None = Field(default=None, description="flagged rows that were poisoned")
    detection_recall: float | None = Field(default=None, description="poisoned rows that were flagged")
    detection_f1: float | None = None


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
    errors: list[AttackError] = Field(default_factory=list, description="attacks that raised or did not apply")
    privacy: list[PrivacyRecord] = Field(
        default_factory=list, description="membership attacks on a baseline and its DP twin (--privacy)"
    )
    privacy_roc: list[RocCurve] = Field(default_factory=list, description="the ROC of each privacy row")
    poisoning: list[PoisoningRecord] = Field(
        default_factory=list, description="poisoning attacks and the defences against them (--poisoning)"
    )
    findings: list[Finding] = Field(default_factory=list)
    verdict: Verdict = Field(default="NO GATE", description="the gate's outcome; UNTRUSTED when gradients are masked")
    passed: bool = Field(
        default=True, description="false when the command exits 1: FAILED, or UNTRUSTED unless allowed"
    )


def gradients_masked(result: AssessmentResult) -> bool:
    """True when gradient attacks under-report here: one could not apply, a gradient attack ran on masked
    gradients (``zero-gradients``, ``black-box-beats-white-box``), the model answers at random, or its one-hot
    scores starve Square (``label-like-scores``)."""
    if white_box_skipped(result.errors):
        return True
    failed = {flag.name for flag in result.sanity if not flag.passed} & MASKING_FLAGS
    white_box_ran = any(r.queries is None for r in result.attacks)
    return bool(failed & {"randomised-outputs", "label-like-scores"}) or (white_box_ran and bool(failed))


def white_box_skipped(errors: list[AttackError]) -> list[str]:
    """White-box attacks that could not apply (no usable gradients); a black-box one that did not apply is not masking."""
    return sorted({e.attack for e in errors if e.kind == "not-applicable" and e.attack not in BLACK_BOX_ATTACKS})


def gate_incomplete(result: AssessmentResult) -> list[str]:
    """Attacks at the gating budget that raised instead of answering: the gate saw only the others."""
    eps = result.gating.get("eps")
    return [e.attack for e in result.errors if e.kind == "error" and e.norm == "linf" and e.eps == eps]
