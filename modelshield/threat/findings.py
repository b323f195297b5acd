"""Threat findings: rules applied to a system, each with a stable id and the status its owner recorded.

A finding's id is a hash of the rule id and the element or flow it is about, so it is the same on every run
and on every machine, and a status recorded against it (accepted, mitigated, false-positive) survives edits
to the rest of the system. A recorded status whose finding no longer appears is *stale*: reported, never
silently dropped, because it usually means an element was renamed and the decision needs re-taking.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field

from modelshield.core.severity import Severity
from modelshield.threat.rules import Mitigation, Rule, RuleLibrary
from modelshield.threat.system import System


class Status(str, Enum):
    """What the system's owner decided about a finding."""

    open = "open"
    accepted = "accepted"
    mitigated = "mitigated"
    false_positive = "false-positive"


class Decision(BaseModel):
    """One entry of the status file."""

    status: Status
    note: str = ""
    rule: str = ""
    element: str = ""


class ThreatFinding(BaseModel):
    """One threat that applies to one element or flow."""

    id: str
    rule: str
    title: str
    description: str
    element: str = Field(description="the id of the element or flow the threat is about")
    target: Literal["element", "flow"]
    stride: list[str]
    atlas: list[str] = Field(description="MITRE ATLAS technique ids")
    owasp: list[str] = Field(description="OWASP ML Top 10 (2023) ids")
    severity: Severity
    status: Status = Status.open
    note: str = ""
    mitigations: list[Mitigation]
    evidence: list[dict[str, Any]] = Field(
        default_factory=list,
        description="results of checks that test this threat (reserved: always empty in this version)",
    )


class ThreatReport(BaseModel):
    """Every finding for a system, plus the recorded statuses that matched nothing."""

    system: str
    findings: list[ThreatFinding]
    stale: dict[str, Decision] = Field(default_factory=dict)

    def open_at_least(self, severity: Severity) -> list[ThreatFinding]:
        """Open findings at or above ``severity``: what a CI gate fails on."""
        return [f for f in self.findings if f.status is Status.open and f.severity.rank >= severity.rank]

    def counts(self) -> dict[str, int]:
        """How many findings have each status."""
        return {s.value: sum(f.status is s for f in self.findings) for s in Status}


def finding_id(rule_id: str, target_id: str) -> str:
    """A short id that depends only on the rule and what it is about."""
    return "TM-" + hashlib.sha256(f"{rule_id}\x00{target_id}".encode()).hexdigest()[:12]


def _finding(rule: Rule, target: str) -> ThreatFinding:
    return ThreatFinding(
        id=finding_id(rule.id, target),
        rule=rule.id,
        title=rule.title,
        description=rule.description,
        element=target,
        target=rule.applies_to,
        stride=list(rule.stride),
        atlas=list(rule.atlas),
        owasp=list(rule.owasp),
        severity=rule.severity,
        mitigations=list(rule.mitigations),
    )


def analyse(
    system: System, libraries: Iterable[RuleLibrary], decisions: Mapping[str, Decision] | None = None
) -> ThreatReport:
    """Apply every rule to the system, worst first, and attach the recorded decisions.

    The system's references are checked first, so one built in Python gets the same one-line errors as YAML."""
    system.check_references()
    decisions = decisions or {}
    findings = [_finding(rule, target) for lib in libraries for rule in lib.rules for target in rule.targets(system)]
    for f in findings:
        if f.id in decisions:
            f.status, f.note = decisions[f.id].status, decisions[f.id].note
    findings.sort(key=lambda f: -f.severity.rank)  # stable: the rule file's order within a severity
    current = {f.id for f in findings}
    stale = {fid: d for fid, d in decisions.items() if fid not in current}
    return ThreatReport(system=system.name, findings=findings, stale=stale)


__all__ = ["Decision", "Status", "ThreatFinding", "ThreatReport", "analyse", "finding_id"]
