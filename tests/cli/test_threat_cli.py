"""`modelshield threat` through the real entry point: findings, the CI gate, decisions, the diagram, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from entrypoint import invoke_main as run

from modelshield.threat import demo_text

FIELDS = {"id", "element", "stride", "atlas", "owasp", "severity", "status", "evidence"}


def _atlas_techniques() -> set[str]:
    from importlib import resources

    text = resources.files("modelshield.threat").joinpath("data/atlas/ATLAS.yaml").read_text(encoding="utf-8")
    return {t["id"] for t in yaml.safe_load(text)["matrices"][0]["techniques"]}


def test_demo_json_lists_findings_with_atlas_ids_from_the_release(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["threat", "check", "--demo", "--format", "json"], monkeypatch, capsys)
    assert code == 0, err
    findings = json.loads(out)["findings"]
    assert len(findings) >= 10
    techniques = _atlas_techniques()
    for f in findings:
        assert FIELDS <= set(f)
        assert f["atlas"] == [] or set(f["atlas"]) <= techniques
        assert f["evidence"] == [] and f["status"] == "open"
    assert any(f["owasp"] == ["ML04"] for f in findings)


def test_fail_on_counts_only_open_findings_and_decisions_survive_reruns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    system = tmp_path / "system.yaml"
    system.write_text(demo_text())
    code, out, _ = run(["threat", "check", str(system), "-f", "json", "--fail-on", "critical"], monkeypatch, capsys)
    critical = [f for f in json.loads(out)["findings"] if f["severity"] == "critical"]
    assert code == 1 and len(critical) == 1
    code, out, err = run(
        ["threat", "status", critical[0]["id"], "mitigated", "--system", str(system), "--note", "scanned in CI"],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert (tmp_path / "system.status.yaml").is_file()  # the default place, beside the system
    code, out, _ = run(["threat", "check", str(system), "-f", "json", "--fail-on", "critical"], monkeypatch, capsys)
    report = json.loads(out)
    assert code == 0
    assert {f["id"]: f["status"] for f in report["findings"]}[critical[0]["id"]] == "mitigated"
    assert report["counts"]["mitigated"] == 1
    code, _, _ = run(["threat", "check", str(system), "-f", "json", "--fail-on", "high"], monkeypatch, capsys)
    assert code == 1
    code, _, err = run(
        ["threat", "status", "TM-000000000000", "accepted", "--system", str(system)], monkeypatch, capsys
    )
    assert code == 2 and "no finding 'TM-000000000000'" in err


def test_stale_decisions_are_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    system = tmp_path / "s.yaml"
    system.write_text(demo_text())
    status = tmp_path / "decisions.yaml"
    status.write_text("findings:\n  TM-aaaaaaaaaaaa: {status: accepted, rule: ML-EVASION, element: old_api}\n")
    code, out, _ = run(["threat", "check", str(system), "--status", str(status)], monkeypatch, capsys)
    assert code == 0 and "stale: TM-aaaaaaaaaaaa is recorded as accepted (ML-EVASION on old_api)" in out
    status.write_text("findings:\n  TM-aaaaaaaaaaaa: {status: fixed}\n")
    code, _, err = run(["threat", "check", str(system), "--status", str(status)], monkeypatch, capsys)
    assert code == 2 and "one of: open, accepted, mitigated, false-positive" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("elements: [{id: a, kind: gpu}]\n", "unknown element kind 'gpu'"),
        ("elements: [{id: a, kind: actor}]\nflows: [{id: f, source: a, destination: b}]\n", "missing element 'b'"),
        ("elements: [{id: a, kind: actor}, {id: a, kind: process}]\n", "duplicate id 'a'"),
        ("elements: [{id: a, kind: actor}\n", "line"),
        ("- just a list\n", "a system description is a mapping"),
    ],
)
def test_bad_yaml_is_one_line_and_exit_2(
    text: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    system = tmp_path / "bad.yaml"
    system.write_text(text)
    code, out, err = run(["threat", "check", str(system)], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_reports_are_written_to_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for fmt, marker in (("markdown", "# Threat model"), ("html", "<!doctype html>"), ("sarif", '"version": "2.1.0"')):
        out = tmp_path / f"report.{fmt}"
        code, _, err = run(["threat", "check", "--demo", "-f", fmt, "-o", str(out)], monkeypatch, capsys)
        assert code == 0, err
        assert marker in out.read_text()
    code, _, err = run(["threat", "check", "--demo", "-o", str(tmp_path / "x")], monkeypatch, capsys)
    assert code == 2 and "--out needs a file format" in err


def test_diagram_writes_dot_and_svg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["threat", "diagram", "--demo", "--out", str(tmp_path / "dfd.dot")], monkeypatch, capsys)
    assert code == 2 and "--out names the SVG" in err and not (tmp_path / "dfd.dot").exists()
    out = tmp_path / "dfd.svg"
    code, _, err = run(["threat", "diagram", "--demo", "--out", str(out)], monkeypatch, capsys)
    assert (tmp_path / "dfd.dot").read_text().startswith('digraph "Credit-risk scoring"')
    if shutil.which("dot") is None:
        assert code == 2 and "Graphviz `dot` is not installed" in err
        pytest.skip("Graphviz `dot` is not installed (apt-get install graphviz): only the DOT text was checked")
    assert code == 0, err
    assert "<svg" in out.read_text() and "Scoring API" in out.read_text()


def test_rules_and_example(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["threat", "rules"], monkeypatch, capsys)
    assert code == 0 and "ML-EXTRACTION  high  element  information_disclosure  AML.T0024.002 Extract AI Model" in out
    code, out, _ = run(["threat", "example"], monkeypatch, capsys)
    assert code == 0 and yaml.safe_load(out)["name"] == "Credit-risk scoring"
    code, _, err = run(["threat", "check"], monkeypatch, capsys)
    assert code == 2 and "--demo" in err
