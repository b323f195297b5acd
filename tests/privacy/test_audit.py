"""The ε lower bound: exact Clopper–Pearson limits, and bounds that never overstate a mechanism's known ε."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from modelshield.attacks.privacy import LossThreshold
from modelshield.core.datasets import Dataset, sklearn_dataset
from modelshield.core.errors import InputError
from modelshield.core.model import TorchModel
from modelshield.privacy.audit import (
    CanaryAudit,
    audit_model,
    clopper_pearson,
    epsilon_from_counts,
    epsilon_lower_bound,
    insert_canaries,
)


def test_clopper_pearson_matches_the_textbook_interval() -> None:
    # 5 of 20, exact 95% two-sided interval: 0.0866 to 0.4910 (Clopper & Pearson 1934; every statistics table)
    lo, hi = clopper_pearson(5, 20, 0.025)
    assert lo == pytest.approx(0.0866, abs=5e-5)
    assert hi == pytest.approx(0.4910, abs=5e-5)


def test_clopper_pearson_at_the_edges_has_closed_forms() -> None:
    lo, hi = clopper_pearson(0, 100, 0.05)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.05 ** (1 / 100))
    lo, hi = clopper_pearson(100, 100, 0.05)
    assert hi == 1.0 and lo == pytest.approx(0.05 ** (1 / 100))


def test_a_perfect_attack_is_capped_by_the_sample_size() -> None:
    # 1000 members all flagged, 1000 non-members none: the limits are 0.025^(1/1000) and 1 − that
    p = 0.025 ** (1 / 1000)
    assert epsilon_from_counts(1000, 1000, 0, 1000) == pytest.approx(math.log(p / (1 - p)))
    bound = epsilon_lower_bound(np.r_[np.ones(1000), np.zeros(1000)], np.r_[np.ones(1000), np.zeros(1000)])
    assert bound.epsilon == pytest.approx(bound.epsilon_max)
    assert 5.0 < bound.epsilon < 5.6  # Bonferroni over the thresholds costs a little against one fixed rule


def test_scores_unrelated_to_membership_give_no_leak() -> None:
    rng = np.random.default_rng(0)
    bound = epsilon_lower_bound(rng.normal(size=4000), rng.integers(0, 2, size=4000))
    assert bound.epsilon == 0.0


@pytest.mark.parametrize("eps", [0.5, 2.0])
def test_randomised_response_is_approached_from_below(eps: float) -> None:
    """Randomised response is exactly ε-DP: members answer 1 with probability e^ε/(1+e^ε), others 1/(1+e^ε)."""
    rng = np.random.default_rng(1)
    n = 50_000
    p = math.exp(eps) / (1 + math.exp(eps))
    scores = np.r_[rng.random(n) < p, rng.random(n) < 1 - p].astype(float)
    bound = epsilon_lower_bound(scores, np.r_[np.ones(n), np.zeros(n)])
    assert 0.9 * eps < bound.epsilon <= eps
    assert bound.tpr == pytest.approx(p, abs=0.01) and bound.fpr == pytest.approx(1 - p, abs=0.01)


def test_the_bound_overstates_a_known_epsilon_less_often_than_its_confidence_allows() -> None:
    rng = np.random.default_rng(2)
    eps, n, trials = 1.0, 150, 300
    p = math.exp(eps) / (1 + math.exp(eps))
    member = np.r_[np.ones(n), np.zeros(n)]
    over = 0
    for _ in range(trials):
        scores = np.r_[rng.random(n) < p, rng.random(n) < 1 - p].astype(float) + rng.normal(0, 1e-3, 2 * n)
        over += epsilon_lower_bound(scores, member, confidence=0.9).epsilon > eps
    assert over / trials <= 0.1


def test_delta_lowers_the_bound() -> None:
    rng = np.random.default_rng(3)
    scores = np.r_[rng.normal(2, 1, 2000), rng.normal(0, 1, 2000)]
    member = np.r_[np.ones(2000), np.zeros(2000)]
    pure = epsilon_lower_bound(scores, member)
    approx = epsilon_lower_bound(scores, member, delta=0.05)
    assert 0 < approx.epsilon < pure.epsilon


@pytest.mark.parametrize(
    ("scores", "member", "message"),
    [
        ([0.1, 0.2], [1], "differ in length"),
        ([0.1, float("nan")], [1, 0], "NaN"),
        ([0.1, 0.2], [1, 1], "members and non-members"),
        ([0.1, 0.2], [1, 2], "0/1"),
    ],
)
def test_bad_input_is_refused_by_name(scores: list[float], member: list[int], message: str) -> None:
    with pytest.raises(InputError, match=message):
        epsilon_lower_bound(scores, member)


def test_confidence_and_delta_are_checked() -> None:
    with pytest.raises(InputError, match="confidence"):
        epsilon_from_counts(5, 10, 1, 10, confidence=1.0)
    with pytest.raises(InputError, match="delta"):
        epsilon_from_counts(5, 10, 1, 10, delta=-0.1)


@pytest.fixture(scope="module")
def digits_canaries() -> CanaryAudit:
    return insert_canaries(sklearn_dataset("digits", "all"), 300, 10, seed=0)


def _memorise(train: Dataset, steps: int = 250) -> TorchModel:
    """A deliberately overfit MLP: full-batch Adam until it fits every label, canaries included."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(train.x), train.y).backward()
        opt.step()
    return TorchModel(net.eval(), input_shape=(1, 8, 8), num_classes=10, bounds=(0.0, 1.0))


def test_canaries_are_mislabeled_and_half_of_them_trained_on(digits_canaries: CanaryAudit) -> None:
    data = sklearn_dataset("digits", "all")
    audit = digits_canaries
    assert len(audit.canaries) == 300 and 100 < audit.is_member.sum() < 200
    assert len(audit.train) == len(data) - 300 + int(audit.is_member.sum())
    # every canary's label is wrong: its true label is the one of the identical record in the data
    truth = {bytes(row.numpy().tobytes()): int(label) for row, label in zip(data.x, data.y, strict=True)}
    assert all(
        truth[bytes(row.numpy().tobytes())] != int(lab)
        for row, lab in zip(audit.canaries.x, audit.canaries.y, strict=True)
    )
    members = audit.canaries.x[torch.from_numpy(audit.is_member)]
    assert (members[:, None] == audit.train.x[None, -len(members) :]).flatten(2).all(-1).any(1).all()
    again = insert_canaries(data, 300, 10, seed=0)
    assert torch.equal(again.canaries.y, audit.canaries.y) and (again.is_member == audit.is_member).all()


def test_an_overfit_model_gives_away_its_canaries(digits_canaries: CanaryAudit) -> None:
    audit = digits_canaries
    model = _memorise(audit.train)
    assert (model.predict(audit.train.x) == audit.train.y).float().mean() > 0.99
    rows = audit_model(
        model, audit.canaries.x, audit.canaries.y, audit.is_member, [LossThreshold()], role="baseline", delta=1e-5
    )
    assert [(r.attack, r.model, r.epsilon) for r in rows] == [("loss", "baseline", None)]
    assert rows[0].roc.auc > 0.9
    assert rows[0].bound.epsilon > 1.5 and rows[0].bound.epsilon <= rows[0].bound.epsilon_max
    assert not rows[0].contradicts_accountant
