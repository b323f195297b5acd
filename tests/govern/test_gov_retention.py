"""Retention schedules on CSV and Parquet written by pandas: only expired rows go, and enforcing twice is a no-op."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from modelshield.core.errors import InputError
from modelshield.govern.erasure import file_digest
from modelshield.govern.retention import enforce, load_schedule

if TYPE_CHECKING:
    from conftest import RunMain

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _events(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ages = rng.uniform(0, 200, n)  # days
    return pd.DataFrame(
        {
            "record_id": [f"e{seed}-{i}" for i in range(n)],
            "created_at": [(NOW - timedelta(days=float(a))).isoformat() for a in ages],
            "amount": rng.normal(50, 10, n).round(2),
            "email": [f"user{i}@example.test" for i in range(n)],
        }
    )


@pytest.fixture
def schedule(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    _events(300, 1).to_csv(tmp_path / "data/events-a.csv", index=False)
    _events(200, 2).to_csv(tmp_path / "data/events-b.csv", index=False)
    _events(250, 3).to_parquet(tmp_path / "data/logs.parquet", index=False)
    path = tmp_path / "retention.yaml"
    path.write_text(
        "datasets:\n"
        "  - {path: data/events-*.csv, timestamp_column: created_at, keep_days: 90, action: tombstone, "
        "id_column: record_id}\n"
        "  - {path: data/logs.parquet, timestamp_column: created_at, keep_days: 30, action: delete}\n"
    )
    return path


def test_only_expired_rows_go_and_a_second_run_changes_nothing(schedule: Path) -> None:
    base = schedule.parent / "data"
    before = {p.name: (pd.read_csv(p) if p.suffix == ".csv" else pd.read_parquet(p)) for p in base.iterdir()}
    report = enforce(load_schedule(schedule), NOW)
    rows = {Path(d.path).name: d for d in report.datasets}
    for name, frame in before.items():
        keep_days = 30 if name.endswith(".parquet") else 90
        age = NOW - pd.to_datetime(frame["created_at"], utc=True)
        expired = age > timedelta(days=keep_days)
        after = pd.read_csv(base / name) if name.endswith(".csv") else pd.read_parquet(base / name)
        assert rows[name].rows_removed == int(expired.sum()) > 0
        pd.testing.assert_frame_equal(after, frame[~expired.to_numpy()].reset_index(drop=True))
        assert rows[name].new_digest == file_digest(base / name) != rows[name].old_digest
    # tombstone keeps ids and digests only; delete leaves no trace
    stones = [json.loads(x) for x in (base / "events-a.csv.tombstones.jsonl").read_text().splitlines()]
    assert len(stones) == rows["events-a.csv"].rows_removed and not (base / "logs.parquet.tombstones.jsonl").exists()
    assert all("@" not in json.dumps(s) and s["reason"] == "retention" for s in stones)

    digests = {p.name: file_digest(p) for p in base.iterdir()}
    again = enforce(load_schedule(schedule), NOW)
    assert again.rows_removed == 0 and {p.name: file_digest(p) for p in base.iterdir()} == digests
    later = enforce(load_schedule(schedule), NOW + timedelta(days=10))
    assert later.rows_removed > 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("datasets: []", "datasets"),
        ("datasets:\n  - {path: x.csv, timestamp_column: t, keep_days: -1}", "keep_days"),
        ("datasets:\n  - {path: x.csv, timestamp_column: t, keep_days: 3, action: shred}", "action"),
        ("datasets:\n  - {path: x.csv, timestamp_column: t, keep_days: 3, keep: 1}", "unknown key"),
        ("datasets: [", "not valid YAML"),
    ],
)
def test_a_bad_schedule_is_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(InputError, match=message):
        load_schedule(tmp_path / "s.yaml")


def test_unreadable_timestamps_stop_enforcement_before_any_row_goes(schedule: Path) -> None:
    path = schedule.parent / "data/events-b.csv"
    frame = pd.read_csv(path)
    frame.loc[3, "created_at"] = "last tuesday"
    frame.to_csv(path, index=False)
    digest = file_digest(path)
    with pytest.raises(InputError, match="no readable created_at"):
        enforce(load_schedule(schedule), NOW)
    assert file_digest(path) == digest


def test_cli_enforces_a_schedule_and_writes_the_report(run_main: RunMain, schedule: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    code, out, err = run_main(
        "govern", "retention", "enforce", str(schedule), "--now", NOW.isoformat(), "--report", str(report)
    )
    assert code == 0, err
    doc = json.loads(report.read_text())
    assert doc["rows_removed"] > 0 and len(doc["datasets"]) == 3 and "row(s) removed in 3 data set(s)" in out
    code, out, err = run_main("govern", "retention", "enforce", str(schedule), "--now", NOW.isoformat(), "--json")
    assert code == 0 and json.loads(out)["rows_removed"] == 0
    code, _, err = run_main("govern", "retention", "enforce", str(schedule), "--now", "yesterday")
    assert code == 2 and "ISO-8601" in err
