"""Equation solving recovers scikit-learn logistic regressions from d + 1 probability queries."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, RidgeClassifier

from modelshield.attacks.extraction import EquationSolving, EvalSet
from modelshield.core.adapters import SklearnModel
from modelshield.core.datasets import sklearn_dataset
from modelshield.core.errors import CapabilityError


def _fit(name: str, binary: bool) -> tuple[LogisticRegression, SklearnModel]:
    train = sklearn_dataset(name, "train")
    y = train.y.numpy()
    y = (y == 0).astype(int) if binary else y
    # fitted on float64 like most tabular pipelines: a float32 fit answers with float32-rounded probabilities
    lr = LogisticRegression(max_iter=5000).fit(train.x.numpy().astype(np.float64), y)
    return lr, SklearnModel(lr, input_shape=tuple(train.x.shape[1:]))


@pytest.mark.parametrize(("name", "binary"), [("breast_cancer", True), ("wine", False), ("iris", False)])
def test_extract_equation_recovers_logistic_regression_from_d_plus_1_queries(name: str, binary: bool) -> None:
    lr, victim = _fit(name, binary)
    test = sklearn_dataset(name, "test")
    d = test.x.shape[1]
    result = EquationSolving()(victim, evaluation=EvalSet(test.x, test.y), reference=(lr.coef_, lr.intercept_))
    assert result.queries == d + 1 and result.stop_reason == "complete"
    assert result.details["parameter_error"] < 1e-6
    assert result.fidelity == 1.0
    # the stolen model's probabilities are the victim's, not only its labels
    stolen = result.stolen.predict_proba(test.x).numpy()
    np.testing.assert_allclose(stolen, lr.predict_proba(test.x.numpy()), atol=1e-5)


def test_extract_equation_paper_design_and_least_squares() -> None:
    lr, victim = _fit("wine", binary=False)
    result = EquationSolving(design="random", queries=40, seed=3)(victim, reference=(lr.coef_, lr.intercept_))
    assert result.queries == 40 and result.details["parameter_error"] < 1e-4


def test_extract_equation_needs_probabilities() -> None:
    train = sklearn_dataset("iris", "train")
    victim = SklearnModel(RidgeClassifier().fit(train.x.numpy(), train.y.numpy()), input_shape=(4,))
    with pytest.raises(CapabilityError, match="labels only"):
        EquationSolving()(victim)


def test_extract_equation_budget_below_d_plus_1_is_cut_short() -> None:
    lr, victim = _fit("iris", binary=False)
    result = EquationSolving()(victim, budget=3)
    assert result.queries == 3 and result.stop_reason == "budget" and result.details["solved"] is False
