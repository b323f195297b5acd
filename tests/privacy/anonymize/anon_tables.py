"""Tables for the anonymisation tests: the vendored UCI Adult sample and a generated register of people."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[3]
ADULT = ROOT / "tests" / "data" / "adult" / "adult_sample.csv"
ADULT_QI = ["age", "sex", "race", "education", "marital-status"]

EDUCATION_YAML = """\
age: {type: interval, widths: [5, 10, 20, 40]}
education:
  "*":
    Higher:
      Graduate: [Masters, Doctorate, Prof-school]
      Undergraduate: [Bachelors, Assoc-acdm, Assoc-voc, Some-college]
    School:
      Secondary: [HS-grad, 12th, 11th, 10th, 9th]
      Primary: [7th-8th, 5th-6th, 1st-4th, Preschool]
"""


@functools.cache
def _adult() -> pd.DataFrame:
    frame = pd.read_csv(ADULT)
    frame.insert(0, "rowid", np.arange(len(frame)))
    return frame


def adult_table() -> pd.DataFrame:
    """1,500 census rows (CC BY 4.0, Becker & Kohavi 1996; tests/data/adult/README.md), with a row id."""
    return _adult().copy()


def people(n: int, seed: int = 0) -> pd.DataFrame:
    """A register of ``n`` people: birth year, ZIP code, sex (quasi-identifiers), a diagnosis, an id.

    ZIP codes and birth years are spread wide enough that most people are unique on the three, the
    situation Sweeney found in the US census."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "person": [f"p{i:06d}" for i in range(n)],
            "birth_year": rng.integers(1930, 2006, n),
            "zip": [f"{z:05d}" for z in rng.choice(rng.integers(10000, 99999, 300), n)],
            "sex": rng.choice(["F", "M"], n),
            "diagnosis": rng.choice(
                ["flu", "asthma", "diabetes", "hypertension", "migraine"], n, p=[0.4, 0.2, 0.15, 0.15, 0.1]
            ),
            "cost": rng.integers(100, 5000, n),
        }
    )
