"""Evidence behind threat-model claims: real check results back a control or withdraw it and reopen the threat."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from entrypoint import invoke_main as run
from safetensors.numpy import save_file
from sklearn.datasets import load_breast_cancer

from modelshield.assess.results import AssessmentResult
from modelshield.attacks.privacy.metrics import roc_summary
from modelshield.core.errors import InputError
from modelshield.ingest.pipeline import IngestConfig, ingest
from modelshield.integrity.signing import sign_model
from modelshield.integrity.signing.keys import generate_key_pair
from modelshield.threat import analyse, builtin_rules, demo_text, parse_system
from modelshield.threat.findings import Decision, Status, judge_evidence


def _demo() -> dict[str, Any]:
    return yaml.safe_load(demo_text())


def _findings(data: dict[str, Any], base: Path, decisions: dict[str, Any] | None = None) -> dict[str, Any]:
    system = parse_system(data)
    decided = {fid: Decision.model_validate(d) for fid, d in (decisions or {}).items()}
    report = analyse(system, [builtin_rules()], decided, judge_evidence(system, base))
    return {f"{f.rule}@{f.element}": f for f in report.findings}


def _assess_report(path: Path, verdict: str, robust: float) -> None:
    result = AssessmentResult(
        version="0",
        created=datetime.datetime.now(datetime.UTC).isoformat(),
        model={"path": "m.safetensors"},
        data={"samples": 512},
        clean_accuracy=0.97,
        gating={"eps": 0.03, "norm": "linf", "attack": "apgd-ce", "robust_accuracy": robust, "fail_under": 0.5},
        verdict=verdict,
        passed=verdict == "PASSED",
    )
    path.write_text(result.model_dump_json(indent=2))


def test_failing_assess_evidence_reopens_evasion_whatever_was_claimed_or_recorded(tmp_path: Path) -> None:
    data = _demo()
    api = next(e for e in data["elements"] if e["id"] == "scoring_api")
    api["robustness_assessed"] = True  # the claim
    assert "ML-EVASION@scoring_api" not in _findings(data, tmp_path)
    data["evidence"] = [{"kind": "assess", "element": "scoring_api", "path": "report.json"}]
    _assess_report(tmp_path / "report.json", "FAILED", 0.12)
    found = _findings(data, tmp_path)
    evasion = found["ML-EVASION@scoring_api"]
    assert evasion.status is Status.open and not evasion.evidence[0].passed
    assert "12.0%" in evasion.evidence[0].summary and evasion.evidence[0].digest.startswith("sha256:")
    # a decision recorded as mitigated does not survive failing evidence
    found = _findings(data, tmp_path, {evasion.id: {"status": "mitigated", "note": "we hardened it"}})
    assert found["ML-EVASION@scoring_api"].status is Status.open
    assert "recorded mitigated" in found["ML-EVASION@scoring_api"].note
    # the gate passes: the claim is backed and the threat is gone; NO GATE is not a pass
    _assess_report(tmp_path / "report.json", "PASSED", 0.71)
    assert "ML-EVASION@scoring_api" not in _findings(data, tmp_path)
    _assess_report(tmp_path / "report.json", "NO GATE", 0.71)
    assert "no gate" in _findings(data, tmp_path)["ML-EVASION@scoring_api"].evidence[0].summary
    # min_robust_accuracy replaces the report's own gate
    data["evidence"][0]["min_robust_accuracy"] = 0.7
    assert "ML-EVASION@scoring_api" not in _findings(data, tmp_path)
    (tmp_path / "report.json").unlink()  # a claim whose proof is missing is not a mitigation
    assert _findings(data, tmp_path)["ML-EVASION@scoring_api"].evidence[0].summary == "result missing"


def _csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_ingest_report_backs_validation_and_a_drifted_delivery_reopens_poisoning(tmp_path: Path) -> None:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = x.iloc[:, :8].assign(label=y)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(frame))
    reference = _csv(tmp_path / "reference.csv", frame.iloc[order[:300]])
    config = IngestConfig(reference=reference, label="label")
    ingest(_csv(tmp_path / "batch.csv", frame.iloc[order[300:]]), tmp_path / "clean", config)
    shifted = frame.iloc[order[300:]].copy()
    shifted.iloc[:, :3] *= 1.6  # a skewed delivery: three features drift
    ingest(_csv(tmp_path / "shifted.csv", shifted), tmp_path / "bad", config)

    data = _demo()
    assert "ML-POISON-VENDOR@labels_upload" not in _findings(data, tmp_path)  # ingestion claims validates_input
    data["evidence"] = [{"kind": "ingest", "element": "ingestion", "path": "clean/report.json"}]
    found = _findings(data, tmp_path)
    assert "ML-POISON-VENDOR@labels_upload" not in found
    data["evidence"][0]["path"] = "bad/report.json"
    poisoning = _findings(data, tmp_path)["ML-POISON-VENDOR@labels_upload"]
    assert poisoning.status is Status.open and "drift in" in poisoning.evidence[0].summary


def _privacy_json(path: Path, separation: float) -> None:
    rng = np.random.default_rng(1)
    members = rng.normal(separation, 1.0, 400)
    non_members = rng.normal(0.0, 1.0, 400)
    roc = roc_summary(np.r_[members, non_members], np.r_[np.ones(400, bool), np.zeros(400, bool)])
    rows = [{"attack": "lira-offline", **roc.to_dict(), "epsilon_lower_bound": 0.4}]
    path.write_text(json.dumps({"model": "m", "members": 400, "non_members": 400, "attacks": rows}))


def test_privacy_audit_evidence_keeps_membership_open_while_it_leaks(tmp_path: Path) -> None:
    data = _demo()
    data["evidence"] = [{"kind": "privacy", "element": "scoring_api", "path": "audit.json"}]
    _privacy_json(tmp_path / "audit.json", separation=1.5)  # AUC ≈ 0.86
    membership = _findings(data, tmp_path)["ML-MEMBERSHIP@scoring_api"]
    decided = {membership.id: {"status": "mitigated"}}
    found = _findings(data, tmp_path, decided)["ML-MEMBERSHIP@scoring_api"]
    assert found.status is Status.open and "AUC 0.8" in found.evidence[0].summary
    _privacy_json(tmp_path / "audit.json", separation=0.05)  # AUC ≈ 0.5
    found = _findings(data, tmp_path, decided)["ML-MEMBERSHIP@scoring_api"]
    assert found.status is Status.mitigated and found.evidence[0].passed


def test_scan_and_verify_run_on_the_files_themselves(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    save_file({"w": np.ones((4, 4), np.float32)}, str(model / "model.safetensors"))
    private, public = generate_key_pair("ed25519", tmp_path / "signer.pem")
    sign_model(model, private)
    data = _demo()
    registry = next(e for e in data["elements"] if e["kind"] == "model_registry")
    registry["signed_models"] = True
    data["evidence"] = [
        {"kind": "verify", "element": registry["id"], "path": "model", "public_key": public.name},
        {"kind": "scan", "element": "pretrained", "path": "model/model.safetensors"},
    ]
    found = _findings(data, tmp_path)
    assert f"ML-REGISTRY-UNSIGNED@{registry['id']}" not in found
    assert "ML-SUPPLY-UNSCANNED@pretrained" not in found  # the scan backs `scanned`
    (model / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes()[:-1] + b"\x01")
    unsigned = _findings(data, tmp_path)[f"ML-REGISTRY-UNSIGNED@{registry['id']}"]
    assert unsigned.status is Status.open and "signature refused" in unsigned.evidence[0].summary


def test_inversion_severity_follows_returned_output_and_feature_sensitivity(tmp_path: Path) -> None:
    data = _demo()
    api = next(e for e in data["elements"] if e["id"] == "scoring_api")
    api.update(classification="internal", features={"income": "confidential", "age": "internal"})
    inversion = _findings(data, tmp_path)["ML-INVERSION@scoring_api"]
    assert inversion.severity.value == "high" and "confidential" in inversion.severity_basis
    api["features"]["diagnosis"] = "restricted"
    assert _findings(data, tmp_path)["ML-INVERSION@scoring_api"].severity.value == "critical"
    api["returns"] = "labels"
    assert _findings(data, tmp_path)["ML-INVERSION@scoring_api"].severity.value == "medium"
    api["features"] = {"age": "internal"}
    assert "ML-INVERSION@scoring_api" not in _findings(data, tmp_path)


def test_bad_evidence_entries_are_one_line_errors(tmp_path: Path) -> None:
    data = _demo()
    data["evidence"] = [{"kind": "assess", "element": "nowhere", "path": "r.json"}]
    with pytest.raises(InputError, match="missing element or flow 'nowhere'"):
        parse_system(data)
    data["evidence"] = [{"kind": "verify", "element": "registry", "path": "model"}]
    with pytest.raises(InputError, match="needs public_key"):
        parse_system(data)
    data["evidence"] = [{"kind": "assess", "element": "scoring_api", "path": "r.json"}]
    (tmp_path / "r.json").write_text('{"not": "an assessment"}')
    with pytest.raises(InputError, match="not an assess report"):
        _findings(data, tmp_path)


def test_cli_reads_evidence_beside_the_system_and_gates_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _demo()
    next(e for e in data["elements"] if e["id"] == "scoring_api")["robustness_assessed"] = True
    data["evidence"] = [{"kind": "assess", "element": "scoring_api", "path": "reports/report.json"}]
    (tmp_path / "reports").mkdir()
    _assess_report(tmp_path / "reports" / "report.json", "FAILED", 0.1)
    system = tmp_path / "system.yaml"
    system.write_text(yaml.safe_dump(data))
    code, out, err = run(["threat", "check", str(system), "--format", "json", "--fail-on", "high"], monkeypatch, capsys)
    assert code == 1, err  # the reopened evasion threat is high: the gate fails
    doc = json.loads(out)
    evasion = next(f for f in doc["findings"] if f["rule"] == "ML-EVASION")
    assert evasion["evidence"][0]["passed"] is False and doc["evidence"][0]["kind"] == "assess"
    (tmp_path / "reports" / "report.json").write_text("{")
    code, out, err = run(["threat", "check", str(system)], monkeypatch, capsys)
    assert code == 2 and "not a JSON file" in err and "Traceback" not in err
