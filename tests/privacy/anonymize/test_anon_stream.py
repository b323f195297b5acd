"""Files are read in chunks: a table larger than one chunk gets the same classes as the same table in memory."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from anon_tables import people

from modelshield.privacy.anonymize import Criteria, anonymize_file, anonymize_frame, report_path

QI = ["birth_year", "zip", "sex"]


def test_chunked_csv_and_parquet_match_in_memory(tmp_path: Path) -> None:
    register = people(5000)
    source = tmp_path / "register.csv"
    register.to_csv(source, index=False)
    register.to_parquet(tmp_path / "register.parquet", index=False)
    expected, in_memory = anonymize_frame(register, QI, Criteria(5, l=2), sensitive="diagnosis", drop=["person"])
    for name, out in (("register.csv", "released.csv"), ("register.parquet", "released.parquet")):
        report = anonymize_file(
            tmp_path / name,
            tmp_path / out,
            QI,
            Criteria(5, l=2),
            sensitive="diagnosis",
            drop=["person"],
            chunk_rows=700,
        )
        released = pd.read_csv(tmp_path / out, dtype=str) if out.endswith(".csv") else pd.read_parquet(tmp_path / out)
        pd.testing.assert_frame_equal(released.astype(str), expected.astype(str), check_dtype=False)
        assert report["classes"] == in_memory["classes"] and report["achieved"] == in_memory["achieved"]
        assert json.loads(report_path(tmp_path / out).read_text())["output"] == str(tmp_path / out)
    assert expected.groupby(QI).size().min() >= 5 and "person" not in expected.columns
