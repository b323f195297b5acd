"""Findings as SARIF 2.1.0, the format GitHub code scanning and other SAST hubs ingest: one writer for assess,
scan and deps, which hand it findings plus where each was found.

Spec: https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html. GitHub reads the rule's and the result's
``properties.security-severity`` (a 0–10 score, as a string) to rank alerts, and ``properties.tags`` containing
``security`` to file them as security alerts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

import modelshield
from modelshield.core.findings import Finding
from modelshield.core.severity import Severity

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
    """A file as a URI reference, relative to the working directory when it lies below it.

    Code scanning resolves relative URIs against the checkout, so a model tracked in the repository gets its
    alert attached to the file. Models without a path (in-memory, remote) still need a location, so they get a
    placeholder.
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
    """The rule a finding id stands for, at the finding's level."""
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
    """One result located at ``uri``, fingerprinted so the same finding stays one alert across runs."""
    # A model file has no lines for GitHub to fingerprint, so we give the identity ourselves.
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


def sarif_log(
    located: Sequence[tuple[Finding, str]],
    *,
    version: str = modelshield.__version__,
    invocation: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One SARIF run: one rule per distinct finding id (at the worst severity any of its findings reached) and
    one result per (finding, uri) pair. ``invocation`` and ``properties`` are the caller's context (a command
    line, a verdict notification, a pass/fail summary)."""
    worst: dict[str, Finding] = {}
    for finding, _ in located:
        if finding.id not in worst or finding.severity.rank > worst[finding.id].severity.rank:
            worst[finding.id] = finding
    index = {rule_id: i for i, rule_id in enumerate(worst)}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "modelshield",
                "version": version,
                "informationUri": INFORMATION_URI,
                "rules": [sarif_rule(f) for f in worst.values()],
            }
        },
        "invocations": [invocation or {"executionSuccessful": True}],
        "results": [sarif_result(f, index[f.id], uri) for f, uri in located],
    }
    if properties:
        run["properties"] = properties
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def render_sarif(
    located: Sequence[tuple[Finding, str]],
    *,
    version: str = modelshield.__version__,
    invocation: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
) -> str:
    """``sarif_log`` as the JSON text written to a ``.sarif`` file."""
    log = sarif_log(located, version=version, invocation=invocation, properties=properties)
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


__all__ = ["artifact_uri", "render_sarif", "sarif_log", "sarif_result", "sarif_rule"]
