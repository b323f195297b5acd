"""MST synthetic data: marginals kept at a large ε, a dependent pair kept, both lost at a tiny ε; the budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from synth_tables import DOMAIN_YAML, dependent_table

from modelshield.core.errors import InputError
from modelshield.privacy.synth import MSTSynthesizer, distribution_shift, infer_domain, load_domain, synthesize

if TYPE_CHECKING:
    from modelshield.privacy.synth import Domain


@pytest.fixture(scope="module")
def domain(tmp_path_factory: pytest.TempPathFactory) -> Domain:
    path = tmp_path_factory.mktemp("domain") / "domain.yaml"
    path.write_text(DOMAIN_YAML, encoding="utf-8")
    return load_domain(path)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return dependent_table()


def _agreement(frame: pd.DataFrame) -> float:
    return float((frame["colour"] == frame["shade"]).mean())


def test_large_epsilon_keeps_marginals_and_the_dependent_pair(table: pd.DataFrame, domain: Domain) -> None:
    model = MSTSynthesizer(10.0, seed=0).fit(table, domain)
    synthetic = model.sample()
    assert abs(len(synthetic) - len(table)) < 20  # the noisy row count
    shift = distribution_shift(table, synthetic, domain, [(0, 1), (2, 3)])
    assert max(c["tvd"] for c in shift["columns"].values()) < 0.04
    assert shift["columns"]["weight"]["wasserstein_over_range"] < 0.02
    assert (0, 1) in model.edges_ and (2, 3) in model.edges_  # the two dependencies are the tree's edges
    assert shift["pairs"]["colour × shade"] < 0.05
    assert abs(_agreement(synthetic) - _agreement(table)) < 0.03
    means = synthetic.groupby("size")["weight"].mean()
    assert means["S"] < means["M"] < means["L"]


def test_tiny_epsilon_loses_the_pair(table: pd.DataFrame, domain: Domain) -> None:
    shifts, agreements = [], []
    for seed in range(3):
        synthetic = MSTSynthesizer(0.02, seed=seed).fit(table, domain).sample(len(table))
        shifts.append(distribution_shift(table, synthetic, domain, [(0, 1)])["pairs"]["colour × shade"])
        agreements.append(_agreement(synthetic))
    assert np.mean(shifts) > 0.15
    assert np.mean(agreements) < _agreement(table) - 0.15


def test_budget_parts_add_up_to_the_target(table: pd.DataFrame, domain: Domain) -> None:
    _, report = synthesize(table, epsilon=1.0, delta=1e-7, domain=domain, seed=0)
    privacy = report["privacy"]
    assert [p["releases"] for p in privacy["parts"]] == [4, 3, 3]
    assert sum(p["rho"] for p in privacy["parts"]) == pytest.approx(privacy["rho_total"], rel=1e-12)
    assert privacy["epsilon"] == pytest.approx(1.0, rel=1e-4) and privacy["epsilon"] <= 1.0
    assert report["domain_inferred_from_data"] == [] and "warning" not in report


def test_breast_cancer_end_to_end_with_tstr() -> None:
    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    synthetic, report = synthesize(frame, epsilon=10.0, label="target", seed=0)
    assert list(synthetic.columns) == list(frame.columns)
    utility = report["utility"]
    assert utility["train_real_test_real"] > 0.9
    assert utility["train_synthetic_test_real"] > utility["majority_class"] + 0.15
    assert len(report["tree"]) == frame.shape[1] - 1
    assert "target" in report["warning"]  # the domain came from the data and the report says so


def test_values_outside_a_declared_domain_are_refused(table: pd.DataFrame, domain: Domain) -> None:
    bad = table.assign(colour=table["colour"].replace({"red": "purple"}))
    with pytest.raises(InputError, match="'purple'"):
        MSTSynthesizer(1.0).fit(bad, domain)


def test_single_column_spends_everything_on_its_marginal() -> None:
    frame = pd.DataFrame({"x": ["a"] * 300 + ["b"] * 100})
    model = MSTSynthesizer(5.0, seed=0).fit(frame, infer_domain(frame))
    assert model.ledger_ is not None
    assert model.edges_ == [] and [p.name for p in model.ledger_.parts] == ["1-way marginals (Gaussian)"]
    assert (model.sample(4000)["x"] == "a").mean() == pytest.approx(0.75, abs=0.03)
