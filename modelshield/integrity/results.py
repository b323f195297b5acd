"""What a scan returns: a verdict per file, backed by findings that say why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelshield.core.severity import Severity
from modelshield.integrity.allowlist import Verdict

if TYPE_CHECKING:
    from modelshield.core.findings import Finding

_SEVERITY = {Verdict.unsafe: Severity.critical, Verdict.unparsed: Severity.high, Verdict.unknown: Severity.medium}
_REMEDIATION = {
    Verdict.unsafe: "Do not load this file. Get the model from a trusted source, as safetensors or ONNX.",
    Verdict.unparsed: "The file could not be fully scanned, so it cannot be trusted; re-export it from its source.",
    Verdict.unknown: "Review what the file needs; convert it to safetensors, ONNX or skops if you can.",
}
ATLAS_MALICIOUS_MODEL = "AML.T0010.003"  # ML Supply Chain Compromise: Model


def issue(verdict: Verdict, rule: str, title: str, where: str, description: str, **evidence: Any) -> Finding:
    """A finding that carries its verdict, so a file's verdict is the worst of its findings.

    pydantic (behind ``Finding``) is imported here, on the first finding, so a clean file never pays for it."""
    from modelshield.core.findings import Finding

    return Finding(
        id=rule,
        title=title,
        description=f"{where}: {description}",
        metric=where,
        severity=_SEVERITY[verdict],
        atlas=[ATLAS_MALICIOUS_MODEL],
        owasp_ml=["ML06"],
        remediation=_REMEDIATION[verdict],
        evidence={"verdict": verdict.value, "where": where, **evidence},
    )


def verdict_of(findings: list[Finding]) -> Verdict:
    """The worst verdict among the findings; safe when there are none."""
    return max((Verdict(f.evidence["verdict"]) for f in findings), key=lambda v: v.rank, default=Verdict.safe)


@dataclass
class FileReport:
    """One scanned path: its format (read from content), verdict and findings."""

    path: str
    format: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.findings)

    def passed(self, allow_unknown: bool = False) -> bool:
        """Safe, or unknown when the caller accepts unknown globals and formats."""
        return self.verdict is Verdict.safe or (allow_unknown and self.verdict is Verdict.unknown)


@dataclass
class ScanReport:
    """Every file a scan looked at."""

    files: list[FileReport]

    def passed(self, allow_unknown: bool = False) -> bool:
        return all(f.passed(allow_unknown) for f in self.files)
