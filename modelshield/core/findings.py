"""Typed findings: the one shape every assessment result takes.

Reports, SARIF, CI gates, SIEM events and model cards are all renderings of findings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from modelshield.core.severity import RankedEnum, Severity

__all__ = ["Finding", "RankedEnum", "Severity"]


class Finding(BaseModel):
    """One thing an assessment learned about a model, with what to do about it."""

    id: str = Field(description="stable rule id, e.g. MS-EVASION-001")
    title: str
    description: str
    metric: str
    value: float | None = None
    threshold: float | None = None
    severity: Severity
    atlas: list[str] = Field(default_factory=list, description="MITRE ATLAS technique ids")
    owasp_ml: list[str] = Field(default_factory=list, description="OWASP ML Top 10 ids")
    remediation: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)
