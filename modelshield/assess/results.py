"""What an assessment produces; every report format renders this one object."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from modelshield.assess.catalog import MASKING_FLAGS
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
        description="error: the model or the attack raised; not-applicable: the model has no usable gradients"
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
    findings: list[Finding] = Field(default_factory=list)
    verdict: Verdict = Field(default="NO GATE", description="the gate's outcome; UNTRUSTED when gradients are masked")
    passed: bool = Field(
        default=True, description="false when the command exits 1: FAILED, or UNTRUSTED unless allowed"
    )


def gradients_masked(result: AssessmentResult) -> bool:
    """True when gradient attacks under-report here: one could not apply, a gradient attack ran on masked
    gradients (``zero-gradients``, ``black-box-beats-white-box``), the model answers at random, or its one-hot
    scores starve Square (``label-like-scores``)."""
    if any(e.kind == "not-applicable" for e in result.errors):
        return True
    failed = {flag.name for flag in result.sanity if not flag.passed} & MASKING_FLAGS
    white_box_ran = any(r.queries is None for r in result.attacks)
    return bool(failed & {"randomised-outputs", "label-like-scores"}) or (white_box_ran and bool(failed))


def gate_incomplete(result: AssessmentResult) -> list[str]:
    """Attacks at the gating budget that raised instead of answering: the gate saw only the others."""
    eps = result.gating.get("eps")
    return [e.attack for e in result.errors if e.kind == "error" and e.norm == "linf" and e.eps == eps]
