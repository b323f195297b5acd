"""Model cards from a real pipeline run: the CycloneDX card validates with cyclonedx-python-lib (1.6 schema),
the HTML card renders the evidence (escaped), and the CLI answers a bad model name with one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from entrypoint import invoke_main as _main

from modelshield.assess.results import AssessmentResult, AttackRecord
from modelshield.govern.cards import cyclonedx_card, html_card, validate_cyclonedx
from modelshield.govern.evidence import gather
from modelshield.registry import Registry

if TYPE_CHECKING:
    from conftest import PipelineRun


def _assess_report(path: Path) -> Path:
    """A report.json in the schema `modelshield assess` writes (its own pydantic model)."""
    result = AssessmentResult(
        version="0.1.0",
        created="2026-12-06T10:00:00Z",
        model={"name": "digits"},
        data={"samples": 200},
        clean_accuracy=0.93,
        attacks=[
            AttackRecord(attack="pgd", norm="linf", eps=0.1, robust_accuracy=0.61, success_rate=0.35, seconds=1.0),
            AttackRecord(attack="square", norm="linf", eps=0.1, robust_accuracy=0.7, success_rate=0.25, seconds=2.0),
        ],
        verdict="PASSED",
    )
    path.write_text(result.model_dump_json(), encoding="utf-8")
    return path


def test_cyclonedx_card_validates_with_cyclonedx_python_lib(
    pipeline_run: PipelineRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    report = _assess_report(tmp_path / "report.json")
    use = tmp_path / "use.yaml"
    use.write_text("intended_use: reading handwritten digits on scanned forms\nusers: [forms team]\n")
    out = tmp_path / "card.cdx.json"
    args = ["govern", "card", "digits", "--format", "cyclonedx", "--db", pipeline_run.db, "--assess", str(report)]
    code, _, err = _main([*args, "--intended-use", str(use), "-o", str(out)], monkeypatch, capsys)
    assert code == 0, err
    text = out.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    subject = doc["metadata"]["component"]
    assert subject["type"] == "machine-learning-model" and subject["version"] == "1"
    card = subject["modelCard"]
    metrics = {(m["type"], m["slice"]): m["value"] for m in card["quantitativeAnalysis"]["performanceMetrics"]}
    assert metrics[("robust accuracy", "pgd at linf ε=0.1")] == "0.6100"
    assert card["considerations"]["useCases"] == ["reading handwritten digits on scanned forms"]
    (data,) = doc["components"]  # the training data the lineage... or the registry names
    with Registry.open(pipeline_run.db) as reg:
        mv = reg.get("digits")
    assert data["type"] == "data" and mv.datasets[0].endswith(data["name"])
    props = {p["name"]: p["value"] for p in card["properties"]}
    assert props["modelshield:registry:digest"] == mv.digest
    assert props["modelshield:security:robust_accuracy_min"] == "0.61"


def test_a_card_that_breaks_the_schema_is_refused(pipeline_run: PipelineRun) -> None:
    with Registry.open(pipeline_run.db) as reg:
        doc = cyclonedx_card(gather(reg.get("digits")))
    doc["metadata"]["component"]["modelCard"]["modelParameters"]["approach"] = {"type": "guesswork"}
    with pytest.raises(Exception, match="1.6 schema"):
        validate_cyclonedx(doc)


def test_html_card_renders_the_run_evidence_escaped(pipeline_run: PipelineRun, tmp_path: Path) -> None:
    use = tmp_path / "use.yaml"
    use.write_text("intended_use: '<script>alert(1)</script>'\nlimitations: [digits only, 8x8 greyscale]\n")
    with Registry.open(pipeline_run.db) as reg:
        mv = reg.get("digits")
    ev = gather(mv, considerations=use)
    assert ev.sources[0] == str(Path(mv.path).parents[1] / "state.json")  # the run folder, found by digest
    assert ev.training["accepted"] > 0 and ev.info["method"] == "standard"
    page = html_card(ev)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert mv.digest in page and "8x8 greyscale" in page and "ml-team" in page


def test_bad_model_name_is_one_line_and_exit_2(
    pipeline_run: PipelineRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _main(["govern", "card", "Bad/Name", "--db", pipeline_run.db], monkeypatch, capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "not valid" in err
    code, _, err = _main(["govern", "card", "nosuch", "--db", pipeline_run.db], monkeypatch, capsys)
    assert code == 2 and "no model named 'nosuch'" in err and len(err.strip().splitlines()) == 1


def test_metrics_count_incidents_from_the_gateways_audit_log(
    pipeline_run: PipelineRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelshield.audit import AuditLog

    with AuditLog.open(pipeline_run.gateway_db) as log:  # as the gateway writes an extraction signal
        log.append({"action": "security.extraction", "model": "digits", "decision": "flag", "reason": "queries"})
        log.append({"action": "security.extraction", "model": "other", "decision": "flag", "reason": "queries"})
    args = ["govern", "metrics", "--db", pipeline_run.db, "--audit-db", pipeline_run.gateway_db, "--json"]
    code, out, err = _main(args, monkeypatch, capsys)
    assert code == 0, err
    (row,) = json.loads(out)
    assert (row["model"], row["version"], row["traffic_percent"], row["incidents"]) == ("digits", 1, 100.0, 1)
    assert row["scan"] == "not scanned" and row["signed"] is False and row["last_incident"] is not None
    code, out, _ = _main(["govern", "inventory", "--db", pipeline_run.db], monkeypatch, capsys)
    assert code == 0 and out.splitlines()[1].startswith("digits,1,production,100.0,False,ml-team,sha256:")
