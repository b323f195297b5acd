"""``modelshield anonymize``: the contract line as written, its report, ``risk`` and ``link``, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from anon_tables import ADULT_QI, EDUCATION_YAML, adult_table

if TYPE_CHECKING:
    from conftest import RunMain

QI = ",".join(ADULT_QI)


@pytest.fixture
def adult() -> pd.DataFrame:
    return adult_table()


@pytest.fixture
def adult_csv(adult: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "adult.csv"
    adult.to_csv(path, index=False)
    return path


def test_contract_line_writes_the_release_and_its_report(run_main: RunMain, adult_csv: Path, tmp_path: Path) -> None:
    hierarchies = tmp_path / "h.yaml"
    hierarchies.write_text(EDUCATION_YAML, encoding="utf-8")
    out = tmp_path / "released.csv"
    code, stdout, stderr = run_main(
        "anonymize", str(adult_csv), "--quasi-identifiers", QI, "--sensitive", "income", "--k", "5", "--l", "2",
        "--t", "0.3", "--hierarchies", str(hierarchies), "--max-suppression", "0.02", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    released = pd.read_csv(out, dtype=str)
    assert list(released.columns) == list(pd.read_csv(adult_csv, nrows=0).columns)
    assert released.groupby(ADULT_QI).size().min() >= 5
    report = json.loads((tmp_path / "released.report.json").read_text())
    assert report["achieved"]["k"] >= 5 and report["achieved"]["l"] >= 2 and report["achieved"]["t"] <= 0.3
    assert report["suppressed_rows"] == 0 and report["requested"] == {"k": 5, "l": 2, "t": 0.3}
    assert report["risk_before"]["sample_uniques"] > report["risk_after"]["sample_uniques"] == 0
    assert "achieved k=" in stdout and "released.report.json" in stdout


def test_lattice_suppression_and_dropped_identifier(run_main: RunMain, adult_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "global.csv"
    code, _, stderr = run_main(
        "anonymize", "run", str(adult_csv), "-q", "age,sex,race", "--k", "10", "--algorithm", "lattice",
        "--max-suppression", "0.05", "--drop", "rowid", "--out", str(out), "--format", "json",
    )  # fmt: skip
    assert code == 0, stderr
    released = pd.read_csv(out, dtype=str)
    report = json.loads((tmp_path / "global.report.json").read_text())
    assert "rowid" not in released.columns
    assert len(released) == 1500 - report["suppressed_rows"] and report["suppressed_rows"] <= 75
    assert released.groupby(["age", "sex", "race"]).size().min() >= 10


def test_risk_and_link(run_main: RunMain, adult_csv: Path, tmp_path: Path) -> None:
    code, stdout, _ = run_main("anonymize", "risk", str(adult_csv), "--quasi-identifiers", QI, "--format", "json")
    assert code == 0 and json.loads(stdout)["sample_uniques"] > 0.3
    code, stdout, _ = run_main("anonymize", "risk", str(adult_csv), "-q", QI, "--population", "32000000")
    assert code == 0 and "journalist risk, highest" in stdout
    code, stdout, _ = run_main("anonymize", "link", str(adult_csv), str(adult_csv), "--on", QI, "--truth", "rowid")
    assert code == 0 and "re-identified correctly" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-q", "age,nope", "--k", "5"], "no column 'nope'"),
        (["-q", "age", "--k", "0"], "k must be at least 1"),
        (["-q", "age", "--k", "5", "--l", "2"], "--l and --t need --sensitive"),
        (["-q", "age", "--k", "5", "--hierarchies", "MISSING.yaml"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    run_main: RunMain, adult_csv: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    code, _, stderr = run_main("anonymize", str(adult_csv), *args, "--out", str(tmp_path / "o.csv"))
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.csv").exists()


def test_missing_input_and_link_column(run_main: RunMain, adult_csv: Path, tmp_path: Path) -> None:
    code, _, stderr = run_main("anonymize", str(tmp_path / "none.csv"), "-q", "age", "--k", "5", "--out", "x.csv")
    assert code == 2 and "does not exist" in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = run_main("anonymize", "link", str(adult_csv), str(adult_csv), "--on", "age,zip")
    assert code == 2 and "no column 'zip'" in stderr and len(stderr.strip().splitlines()) == 1


def test_group_help_and_a_bad_suppression_limit(run_main: RunMain, adult_csv: Path, tmp_path: Path) -> None:
    code, stdout, _ = run_main("anonymize", "--help")
    assert code == 0 and all(word in stdout for word in ("run", "risk", "link"))
    code, _, stderr = run_main(
        "anonymize", str(adult_csv), "-q", "age,sex", "--k", "5", "--algorithm", "lattice",
        "--max-suppression", "1.5", "--out", str(tmp_path / "o.csv"),
    )  # fmt: skip
    assert code == 2 and "suppression limit must lie in [0, 1)" in stderr and len(stderr.strip().splitlines()) == 1
