"""report.md: the verdict and what to look at, safe to paste into a pull request."""

from __future__ import annotations

from modelshield.assess.results import AssessmentResult
from modelshield.report import RENDERERS


def test_failing_summary_leads_with_the_verdict(image_result: AssessmentResult) -> None:
    text = RENDERERS["markdown"].render(image_result)
    heading = text.splitlines()[0]
    assert heading.startswith("## ") and "FAILED" in heading
    assert "ε = 8/255" in text and "12.0%" in text and "50.0%" in text
    assert "accuracy falls as ε grows" in text
    assert text.index("MS-GATE-001") < text.index("MS-EVASION-004") < text.index("MS-SANITY-001")
    assert "Finding MS-GATE-001 \\| critical (MS-GATE-001)" in text


def test_no_gate_is_not_passed_and_leads_with_the_worst_finding(image_result: AssessmentResult) -> None:
    """Without --fail-under nothing was decided: no green PASSED beside a CRITICAL finding."""
    text = RENDERERS["markdown"].render(
        image_result.model_copy(update={"passed": True, "gating": {}, "verdict": "NO GATE"})
    )
    heading = text.splitlines()[0]
    assert "NO GATE" in heading and "PASSED" not in text and "✅" not in text
    assert text.splitlines()[2].startswith("**Worst finding:** CRITICAL MS-EVASION-001")
    assert "No --fail-under was set" in text


def test_untrusted_leads_and_lists_attacks_without_numbers(untrusted_result: AssessmentResult) -> None:
    text = RENDERERS["markdown"].render(untrusted_result)
    assert "UNTRUSTED" in text.splitlines()[0] and "⚠️" in text.splitlines()[0]
    assert "gradient masking (zero-gradients)" in text
    assert "- pgd (not applicable): GradientUnavailableError" in text
    assert "- hopskipjump (error): TimeoutError: the endpoint did not answer in 30 s" in text


def test_gate_without_an_attack_at_its_budget(image_result: AssessmentResult) -> None:
    """The runner writes attack and robust_accuracy as null when nothing ran at the gating ε."""
    gating = {"eps": 0.1, "norm": "linf", "attack": None, "robust_accuracy": None, "fail_under": 0.5}
    text = RENDERERS["markdown"].render(
        image_result.model_copy(update={"gating": gating, "passed": False, "verdict": "UNTRUSTED"})
    )
    assert "No attack ran at the gating budget (linf, ε = 0.1)" in text and "None" not in text
    assert "Nothing was measured at the gating budget, so the gate cannot pass." in text


def test_user_text_stays_inert(image_result: AssessmentResult) -> None:
    hostile = image_result.model_copy(
        update={"model": {"name": "<script>alert(1)</script>"}, "command": "echo ```; rm -rf /"}
    )
    text = RENDERERS["markdown"].render(hostile)
    assert "<script>" not in text
    assert "````sh\necho ```; rm -rf /\n````" in text
