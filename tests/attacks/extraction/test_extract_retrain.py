"""Knockoff Nets and Jacobian augmentation steal a digits classifier within a budget, from probabilities or labels.

Thresholds measured on this victim (scikit-learn logistic regression, 96.9% test accuracy): JBDA from 10
seed digits per class reaches 0.95 fidelity at 500 queries; Knockoff on natural-image patches, a surrogate
with no digit in it, 0.82 (random) and 0.83 (adaptive) at 1,000.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, RidgeClassifier

from modelshield.attacks.extraction import EvalSet, JacobianAugmentation, KnockoffNets, natural_patches
from modelshield.core.adapters import SklearnModel
from modelshield.core.datasets import Dataset, sklearn_dataset


@pytest.fixture(scope="module")
def digits_split() -> tuple[Dataset, Dataset]:
    return sklearn_dataset("digits", "train"), sklearn_dataset("digits", "test")


def _victim(train: Dataset, estimator: object) -> SklearnModel:
    estimator.fit(train.x.reshape(len(train), -1).numpy().astype(np.float64), train.y.numpy())  # type: ignore[attr-defined]
    return SklearnModel(estimator, input_shape=(1, 8, 8))


def _seed_set(train: Dataset, per_class: int = 10) -> torch.Tensor:
    return torch.cat([train.x[train.y == c][:per_class] for c in range(10)])


def test_extract_jacobian_reaches_090_fidelity_in_500_queries(digits_split: tuple[Dataset, Dataset]) -> None:
    train, test = digits_split
    victim = _victim(train, LogisticRegression(max_iter=1000))
    seen: list[tuple[int, int]] = []
    attack = JacobianAugmentation(_seed_set(train), iterations=4, kappa=100, epochs=10)
    result = attack(victim, budget=500, evaluation=EvalSet(test.x, test.y), on_query=lambda q, b: seen.append((q, b)))
    assert result.queries == 500 and result.stop_reason == "budget"
    assert result.fidelity is not None and result.fidelity >= 0.9
    assert result.queries_to(0.9) is not None and result.queries_to(0.9) <= 500  # type: ignore[operator]
    assert [q for q, _ in seen] == sorted(q for q, _ in seen) and seen[-1] == (500, 500)
    assert [p.queries for p in result.curve] == [100, 200, 400, 500]  # seed set, doubled, doubled, reservoir cut
    assert result.details["soft_labels"] is True


def test_extract_jacobian_from_labels_only(digits_split: tuple[Dataset, Dataset]) -> None:
    train, test = digits_split
    victim = _victim(train, RidgeClassifier())
    assert not victim.has_scores
    result = JacobianAugmentation(_seed_set(train), iterations=4, kappa=100, epochs=10)(
        victim, budget=500, evaluation=EvalSet(test.x, test.y)
    )
    assert result.details["soft_labels"] is False and result.fidelity is not None and result.fidelity >= 0.8


@pytest.mark.parametrize("strategy", ["random", pytest.param("adaptive", marks=pytest.mark.slow)])
def test_extract_knockoff_on_natural_patches(digits_split: tuple[Dataset, Dataset], strategy: str) -> None:
    train, test = digits_split
    victim = _victim(train, LogisticRegression(max_iter=1000))
    pool, regions = natural_patches(1000, (1, 8, 8), seed=0)
    attack = KnockoffNets(pool, surrogate_labels=regions, strategy=strategy, rounds=3, epochs=10)  # type: ignore[arg-type]
    result = attack(victim, budget=1000, evaluation=EvalSet(test.x, test.y), record=True)
    assert result.queries == 1000 and result.stop_reason == "budget"
    assert result.fidelity is not None and result.fidelity >= 0.7
    fidelities = [p.fidelity for p in result.curve]
    assert fidelities[-1] > fidelities[0]  # more queries, a better copy
    if strategy == "adaptive":
        arms = np.asarray(result.details["arm_probabilities"])
        assert arms.max() > 1.5 / len(arms)  # the bandit learnt to prefer some regions
