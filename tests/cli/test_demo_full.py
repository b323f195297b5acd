"""The README's demo, whole, as a user runs it: under five minutes on two shared CPU cores (README, "Quick start")."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.slow
def test_full_demo_assessment_is_quick_and_complete(tmp_path: Path) -> None:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "modelshield", "assess", "--demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert {a["attack"] for a in report["attacks"]} == {
        "fgsm",
        "pgd",
        "apgd-ce",
        "apgd-dlr",
        "cw-l2",
        "deepfool",
        "square",
        "hopskipjump",
    }
    assert all(flag["passed"] for flag in report["sanity"]) and report["errors"] == []
    assert report["verdict"] == "NO GATE" and "NO GATE" in (tmp_path / "report.md").read_text().splitlines()[0]
    assert {a["samples"] for a in report["attacks"] if a["attack"] != "hopskipjump"} == {450}
    assert {a["samples"] for a in report["attacks"] if a["attack"] == "hopskipjump"} == {40}
    assert seconds < 300, f"demo took {seconds:.0f} s"
