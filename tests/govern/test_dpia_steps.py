"""DPIAs from a real pipeline run (digits: ingest → train → register → deploy): the seven ICO steps filled from
the registry, the lineage, a real membership audit of the registered model, an assessment, a minimisation
report and consent; what nothing records says "not recorded"; risks scored from the evidence; the answers file
validated; a signed-off DPIA recorded in the audit log; HTML escaped; bad input one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from entrypoint import invoke_main as _main

from modelshield.audit import AuditLog
from modelshield.govern.dpia import STEPS, build, load_answers, overall
from modelshield.govern.evidence import gather
from modelshield.registry import Registry

if TYPE_CHECKING:
    from conftest import PipelineRun

SIGNED = {
    "purposes": ["reading handwritten digits on scanned tax forms"],
    "context": "forms come from <b>members of the public</b>",
    "lawful_basis": "public_task",
    "consultation": [{"who": "DPO", "when": "2026-11-30", "summary": "asked for a membership audit"}],
    "measures": [
        {
            "risk": "Membership disclosure",
            "measure": "retrain with DP-SGD at ε ≤ 3 before the next release",
            "effect": "reduced",
            "residual": "medium",
            "approved": True,
        }
    ],
    "sign_off": {
        "measures_approved_by": "Head of forms",
        "residual_risks_approved_by": "Head of forms",
        "dpo_advice": "proceed with the DP retrain",
        "dpo_advice_accepted": True,
        "date": "2026-12-06",
    },
}


def _membership_audit(model_dir: Path, run: PipelineRun) -> dict[str, Any]:
    """The loss-threshold attack (Yeom et al. 2018) as ``privacy audit --json`` writes it."""
    import numpy as np
    import pandas as pd
    import torch

    from modelshield.attacks.privacy import LossThreshold, roc_summary
    from modelshield.core.loading import read_model
    from modelshield.privacy.audit import epsilon_lower_bound

    model = read_model(
        model_dir / "model.safetensors", arch="modelshield.demo:DigitsCNN", input_shape=(1, 8, 8), num_classes=10
    )
    ins = pd.read_csv(run.run / "artifacts" / "training-data")
    outs = pd.read_csv(run.system / "data" / "reference.csv")
    frame = pd.concat([ins, outs])
    x = torch.as_tensor(frame.drop(columns="label").to_numpy(np.float32)).reshape(-1, 1, 8, 8)
    y = torch.as_tensor(frame["label"].to_numpy().copy())
    member = np.r_[np.ones(len(ins), bool), np.zeros(len(outs), bool)]
    scores = LossThreshold().scores(model, x, y)
    row = {"attack": "loss", **roc_summary(scores, member).to_dict(curve=True)}
    row["epsilon_lower_bound"] = epsilon_lower_bound(scores, member).epsilon
    return {"model": str(model_dir), "members": len(ins), "non_members": len(outs), "attacks": [row]}


@pytest.fixture
def audited(
    pipeline_run: PipelineRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[PipelineRun, Path]:
    """The run's lineage loaded, and a real loss-threshold membership audit of the registered model (members:
    the data it was trained on; non-members: the reference rows it never saw)."""
    code, _, err = _main(["govern", "load", str(pipeline_run.run), "--db", pipeline_run.db], monkeypatch, capsys)
    assert code == 0, err
    with Registry.open(pipeline_run.db) as reg:
        mv = reg.get("digits")
    audit = tmp_path / "privacy.json"
    audit.write_text(json.dumps(_membership_audit(Path(mv.path), pipeline_run)))
    return pipeline_run, audit


def test_dpia_is_filled_from_the_records_and_says_what_is_missing(
    audited: tuple[PipelineRun, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run, audit = audited
    code, out, err = _main(["govern", "dpia", "digits", "--db", run.db, "--privacy", str(audit)], monkeypatch, capsys)
    assert code == 0, err
    for step in STEPS:
        assert f"## {step}" in out
    with Registry.open(run.db) as reg:
        mv = reg.get("digits")
    assert mv.digest in out and "ml-team" in out
    assert "records" in out and "incoming.csv" in out  # training data and source from the lineage, by digest
    assert "promote v1 by" in out  # the deployment's approval, from the registry's audit log
    assert "*not recorded — add it to the answers file (--answers) as consultation:" in out
    assert "Why a DPIA is needed**: *not recorded" in out
    assert "| Membership disclosure |" in out and "membership audit: advantage" in out
    assert "Not assessed (no evidence)**: adversarial inputs — run modelshield assess" in out
    assert "Outcome: open" in out


def test_risks_are_scored_from_the_evidence(pipeline_run: PipelineRun, tmp_path: Path) -> None:
    with Registry.open(pipeline_run.db) as reg:
        mv = reg.get("digits")
    privacy = tmp_path / "p.json"
    privacy.write_text(json.dumps({"attacks": [{"attack": "lira", "auc": 0.71, "epsilon_lower_bound": 1.9}]}))
    ev = gather(mv, privacy=privacy)
    report = {
        "metric": "accuracy",
        "threshold": 0.01,
        "recommended": ["zip"],
        "features": [
            {"feature": "zip", "drop": 0.001, "std": 0.001, "personal_data": "quasi-identifier", "removable": True}
        ],
    }
    d = build(ev, minimisation=(report, "min.json"), consent=[], uncovered=["data/incoming.csv"])
    by = {r.risk: r for r in d.risks}
    assert by["Membership disclosure"].likelihood == "probable" and by["Membership disclosure"].overall == "high"
    assert (
        by["Excessive personal data"].overall == "high"
        and "zip (quasi-identifier" in by["Excessive personal data"].basis
    )
    assert by["Processing without a lawful basis"].severity == "severe"
    assert by["Model tampering"].likelihood == "possible"  # the version is not signed
    assert overall("remote", "severe") == "medium" and overall("possible", "minimal") == "low"
    assert not d.signed_off and "open" in d.outcome


def test_a_signed_off_dpia_is_recorded_in_the_audit_log_and_html_is_escaped(
    audited: tuple[PipelineRun, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run, audit = audited
    answers = tmp_path / "answers.yaml"
    answers.write_text(yaml.safe_dump(SIGNED))
    page = tmp_path / "dpia.html"
    args = ["govern", "dpia", "digits:1", "--db", run.db, "--privacy", str(audit), "--answers", str(answers)]
    code, _, err = _main([*args, "--format", "html", "--out", str(page), "--record"], monkeypatch, capsys)
    assert code == 0, err
    text = page.read_text()
    assert "<b>members" not in text and "&lt;b&gt;members of the public&lt;/b&gt;" in text
    assert "Outcome: signed off" in text and "retrain with DP-SGD" in text
    with AuditLog.open(run.db) as log, log.engine.connect() as conn:
        from modelshield.audit import schema

        events = [json.loads(r.event) for r in conn.execute(schema.records.select())]
    (event,) = [e for e in events if e.get("action") == "govern.dpia"]
    assert (
        event["model"] == "digits" and event["version"] == 1 and event["residual_risks_approved_by"] == "Head of forms"
    )


def test_bad_answers_are_one_line_and_exit_2(
    pipeline_run: PipelineRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("risks:\n  - risk: leak\n    likelihood: sometimes\n    severity: severe\n")
    with pytest.raises(Exception, match="risks.0.likelihood"):
        load_answers(bad)
    code, out, err = _main(
        ["govern", "dpia", "digits", "--db", pipeline_run.db, "--answers", str(bad)], monkeypatch, capsys
    )
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "likelihood" in err
    bad.write_text("purpose: [typo]\n")
    code, _, err = _main(
        ["govern", "dpia", "digits", "--db", pipeline_run.db, "--answers", str(bad)], monkeypatch, capsys
    )
    assert code == 2 and "purpose" in err
    code, _, err = _main(["govern", "dpia", "digits", "--db", pipeline_run.db, "--record"], monkeypatch, capsys)
    assert code == 2 and "not signed off" in err


def test_consent_scopes_on_the_source_records_give_the_lawful_basis(audited: tuple[PipelineRun, Path]) -> None:
    from modelshield.govern.consent import ConsentStore
    from modelshield.govern.dpia import records

    run, _ = audited
    with Registry.open(run.db) as reg:
        ev = gather(reg.get("digits"))
    with ConsentStore.open(run.db) as consent:
        consent.grant("*/incoming.csv", ["training"], "public_task", by="dpo")
    found = records(ev, run.db)
    (uncovered,) = found["uncovered"]  # only incoming.csv is covered (the lineage names the shared run's paths)
    assert uncovered.endswith("/system/data/reference.csv")
    d = build(ev, **found)
    (basis,) = [it for it in d.steps[STEPS[3]] if it.label == "Lawful basis (consent scopes)"]
    assert basis.value is not None and basis.value.startswith("public_task (training, */incoming.csv)")
    assert "Processing without a lawful basis" in {r.risk for r in d.risks if r.overall == "high"}
    with ConsentStore.open(run.db) as consent:
        consent.grant("*/reference.csv", ["evaluation"], "public_task", by="dpo")
    d = build(ev, **records(ev, run.db))
    (lawful,) = [r for r in d.risks if r.risk == "Processing without a lawful basis"]
    assert lawful.likelihood == "remote"


def test_a_dpa_whose_data_made_the_model_is_in_step_2_and_its_breach_is_a_risk(
    audited: tuple[PipelineRun, Path],
) -> None:
    from datetime import UTC, datetime, timedelta

    from modelshield.govern.dpa import DpaStore
    from modelshield.govern.dpia import records

    run, _ = audited
    with Registry.open(run.db) as reg:
        ev = gather(reg.get("digits"))
    signed = datetime.now(UTC) - timedelta(days=30)
    with DpaStore.open(run.db) as store:  # the vendor's data may be used for evaluation only, not training
        store.add("Scans Ltd", ["*/incoming.csv"], ["evaluation"], terms="eval only", signed=signed, by="legal")
    d = build(ev, **records(ev, run.db))
    (line,) = [it for it in d.steps[STEPS[1]] if it.label == "Data processing agreements"]
    assert line.value is not None and line.value.startswith("Scans Ltd (DPA #1): purposes evaluation")
    assert "FLAGGED" in line.value and "training" in line.value
    (lawful,) = [r for r in d.risks if r.risk == "Processing without a lawful basis"]
    assert lawful.overall == "high" and "DPA Scans Ltd" in lawful.basis
