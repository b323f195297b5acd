"""Wording shared by the formats: budgets, percentages and the verdict."""

from __future__ import annotations

from modelshield.assess.results import AssessmentResult
from modelshield.report.formatting import eps_text, pct, sorted_findings, verdict


def test_budgets_read_as_people_write_them() -> None:
    assert [eps_text(e) for e in (8 / 255, 0.2, 0.1, 0.5, None)] == ["8/255", "0.2", "0.1", "0.5", "—"]


def test_percentages() -> None:
    assert (pct(0.123), pct(1.0), pct(None)) == ("12.3%", "100.0%", "—")


def test_most_severe_first(image_result: AssessmentResult) -> None:
    ranks = [f.severity.rank for f in sorted_findings(image_result.findings)]
    assert ranks == sorted(ranks, reverse=True)


def test_verdict_names_attack_budget_and_threshold(image_result: AssessmentResult) -> None:
    outcome = verdict(image_result)
    assert not outcome.passed and outcome.status == "FAILED" and outcome.tone == "fail"
    assert outcome.sentence == "Robust accuracy under pgd (linf, ε = 8/255) is 12.0%; the gate requires at least 50.0%."
    assert outcome.worst.startswith("CRITICAL MS-EVASION-001: ")


def test_no_gate_is_not_a_pass_and_names_the_worst_finding(image_result: AssessmentResult) -> None:
    gating = {**image_result.gating, "fail_under": None}
    outcome = verdict(image_result.model_copy(update={"gating": gating, "verdict": "NO GATE", "passed": True}))
    assert outcome.status == "NO GATE" and outcome.tone == "none"
    assert outcome.sentence.startswith("No --fail-under was set, so nothing was gated. Robust accuracy under pgd")
    assert outcome.worst.startswith("CRITICAL ")


def test_untrusted_names_the_masking_checks(untrusted_result: AssessmentResult) -> None:
    outcome = verdict(untrusted_result)
    assert outcome.status == "UNTRUSTED" and outcome.tone == "warn" and not outcome.passed
    assert "zero-gradients" in outcome.sentence and "fgsm, pgd" in outcome.sentence
    allowed = verdict(untrusted_result.model_copy(update={"passed": True}))
    assert "--allow-untrusted" in allowed.sentence


def test_a_gate_that_lost_an_attack_says_so(image_result: AssessmentResult) -> None:
    from modelshield.assess.results import AttackError

    lost = AttackError(attack="square", norm="linf", eps=8 / 255, kind="error", error="TimeoutError", message="t")
    result = image_result.model_copy(
        update={
            "errors": [lost],
            "sanity": [],
            "verdict": "UNTRUSTED",
            "passed": False,
            "gating": {**image_result.gating, "robust_accuracy": 0.6},
        }
    )
    assert "attacks at the gating budget stopped with an error (square)" in verdict(result).sentence


def test_an_unmeasured_gate_on_a_black_box_model_says_why(image_result: AssessmentResult) -> None:
    """Square needs scores and fgsm/pgd need gradients: the headline says which a black-box model lacks."""
    gating = {**image_result.gating, "robust_accuracy": None, "fail_under": None}
    for model, reason in (
        ({"white_box": False, "has_scores": False}, "labels only, so only HopSkipJump"),
        ({"white_box": False, "has_scores": True}, "include square in --attacks"),
    ):
        result = image_result.model_copy(update={"gating": gating, "verdict": "NO GATE", "model": model})
        assert "nothing was measured there" in verdict(result).sentence and reason in verdict(result).sentence
    white = image_result.model_copy(update={"gating": gating, "verdict": "NO GATE"})
    assert verdict(white).sentence.endswith("nothing was measured there.")


def test_a_black_box_attack_that_does_not_apply_is_not_called_white_box(untrusted_result: AssessmentResult) -> None:
    from modelshield.assess.results import AttackError

    square = AttackError(
        attack="square", norm="linf", eps=8 / 255, kind="not-applicable", error="CapabilityError", message="labels only"
    )
    result = untrusted_result.model_copy(update={"errors": [*untrusted_result.errors, square]})
    sentence = verdict(result).sentence
    assert "white-box attacks could not run (fgsm, pgd: no usable input gradients)" in sentence
