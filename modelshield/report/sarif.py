"""report.sarif: findings as SARIF 2.1.0, the format GitHub code scanning and other SAST hubs ingest.

Spec: https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html. GitHub reads the rule's
and the result's ``properties.security-severity`` (a 0–10 score, as a string) to rank alerts, and
``properties.tags`` containing ``security`` to file them as security alerts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelshield.core.severity import Severity
from modelshield.report.interface import Renderer

if TYPE_CHECKING:
    from modelshield.assess.examples import ExampleGrid
    from modelshield.assess.results import AssessmentResult
    from modelshield.core.findings import Finding

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/modelshield/modelshield"
ATLAS_TECHNIQUE_URI = "https://atlas.mitre.org/techniques/{}"

LEVELS = {
    Severity.critical: "error",
    Severity.high: "error",
    Severity.medium: "warning",
    Severity.low: "note",
    Severity.info: "note",
}
SECURITY_SEVERITY = {
    Severity.critical: "9.5",
    Severity.high: "8.0",
    Severity.medium: "5.5",
    Severity.low: "3.0",
    Severity.info: "0.0",
}


def artifact_uri(path: str | None) -> str:
    """The model file as a URI reference, relative to the working directory when it lies below it.

    Code scanning resolves relative URIs against the checkout, so a model tracked in the repository
    gets its alert attached to the file. Models without a path (in-memory, remote) still need a
    location, so they get a placeholder.
    """
    if not path:
        return "model"
    if "://" in path:
        return path
    local = Path(path)
    if local.is_absolute():
        try:
            local = local.relative_to(Path.cwd())
        except ValueError:
            return local.as_uri()
    return quote(PurePath(local).as_posix())


def sarif_rule(finding: Finding) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": finding.id,
        "shortDescription": {"text": finding.title},
        "fullDescription": {"text": finding.description or finding.title},
        "help": {"text": finding.remediation or finding.description or finding.title},
        "defaultConfiguration": {"level": LEVELS[finding.severity]},
        "properties": {
            "tags": ["security", "machine-learning", *finding.atlas, *finding.owasp_ml],
            "security-severity": SECURITY_SEVERITY[finding.severity],
        },
    }
    if finding.atlas:
        rule["helpUri"] = ATLAS_TECHNIQUE_URI.format(finding.atlas[0])
    return rule


def _message(finding: Finding) -> str:
    measured = f"{finding.metric} = {finding.value:.4g}" if finding.value is not None else finding.metric
    if finding.threshold is not None:
        measured += f" (threshold {finding.threshold:.4g})"
    return f"{finding.title}: {measured}. {finding.description}".strip()


def sarif_result(finding: Finding, rule_index: int, uri: str) -> dict[str, Any]:
    # A model file has no lines for GitHub to fingerprint, so we give the identity ourselves:
    # the same finding on the same model stays one alert across runs.
    identity = hashlib.sha256(f"{finding.id}|{finding.metric}|{uri}".encode()).hexdigest()
    return {
        "ruleId": finding.id,
        "ruleIndex": rule_index,
        "level": LEVELS[finding.severity],
        "message": {"text": _message(finding)},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
        "partialFingerprints": {"modelshieldFinding/v1": identity},
        "properties": {
            "metric": finding.metric,
            "value": finding.value,
            "threshold": finding.threshold,
            "severity": finding.severity.value,
            "security-severity": SECURITY_SEVERITY[finding.severity],
            "evidence": finding.model_dump(mode="json")["evidence"],
        },
    }


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
        # A rule's default level is the worst severity any of its findings reached.
        worst: dict[str, Finding] = {}
        for finding in result.findings:
            if finding.id not in worst or finding.severity.rank > worst[finding.id].severity.rank:
                worst[finding.id] = finding
        index = {rule_id: i for i, rule_id in enumerate(worst)}
        log = {
            "$schema": SCHEMA_URI,
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "modelshield",
                            "version": result.version,
                            "informationUri": INFORMATION_URI,
                            "rules": [sarif_rule(f) for f in worst.values()],
                        }
                    },
                    "invocations": [_invocation(result)],
                    "results": [sarif_result(f, index[f.id], uri) for f in result.findings],
                    "properties": {"verdict": result.verdict, "passed": result.passed},
                }
            ],
        }
        return json.dumps(log, indent=2, ensure_ascii=False) + "\n"
