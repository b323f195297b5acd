"""Synthesis on a table the way users have them: identifiers, free text, NaNs, datetimes, categoricals.

A domain inferred from the private table lists the values the table holds; for an identifier or a free-text
column that list is the private data itself, and rare values drawn from it were copied into synthetic rows
verbatim (real e-mail addresses and notes). Such columns must be refused by name.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from modelshield.core.errors import InputError
from modelshield.privacy.synth import infer_domain, synthesize
from modelshield.privacy.synth.domain import Categorical, Domain


def _patients(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "sex": pd.Categorical(rng.choice(["F", "M", "X"], rows, p=[0.49, 0.49, 0.02])),
            "diagnosis": pd.Categorical(
                np.array(["flu", "asthma", "diabetes", None], dtype=object)[rng.integers(0, 4, rows)]
            ),
            "weight": rng.normal(75, 12, rows),
            "visit": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 12, rows) * 30, unit="D"),
            "email": [f"user{i}@example.com" for i in range(rows)],
            "note": [
                f"patient {i} reports {w}"
                for i, w in zip(rng.integers(0, 10**6, rows), rng.choice(["pain", "cough"], rows), strict=True)
            ],
            "income": np.where(rng.random(rows) < 0.05, np.nan, rng.lognormal(10, 1, rows)),
        }
    )


@pytest.mark.parametrize("column", ["email", "note"])
def test_identifier_and_free_text_columns_are_refused_by_name(column: str) -> None:
    frame = _patients(3000)[["age", "sex", column]]
    with pytest.raises(InputError, match=column):
        synthesize(frame, epsilon=1.0, seed=0)


def test_numeric_column_with_missing_values_is_refused_not_listed() -> None:
    frame = _patients(3000)[["age", "sex", "income"]]
    with pytest.raises(InputError, match="income.*missing"):
        infer_domain(frame)


def test_low_cardinality_categoricals_nans_and_dates_synthesize() -> None:
    frame = _patients(3000)[["age", "sex", "diagnosis", "weight", "visit"]]
    synthetic, report = synthesize(frame, epsilon=3.0, seed=0)
    assert list(synthetic.columns) == list(frame.columns)
    assert set(synthetic["diagnosis"]) <= {"flu", "asthma", "diabetes", ""}
    assert report["privacy"]["epsilon"] <= 3.0


def test_a_large_declared_domain_is_measured_without_dense_pair_tables() -> None:
    """300 000 declared categories per column: a dense pair table would be 720 GB."""
    rows = 2000
    frame = pd.DataFrame({"a": np.arange(rows) % 7, "b": np.arange(rows) % 5})
    big = tuple(str(i) for i in range(300_000))
    synthetic, report = synthesize(frame, epsilon=1e3, domain=Domain((Categorical("a", big), Categorical("b", big))))
    assert len(synthetic) > 0 and 0 <= report["shift"]["mean_2way_tvd"] <= 1


@pytest.mark.slow
def test_a_million_rows_synthesize_in_minutes() -> None:
    frame = _patients(1_000_000)[["age", "sex", "diagnosis", "weight", "visit"]]
    start = time.perf_counter()
    synthetic, _ = synthesize(frame, epsilon=1.0, seed=0)
    assert len(synthetic) == pytest.approx(1_000_000, rel=0.01)
    assert time.perf_counter() - start < 300
