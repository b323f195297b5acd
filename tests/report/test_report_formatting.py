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
    assert not outcome.passed and outcome.headline == "FAILED"
    assert outcome.sentence == "Robust accuracy under pgd (linf, ε = 8/255) is 12.0%; the gate requires at least 50.0%."
