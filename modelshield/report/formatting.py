"""Numbers and verdicts worded once, so every report format says the same thing the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelshield.assess.catalog import MASKING_FLAGS
from modelshield.assess.results import AssessmentResult, gate_incomplete, gradients_masked, white_box_skipped
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
class Headline:
    """The assessment's outcome in words: what every format leads with.

    ``status`` is PASSED, FAILED, UNTRUSTED or NO GATE; ``tone`` picks the colour (pass, fail, warn, none);
    ``sentence`` justifies the status; ``worst`` names the most severe finding, so a run without a gate
    still shows what it found first.
    """

    status: str
    passed: bool
    tone: str
    sentence: str
    worst: str


TONES = {"PASSED": "pass", "FAILED": "fail", "UNTRUSTED": "warn", "NO GATE": "none"}
MARKS = {"PASSED": "✅", "FAILED": "❌", "UNTRUSTED": "⚠️", "NO GATE": "⚪"}


def worst_finding(findings: list[Finding]) -> str:
    """'CRITICAL MS-EVASION-001: …' for the most severe finding, or 'no findings'."""
    if not findings:
        return "no findings"
    f = sorted_findings(findings)[0]
    return f"{f.severity.value.upper()} {f.id}: {f.description or f.title}"


def _measured(gate: dict[str, Any], model: dict[str, Any]) -> str:
    budget = f"{gate.get('norm') or '?'}, ε = {eps_text(gate.get('eps'))}"
    if gate.get("robust_accuracy") is None:
        return f"No attack ran at the gating budget ({budget}); nothing was measured there." + _why_unmeasured(model)
    sentence = f"Robust accuracy under {gate.get('attack') or '?'} ({budget}) is {pct(gate['robust_accuracy'])}"
    if gate.get("fail_under") is not None:
        sentence += f"; the gate requires at least {pct(gate['fail_under'])}"
    return sentence + "."


def _untrusted_reason(result: AssessmentResult) -> str:
    skipped = white_box_skipped(result.errors)
    flags = [flag.name for flag in result.sanity if not flag.passed and flag.name in MASKING_FLAGS]
    reasons = []
    if skipped:
        reasons.append(f"white-box attacks could not run ({', '.join(skipped)}: no usable input gradients)")
    if flags and gradients_masked(result):
        reasons.append(f"sanity checks show gradient masking ({', '.join(flags)})")
    lost = gate_incomplete(result)
    if lost and result.gating.get("fail_under") is not None:
        reasons.append(f"attacks at the gating budget stopped with an error ({', '.join(lost)})")
    if not reasons:
        return "Nothing was measured at the gating budget, so the gate cannot pass."
    return "Untrusted: " + " and ".join(reasons) + "; robust accuracy is likely overstated, so the gate cannot pass."


def _why_unmeasured(model: dict[str, Any]) -> str:
    """Why a black-box model got no fixed-budget number: the attacks that give one need gradients or scores."""
    if model.get("white_box", True):
        return ""
    if not model.get("has_scores", True):
        return " The model answers with labels only, so only HopSkipJump (minimal L2) applies to it."
    return " The model has no gradients: include square in --attacks to measure it."


def verdict(result: AssessmentResult) -> Headline:
    """Explain ``result.verdict`` from ``result.gating``, the sanity flags and the errors."""
    status = result.verdict
    gate = result.gating
    if status == "UNTRUSTED":
        sentence = _untrusted_reason(result) + (" " + _measured(gate, result.model) if gate else "")
        if result.passed:
            sentence += " Exit code 0 only because --allow-untrusted was given."
    elif status == "NO GATE":
        sentence = "No --fail-under was set, so nothing was gated." + (
            " " + _measured(gate, result.model) if gate else ""
        )
    else:
        sentence = _measured(gate, result.model)
    return Headline(status, result.passed, TONES.get(status, "none"), sentence, worst_finding(result.findings))


def detector_rows(result: AssessmentResult) -> list[dict[str, Any]]:
    """One row per (detector, standard attack), with the adaptive attack's numbers beside it."""
    adaptive = {r.name: r for r in result.detectors if r.adaptive}
    return [{"standard": r, "adaptive": adaptive.get(r.name)} for r in result.detectors if not r.adaptive]
