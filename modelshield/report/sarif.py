"""report.sarif: an assessment as SARIF 2.1.0, through the one SARIF writer (``modelshield.core.sarif``) that
scan and deps use too; this module adds the assessment's context: the model's location, the verdict as the
invocation's first notification, and the run's verdict and pass/fail as properties.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelshield.core.sarif import artifact_uri as artifact_uri  # re-exported: the model's location in reports
from modelshield.core.sarif import render_sarif
from modelshield.report.interface import Renderer

if TYPE_CHECKING:
    from modelshield.assess.examples import ExampleGrid
    from modelshield.assess.results import AssessmentResult


def _invocation(result: AssessmentResult) -> dict[str, Any]:
    """The run's verdict (UNTRUSTED, FAILED, NO GATE, PASSED) leads, as the invocation's first notification."""
    from modelshield.report.formatting import verdict

    outcome = verdict(result)
    level = {"fail": "error", "warn": "error"}.get(outcome.tone, "note")
    text = f"{outcome.status}: {outcome.sentence} Worst finding: {outcome.worst}"
    return {
        "executionSuccessful": True,
        "commandLine": result.command,
        "toolExecutionNotifications": [{"level": level, "message": {"text": text}, "descriptor": {"id": "MS-VERDICT"}}],
    }


class SarifRenderer(Renderer):
    """One SARIF run: one rule per distinct finding id, one result per finding, located at the model."""

    name = "sarif"
    filename = "report.sarif"

    def render(self, result: AssessmentResult, examples: ExampleGrid | None = None) -> str:
        uri = artifact_uri(result.model.get("path"))
        return render_sarif(
            [(finding, uri) for finding in result.findings],
            version=result.version,
            invocation=_invocation(result),
            properties={"verdict": result.verdict, "passed": result.passed},
        )
