"""Date quasi-identifiers (ISO dates as pandas writes them) generalise into date ranges, not into ``*``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from modelshield.core.errors import InputError
from modelshield.privacy.anonymize import Criteria, anonymize_frame, encode_frame, file_risk, label_bounds, link

if TYPE_CHECKING:
    from conftest import RunMain

QI = ["age", "admitted", "sex"]


def admissions(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    """Ages, admission dates over five years (pandas' own date dtype) and sex, with a row id."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2019-01-01")
    return pd.DataFrame(
        {
            "rowid": np.arange(n),
            "age": rng.integers(18, 90, n),
            "admitted": start + pd.to_timedelta(rng.integers(0, 5 * 365, n), unit="D"),
            "sex": rng.choice(["F", "M"], n),
            "diagnosis": rng.choice(["flu", "asthma", "fracture", "diabetes"], n),
        }
    )


def _check_release(raw: pd.DataFrame, released: pd.DataFrame, k: int) -> None:
    assert released.groupby(QI).size().min() >= k
    dates = released["admitted"].astype(str)
    assert (dates == "*").mean() < 0.05
    assert dates.str.fullmatch(r"\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}").mean() > 0.5
    kept = raw.set_index("rowid").loc[released["rowid"].astype(int)]
    original = kept["admitted"].to_numpy().astype("datetime64[D]")
    starred = (dates == "*").to_numpy()
    low, high = label_bounds(dates)
    day = original.astype(np.int64)
    assert ((low <= day) & (day <= high))[~starred].all()


@pytest.mark.parametrize("algorithm", ["mondrian", "lattice"])
def test_library_releases_date_ranges_holding_the_dates(algorithm: str) -> None:
    raw = admissions()
    as_csv = raw.astype({"admitted": str})  # "2021-03-14", as read back from a CSV
    released, report = anonymize_frame(as_csv, QI, Criteria(k=5), algorithm=algorithm, max_suppression=0.05)  # type: ignore[arg-type]
    _check_release(raw, released, 5)
    assert report["achieved"]["k"] >= 5
    assert report["risk_after"]["prosecutor_highest"] <= 0.2 < report["risk_before"]["prosecutor_highest"]


def test_encoding_is_an_ordinal_day_scale() -> None:
    frame = pd.DataFrame({"d": ["2021-03-14", "1970-01-02", "2020-02-29"], "s": ["a", "b", "c"]})
    enc = encode_frame(frame, ["d", "s"])
    assert enc.numeric == [True, False] and enc.dates == [True, False]
    assert enc.x[:, 0].tolist() == [18700.0, 1.0, 18321.0]


@pytest.mark.parametrize(
    "values",
    [
        ["2021-03-14", "2021-03-15", "not known"],  # dates mixed with free text
        ["2021-03-14", "2021-02-30", "2021-03-16"],  # not a real date
        ["2021-03-14", "", "2021-03-16"],  # a missing value
        ["2021-03-14 10:00:00", "2021-03-15 00:00:00", "2021-03-16 00:00:00"],  # times
    ],
)
def test_other_columns_stay_categorical(values: list[str]) -> None:
    enc = encode_frame(pd.DataFrame({"d": values * 4}), ["d"])
    assert enc.numeric == [False] and enc.dates == [False]
    released, _ = anonymize_frame(pd.DataFrame({"d": values * 4}), ["d"], Criteria(k=4))
    assert set(released["d"]) == set(values)  # each value already occurs four times: kept as it is


def test_a_later_chunk_that_is_not_a_date_is_named(tmp_path: Path) -> None:
    frame = pd.DataFrame({"d": ["2021-03-14"] * 5 + ["soon"], "s": list("abcdef")})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    from modelshield.privacy.anonymize import encode, read_chunks

    with pytest.raises(InputError, match="'soon' near row 6"):
        encode(read_chunks(path, ["d"], chunk_rows=5), ["d"])


def test_linkage_and_risk_read_date_ranges(tmp_path: Path) -> None:
    raw = admissions(1500)
    released, _ = anonymize_frame(raw.astype({"admitted": str}), QI, Criteria(k=5))
    aux = raw.astype({"admitted": str})
    result = link(released, aux, QI, truth="rowid")
    assert result.matched == 1.0  # every record falls in the range of its own class
    assert result.mean_candidates >= 5 and result.reidentified == 0.0
    exact = link(aux, aux, QI, truth="rowid")
    assert exact.reidentified > 0.5 and exact.correct == exact.reidentified
    path = tmp_path / "released.csv"
    released.to_csv(path, index=False)
    assert file_risk(path, QI).prosecutor_highest <= 0.2


def test_cli_run_on_parquet_and_csv_dates(run_main: RunMain, tmp_path: Path) -> None:
    raw = admissions()
    for name in ("adm.csv", "adm.parquet"):
        source = tmp_path / name
        if name.endswith(".csv"):
            raw.to_csv(source, index=False)
        else:
            raw.assign(admitted=raw["admitted"].dt.date).to_parquet(source)  # a Parquet date32 column
        out = tmp_path / f"released-{name}"
        code, _, stderr = run_main(
            "anonymize", "run", str(source), "--quasi-identifiers", ",".join(QI), "--k", "5", "--out", str(out)
        )
        assert code == 0, stderr
        released = pd.read_csv(out, dtype=str) if name.endswith(".csv") else pd.read_parquet(out).astype(str)
        _check_release(raw, released, 5)
        report = json.loads(out.with_name(out.stem + ".report.json").read_text())
        assert report["achieved"]["k"] >= 5


def test_bucketed_linkage_counts_what_the_plain_join_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelshield.privacy.anonymize import linkage

    raw = admissions(2000, seed=3).astype({"admitted": str})
    released, _ = anonymize_frame(raw, QI, Criteria(k=4))
    released.loc[::7, "admitted"] = "*"  # unbounded ranges reach every bucket
    aux = pd.concat([raw, raw.assign(age=raw["age"] + 200)], ignore_index=True)  # half match nothing
    bucketed = link(released, aux, QI, truth="rowid")
    assert linkage._Buckets.best({"admitted": np.arange(10.0)}, {"admitted": (np.zeros(3), np.ones(3))}) is not None
    monkeypatch.setattr(linkage._Buckets, "best", classmethod(lambda cls, values, bounds: None))
    plain = link(released, aux, QI, truth="rowid")
    assert bucketed == plain and bucketed.matched == 0.5 and bucketed.mean_candidates > 4
