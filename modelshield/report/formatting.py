"""Numbers and verdicts worded once, so every report format says the same thing the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelshield.assess.results import AssessmentResult
from modelshield.core.findings import Finding

MISSING = "—"


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal, the precision accuracy is read at."""
    return MISSING if value is None else f"{100 * value:.1f}%"


def eps_text(eps: float | None) -> str:
    """A budget as people write it: ``0.1`` when that is exact, ``8/255`` for the 0–255 pixel grid."""
    if eps is None:
        return MISSING
    short = f"{eps:.4g}"
    steps = eps * 255
    if float(short) != eps and 0 < eps < 1 and abs(steps - round(steps)) < 1e-6:
        return f"{round(steps)}/255"
    return short


def num(value: float | None, digits: int = 3) -> str:
    """A measurement with ``digits`` significant digits, or a dash when it was not measured."""
    return MISSING if value is None else f"{value:.{digits}g}"


def sorted_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first, so the reader meets what needs fixing before what is merely noted."""
    return sorted(findings, key=lambda f: (-f.severity.rank, f.id))


@dataclass(frozen=True)
class Verdict:
    """The gate's outcome in words: a headline and the sentence that justifies it."""

    passed: bool
    headline: str
    sentence: str


def verdict(result: AssessmentResult) -> Verdict:
    """Explain ``result.passed`` from ``result.gating`` (attack, norm, eps, robust_accuracy, fail_under)."""
    headline = "PASSED" if result.passed else "FAILED"
    gate = result.gating
    if not gate:
        return Verdict(result.passed, headline, "No robustness gate was configured for this run.")
    budget = f"{gate.get('norm') or '?'}, ε = {eps_text(gate.get('eps'))}"
    if gate.get("robust_accuracy") is None:
        return Verdict(result.passed, headline, f"No attack ran at the gating budget ({budget}); nothing was gated.")
    sentence = f"Robust accuracy under {gate.get('attack') or '?'} ({budget}) is {pct(gate['robust_accuracy'])}"
    if gate.get("fail_under") is not None:
        sentence += f"; the gate requires at least {pct(gate['fail_under'])}"
    return Verdict(result.passed, headline, sentence + ".")


def detector_rows(result: AssessmentResult) -> list[dict[str, Any]]:
    """One row per (detector, standard attack), with the adaptive attack's numbers beside it."""
    adaptive = {r.name: r for r in result.detectors if r.adaptive}
    return [{"standard": r, "adaptive": adaptive.get(r.name)} for r in result.detectors if not r.adaptive]
