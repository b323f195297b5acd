"""What an assessment produces; every report format renders this one object."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

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
    findings: list[Finding] = Field(default_factory=list)
    passed: bool = True
