"""`modelshield assess --certify --detectors`: the runner fills report.json, HTML and Markdown show it."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from modelshield.assess.catalog import DETECTOR_NAMES
from modelshield.cli.main import app
from modelshield.defenses.detection import DETECTORS

if TYPE_CHECKING:
    from conftest import RunMain

SCHEMA = json.loads(files("modelshield.report").joinpath("schemas/report.schema.json").read_text())


def test_detector_names_match_the_implementations() -> None:
    assert set(DETECTOR_NAMES) == set(DETECTORS)


def test_demo_with_certify_and_detectors_fills_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = [
        "assess",
        "--demo",
        "--out",
        str(out),
        "--attacks",
        "fgsm",
        "--eps",
        "0.1",
        "--samples",
        "160",
        "--certify",
        "--n0",
        "20",
        "--n",
        "200",
        "--certify-samples",
        "40",
        "--detectors",
        "--detector-list",
        "feature-squeezing,energy",
        "--steps",
        "5",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    Draft202012Validator(SCHEMA).validate(report)
    certified = report["certified"]
    assert [p["radius"] for p in certified] == sorted(p["radius"] for p in certified) and certified[0]["radius"] == 0
    assert all(p["sigma"] == 0.25 for p in certified)
    assert certified[0]["certified_accuracy"] >= certified[-1]["certified_accuracy"]
    pairs = {(d["name"], d["attack"], d["adaptive"]) for d in report["detectors"]}
    assert ("feature-squeezing", "pgd", False) in pairs and ("energy", "adaptive-pgd", True) in pairs
    assert all("tpr_at_fpr_0.05" in d for d in report["detectors"])
    ids = {f["id"] for f in report["findings"]}
    assert {"MS-CERT-001", "MS-DETECT-001"} <= ids
    html = (out / "report.html").read_text()
    assert 'id="detectors"' in html and "Certified accuracy against L2 radius" in html and "Adaptive AUC" in html
    md = (out / "report.md").read_text()
    assert "| L2 radius | Certified accuracy |" in md and "Adaptive AUC" in md


def test_unknown_detector_is_one_line_error(tmp_path: Path, run_main: RunMain) -> None:
    code, _, err = run_main("assess", "--demo", "--out", str(tmp_path), "--detectors", "--detector-list", "magic")
    assert code == 2
    assert "unknown detectors ['magic']" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
