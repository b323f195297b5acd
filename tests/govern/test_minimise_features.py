"""Minimisation on real data: noise columns added to breast_cancer are recommended for removal while its
strongest columns are kept, the joint removal is retrained and stays within the threshold, and the UCI Adult
sample's quasi-identifiers, an e-mail column and a record id are flagged with what each earns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelshield.core.errors import InputError
from modelshield.govern.minimise import html, markdown, minimise

ADULT = Path(__file__).resolve().parents[1] / "data" / "adult" / "adult_sample.csv"
STRONG = ["worst radius", "worst concave points"]


def _cancer_with_noise() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame = frame[[*STRONG, "worst texture", "mean smoothness", "target"]].copy()
    rng = np.random.default_rng(0)
    for i in range(4):
        frame[f"noise{i}"] = rng.normal(size=len(frame))
    frame["noise_cat"] = rng.choice(["a", "b", "c"], len(frame))
    return frame


@pytest.mark.parametrize(
    ("method", "model"), [("permutation", "hist-gradient-boosting"), ("drop-column", "logistic-regression")]
)
def test_noise_columns_go_and_the_strong_columns_stay(method: str, model: str) -> None:
    report = minimise(_cancer_with_noise(), "target", model=model, method=method, threads=1)  # type: ignore[arg-type]
    assert report.task == "classification" and report.baseline > 0.9
    removable = set(report.recommended)
    assert {"noise0", "noise1", "noise3"} <= removable, report.features
    assert not removable & set(STRONG)
    by_name = {f.feature: f for f in report.features}
    assert by_name["worst radius"].drop > report.threshold  # permuting/dropping it costs real accuracy
    # the recommendation was retrained without all of its features at once, and stayed within the threshold
    assert report.joint_drop is not None and report.joint_drop < report.threshold and report.within_threshold


def test_adult_personal_data_is_flagged_with_what_it_earns() -> None:
    frame = pd.read_csv(ADULT)
    frame.insert(0, "record", [f"r-{i:05d}" for i in range(len(frame))])
    frame["email"] = [f"person{i}@example.org" for i in range(len(frame))]
    report = minimise(
        frame, "income", model="logistic-regression", quasi_identifiers=["occupation"], repeats=3, folds=2, threads=1
    )
    flags = {f.feature: f.personal_data for f in report.features if f.personal_data}
    assert flags["email"] == "EMAIL" and flags["record"] == "identifier"
    assert {flags[c] for c in ("age", "sex", "race", "marital-status", "native-country", "occupation")} == {
        "quasi-identifier"
    }
    assert "record" in report.recommended and "email" in report.recommended  # they earn nothing on unseen rows
    assert "capital-gain" not in report.recommended  # the single most telling column of Adult
    text = markdown(report)
    assert "Personal data: sex (quasi-identifier) earns" in text and "| email |" in text


def test_html_escapes_column_names_and_bad_input_is_one_error() -> None:
    frame = _cancer_with_noise().rename(columns={"noise0": "<script>x</script>"})
    page = html(minimise(frame, "target", model="logistic-regression", repeats=2, threads=1))
    assert "<script>x" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    with pytest.raises(InputError, match="no target column 'label'"):
        minimise(frame, "label")
    with pytest.raises(InputError, match="does not fit a classification target"):
        minimise(frame, "target", metric="r2")


def test_a_row_number_stored_in_label_order_is_an_identifier_not_the_best_feature() -> None:
    """wine is stored sorted by class: a customer number counting the rows predicts the label perfectly on this
    file and is worth nothing on a new customer — it is flagged and left out, never recommended to keep."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame.insert(0, "customer_id", np.arange(len(frame)) + 100_000)
    frame["visits"] = np.random.default_rng(0).permutation(len(frame))  # unique integers, but not an id
    report = minimise(frame, "target", threads=1)
    by_name = {f.feature: f for f in report.features}
    assert by_name["customer_id"].personal_data == "identifier" and "customer_id" in report.recommended
    assert by_name["visits"].personal_data is None
