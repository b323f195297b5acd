"""``modelshield synth``: the contract lines as written, their outputs, and bad input as one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from synth_tables import DOMAIN_YAML, dependent_table

if TYPE_CHECKING:
    from conftest import RunMain


@pytest.fixture
def table_csv(tmp_path: Path) -> Path:
    path = tmp_path / "table.csv"
    dependent_table(rows=2000).to_csv(path, index=False)
    return path


def test_synth_writes_the_table_and_its_report(run_main: RunMain, table_csv: Path, tmp_path: Path) -> None:
    domain = tmp_path / "domain.yaml"
    domain.write_text(DOMAIN_YAML, encoding="utf-8")
    out = tmp_path / "out" / "synth.csv"
    code, stdout, stderr = run_main(
        "synth", str(table_csv), "--epsilon", "3", "--delta", "1e-8", "--rows", "1500", "--domain", str(domain),
        "--label", "size", "--out", str(out), "--seed", "0",
    )  # fmt: skip
    assert code == 0, stderr
    synthetic = pd.read_csv(out)
    assert list(synthetic.columns) == ["colour", "shade", "size", "weight"] and len(synthetic) == 1500
    assert set(synthetic["colour"]) <= {"red", "green", "blue", "grey"}
    assert synthetic["weight"].between(20, 100).all()
    report = json.loads(out.with_suffix(".report.json").read_text(encoding="utf-8"))
    assert report["privacy"]["epsilon"] == pytest.approx(3.0, rel=1e-4) and report["privacy"]["delta"] == 1e-8
    assert report["utility"]["train_synthetic_test_real"] > report["utility"]["majority_class"]
    assert "ε=3," in stdout and "TSTR accuracy" in stdout and stderr == ""


def test_synth_without_a_domain_warns(run_main: RunMain, table_csv: Path, tmp_path: Path) -> None:
    code, _, stderr = run_main("synth", str(table_csv), "--epsilon", "1", "--out", str(tmp_path / "s.csv"))
    assert code == 0
    assert "not covered by the DP guarantee" in stderr


def test_stats_count_histogram_mean_quantile(run_main: RunMain, table_csv: Path) -> None:
    code, stdout, _ = run_main("synth", "stats", str(table_csv), "--epsilon", "1", "--count", "--json")
    assert code == 0
    count = json.loads(stdout)
    assert count["value"] == pytest.approx(2000, abs=8 * count["sigma"]) and count["epsilon"] <= 1.0
    code, stdout, stderr = run_main(
        "synth", "stats", str(table_csv), "--epsilon", "5", "--histogram", "size", "--categories", "S,M,L,XL"
    )
    assert code == 0 and "XL" in stdout and stderr == ""
    code, stdout, _ = run_main(
        "synth", "stats", str(table_csv), "--epsilon", "5", "--mean", "weight", "--bounds", "0,120", "--json"
    )
    assert code == 0 and json.loads(stdout)["value"] == pytest.approx(60, abs=2)
    code, stdout, _ = run_main(
        "synth", "stats", str(table_csv), "--epsilon", "5", "--quantile", "weight", "--q", "0.5", "--bounds", "0,120"
    )
    assert code == 0 and "quantile 0.5" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["synth", "missing.csv", "--epsilon", "1", "--out", "o.csv"], "input not found"),
        (["synth", "{csv}", "--epsilon", "0", "--out", "o.csv"], "ε must be a positive number"),
        (["synth", "{csv}", "--epsilon", "1", "--label", "nope", "--out", "o.csv"], "'nope' is not a column"),
        (["synth", "{csv}", "--epsilon", "1", "--domain", "{bad_domain}", "--out", "o.csv"], "'columns' mapping"),
        (["synth", "stats", "{csv}", "--epsilon", "1"], "exactly one of"),
        (["synth", "stats", "{csv}", "--epsilon", "1", "--mean", "weight"], "needs --bounds"),
        (["synth", "stats", "{csv}", "--epsilon", "1", "--mean", "colour", "--bounds", "0,1"], "must hold numbers"),
        (["synth", "stats", "{csv}", "--epsilon", "1", "--histogram", "size", "--categories", "S,M"], "'L'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    run_main: RunMain, table_csv: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    bad_domain = tmp_path / "bad.yaml"
    bad_domain.write_text("colour: [a, b]\n", encoding="utf-8")
    filled = [a.format(csv=table_csv, bad_domain=bad_domain) for a in args]
    code, _, stderr = run_main(*[a if a != "o.csv" else str(tmp_path / "o.csv") for a in filled])
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1


def test_synth_reads_parquet_as_it_reads_the_csv(run_main: RunMain, table_csv: Path, tmp_path: Path) -> None:
    """The same table as Parquet (as pandas writes it) gives the same synthetic table for the same seed."""
    table_pq = tmp_path / "table.parquet"
    pd.read_csv(table_csv).to_parquet(table_pq, index=False)
    domain = tmp_path / "domain.yaml"
    domain.write_text(DOMAIN_YAML, encoding="utf-8")
    outs = []
    for source in (table_csv, table_pq):
        out = tmp_path / f"{source.suffix[1:]}.csv"
        code, _, stderr = run_main(
            "synth", "data", str(source), "--epsilon", "2", "--domain", str(domain), "--rows", "300",
            "--seed", "3", "--out", str(out),
        )  # fmt: skip
        assert code == 0, stderr
        outs.append(pd.read_csv(out))
    pd.testing.assert_frame_equal(outs[0], outs[1])
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    code, _, stderr = run_main("synth", "data", str(tmp_path / "bad.parquet"), "--epsilon", "1", "--out", "x.csv")
    assert code == 2 and stderr.startswith("error: cannot read") and len(stderr.strip().splitlines()) == 1
