"""Threat findings: rules applied to a system, each with a stable id and the status its owner recorded.

A finding's id is a hash of the rule id and the element or flow it is about, so it is the same on every run
and on every machine, and a status recorded against it (accepted, mitigated, false-positive) survives edits
to the rest of the system. A recorded status whose finding no longer appears is *stale*: reported, never
silently dropped, because it usually means an element was renamed and the decision needs re-taking.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from modelshield.core.severity import Severity
from modelshield.threat.evidence import BACKS, Evidence, judge
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
    severity_basis: str = Field(default="", description="why the severity differs from the rule's, when it does")
    status: Status = Status.open
    note: str = ""
    mitigations: list[Mitigation]
    evidence: list[Evidence] = Field(
        default_factory=list, description="results of the checks that test this threat's mitigation"
    )


class ThreatReport(BaseModel):
    """Every finding for a system, plus the recorded statuses that matched nothing."""

    system: str
    findings: list[ThreatFinding]
    stale: dict[str, Decision] = Field(default_factory=dict)
    evidence: list[Evidence] = Field(default_factory=list, description="every piece of evidence, judged")

    def open_at_least(self, severity: Severity) -> list[ThreatFinding]:
        """Open findings at or above ``severity``: what a CI gate fails on."""
        return [f for f in self.findings if f.status is Status.open and f.severity.rank >= severity.rank]

    def counts(self) -> dict[str, int]:
        """How many findings have each status."""
        return {s.value: sum(f.status is s for f in self.findings) for s in Status}


def finding_id(rule_id: str, target_id: str) -> str:
    """A short id that depends only on the rule and what it is about."""
    return "TM-" + hashlib.sha256(f"{rule_id}\x00{target_id}".encode()).hexdigest()[:12]


def _finding(rule: Rule, target: str, system: System) -> ThreatFinding:
    severity, basis = rule.severity_for(system, target)
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
        severity=severity,
        severity_basis=basis,
        mitigations=list(rule.mitigations),
    )


def judge_evidence(system: System, base: Path) -> list[Evidence]:
    """Judge every ``evidence:`` entry of the system, its paths taken relative to ``base`` (the YAML's folder)."""
    return [judge(spec, base) for spec in system.evidence]


def _as_evidenced(system: System, evidence: Sequence[Evidence]) -> System:
    """The system with each control claim that evidence speaks to replaced by what the evidence shows: present
    when all of it passed, absent when any failed."""
    verdicts: dict[tuple[str, str], bool] = {}
    kinds = {e.id: e.kind for e in system.elements}
    for ev in evidence:
        attribute = BACKS[ev.kind].get(kinds.get(ev.element, ""))
        if attribute:
            key = (ev.element, attribute)
            verdicts[key] = verdicts.get(key, True) and ev.passed
    if not verdicts:
        return system
    elements = [
        e.model_copy(update={a: ok for (eid, a), ok in verdicts.items() if eid == e.id}) for e in system.elements
    ]
    return System(
        name=system.name,
        description=system.description,
        elements=elements,
        flows=system.flows,
        boundaries=system.boundaries,
        evidence=system.evidence,
    )


def _attached(rule: Rule, target: str, system: System, evidence: Sequence[Evidence]) -> list[Evidence]:
    """The evidence that tests this finding: of a kind the rule names, about its element, or about either end
    of its flow (an ingestion report on a store tests the flows that feed it)."""
    about = {target}
    if rule.applies_to == "flow":
        flow = next(f for f in system.flows if f.id == target)
        about |= {flow.source, flow.destination}
    return [ev for ev in evidence if ev.kind in rule.evidence and ev.element in about]


def analyse(
    system: System,
    libraries: Iterable[RuleLibrary],
    decisions: Mapping[str, Decision] | None = None,
    evidence: Sequence[Evidence] | None = None,
) -> ThreatReport:
    """Apply every rule to the system as its evidence shows it, worst first, and attach the recorded decisions.

    ``evidence`` defaults to the system's ``evidence:`` entries judged relative to the working directory. A
    finding whose evidence failed is open whatever was recorded for it. The system's references are checked
    first, so one built in Python gets the same one-line errors as YAML."""
    system.check_references()
    decisions = decisions or {}
    evidence = judge_evidence(system, Path.cwd()) if evidence is None else list(evidence)
    seen = _as_evidenced(system, evidence)
    findings: list[ThreatFinding] = []
    for lib in libraries:
        for rule in lib.rules:
            for target in rule.targets(seen):
                finding = _finding(rule, target, seen)
                finding.evidence = _attached(rule, target, seen, evidence)
                findings.append(finding)
    for f in findings:
        if f.id in decisions:
            f.status, f.note = decisions[f.id].status, decisions[f.id].note
        failed = [ev for ev in f.evidence if not ev.passed]
        if failed:
            recorded = f"recorded {f.status.value}; " if f.status is not Status.open else ""
            f.status = Status.open
            f.note = f"{recorded}evidence failed: " + "; ".join(f"{ev.kind} {ev.summary}" for ev in failed)
    findings.sort(key=lambda f: -f.severity.rank)  # stable: the rule file's order within a severity
    current = {f.id for f in findings}
    stale = {fid: d for fid, d in decisions.items() if fid not in current}
    return ThreatReport(system=system.name, findings=findings, stale=stale, evidence=evidence)


__all__ = ["Decision", "Status", "ThreatFinding", "ThreatReport", "analyse", "finding_id", "judge_evidence"]
