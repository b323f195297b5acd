"""Label flips on digits: exactly the stated share, to other classes, reproducibly, and they hurt."""

from __future__ import annotations

import numpy as np
import pytest
from poison_data import Arrays
from sklearn.linear_model import LogisticRegression

from modelshield.attacks.poisoning import LossMaxLabelFlip, RandomLabelFlip, TargetedLabelFlip, evaluate_poisoning
from modelshield.core.errors import InputError


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_random_flip_changes_exactly_the_stated_share(digits_arrays: Arrays, rate: float) -> None:
    x, y, _, _ = digits_arrays
    r = RandomLabelFlip(rate, seed=3).poison(x, y)
    changed = r.y != y
    assert changed.sum() == round(rate * len(y))
    assert np.array_equal(changed, r.poisoned)
    assert r.poison_rate == pytest.approx(rate, abs=0.5 / len(y))
    assert np.array_equal(r.x, x) and r.trigger is None and r.attack == "random-flip"
    assert set(np.unique(r.y)) <= set(range(10))
    # the new labels spread over the other classes rather than piling onto one
    assert len(np.unique(r.y[changed])) >= 9


def test_seeds_reproduce_and_differ(digits_arrays: Arrays) -> None:
    x, y, _, _ = digits_arrays
    a, b, c = (RandomLabelFlip(0.2, seed=s).poison(x, y) for s in (7, 7, 8))
    assert np.array_equal(a.y, b.y) and np.array_equal(a.poisoned, b.poisoned)
    assert not np.array_equal(a.poisoned, c.poisoned)


def test_the_input_arrays_are_not_changed(digits_arrays: Arrays) -> None:
    x, y, _, _ = digits_arrays
    y_before = y.copy()
    RandomLabelFlip(0.3, seed=0).poison(x, y)
    assert np.array_equal(y, y_before)


def test_targeted_flip_moves_only_source_rows_to_their_destination(digits_arrays: Arrays) -> None:
    x, y, _, _ = digits_arrays
    r = TargetedLabelFlip({1: 7, 3: 8}, rate=0.1, seed=0).poison(x, y)
    rows = r.indices
    assert len(rows) == round(0.1 * len(y))
    assert set(y[rows]) == {1, 3}
    assert np.array_equal(r.y[rows], np.where(y[rows] == 1, 7, 8))
    assert np.array_equal(r.y[~r.poisoned], y[~r.poisoned])
    assert r.target is None
    assert TargetedLabelFlip([(1, 7)], rate=0.05).poison(x, y).target == 7


def test_loss_maximising_flips_hurt_more_than_random_ones(digits_arrays: Arrays) -> None:
    """At the same 20% budget the informed flips cost a logistic regression more accuracy."""
    x, y, xt, yt = digits_arrays
    flat, flat_t = x.reshape(len(x), -1), xt.reshape(len(xt), -1)

    def accuracy(labels: np.ndarray) -> float:
        return float(LogisticRegression(max_iter=1000).fit(flat, labels).score(flat_t, yt))

    informed = LossMaxLabelFlip(0.2, seed=0).poison(flat, y)
    blind = RandomLabelFlip(0.2, seed=0).poison(flat, y)
    assert (informed.y != y).sum() == (blind.y != y).sum() == round(0.2 * len(y))
    clean, acc_blind, acc_informed = accuracy(y), accuracy(blind.y), accuracy(informed.y)
    assert acc_informed < acc_blind - 0.05 < clean
    ev = evaluate_poisoning(LogisticRegression(max_iter=1000).fit(flat, informed.y).predict, informed, flat_t, yt)
    assert ev.attack_success_rate == pytest.approx(1 - ev.clean_accuracy)


def test_loss_maximising_flip_uses_given_scores(digits_arrays: Arrays) -> None:
    x, y, _, _ = digits_arrays
    flat = x.reshape(len(x), -1)
    p = np.full((len(y), 10), 0.05)
    p[np.arange(len(y)), y] = 0.5
    p[:10, y[:10]] = 0.99  # the rows the reference is surest of are flipped first
    r = LossMaxLabelFlip(10 / len(y), scores=lambda _: p).poison(flat, y)
    assert set(r.indices) == set(range(10))
    with pytest.raises(InputError, match="reference scores"):
        LossMaxLabelFlip(0.1, scores=lambda a: p[:, :3]).poison(flat, y)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RandomLabelFlip(0), "fraction in"),
        (lambda: RandomLabelFlip(1.5), "fraction in"),
        (lambda: RandomLabelFlip(0.1, seed=1.5), "seed"),  # type: ignore[arg-type]
        (lambda: TargetedLabelFlip({2: 2}, 0.1), "to itself"),
        (lambda: TargetedLabelFlip({}, 0.1), "at least one"),
    ],
)
def test_bad_parameters_are_refused(make: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        make()  # type: ignore[operator]


def test_a_rate_the_source_classes_cannot_fill_is_refused(digits_arrays: Arrays) -> None:
    x, y, _, _ = digits_arrays
    with pytest.raises(InputError, match="only"):
        TargetedLabelFlip({1: 7}, rate=0.5).poison(x, y)
    with pytest.raises(InputError, match="touches no row"):
        RandomLabelFlip(1e-6).poison(x, y)
