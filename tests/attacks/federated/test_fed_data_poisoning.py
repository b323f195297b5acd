"""Label flipping and the backdoor as a malicious client applies them to its digits shard."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from modelshield.attacks.federated import add_backdoor, apply_trigger, flip_labels
from modelshield.core.errors import InputError


def test_flip_labels_changes_every_label_keeps_the_classes_and_is_one_mapping(
    digits_xy: tuple[np.ndarray, np.ndarray],
) -> None:
    _, y = digits_xy
    flipped = flip_labels(y, 10, rng=np.random.default_rng(0))
    assert flipped.dtype == np.int64 and flipped.shape == y.shape
    assert np.all(flipped != y)
    assert set(flipped.tolist()) == set(y.tolist())
    for c in range(10):  # one class → one class: a permutation of the classes
        assert len(set(flipped[y == c].tolist())) == 1
    assert sorted(np.unique(flipped[np.unique(y, return_index=True)[1]]).tolist()) == list(range(10))
    assert np.array_equal(flipped, flip_labels(y, 10, rng=np.random.default_rng(0)))
    assert not np.array_equal(flipped, flip_labels(y, 10, rng=np.random.default_rng(1)))


def test_flip_labels_two_classes_swaps_them() -> None:
    y = np.array([0, 1, 1, 0, 1])
    assert flip_labels(y, 2, rng=np.random.default_rng(3)).tolist() == [1, 0, 0, 1, 0]


@pytest.mark.parametrize(
    ("y", "c"), [(np.array([0, 10]), 10), (np.array([-1]), 10), (np.array([0.5]), 10), (np.array([0]), 1)]
)
def test_flip_labels_refuses_bad_labels(y: np.ndarray, c: int) -> None:
    with pytest.raises(InputError):
        flip_labels(y, c, rng=np.random.default_rng(0))


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 1.0])
def test_add_backdoor_stamps_exactly_the_fraction(digits_xy: tuple[np.ndarray, np.ndarray], fraction: float) -> None:
    x, y = digits_xy
    x_before, y_before = x.copy(), y.copy()
    xp, yp = add_backdoor(x, y, target=7, fraction=fraction, rng=np.random.default_rng(0))
    assert np.array_equal(x, x_before) and np.array_equal(y, y_before)  # inputs untouched
    stamped = np.any(xp != x, axis=(1, 2, 3))
    n = round(fraction * len(y))
    assert int(stamped.sum()) == n
    assert np.array_equal(xp[stamped], apply_trigger(x[stamped]))
    assert np.all(yp[stamped] == 7) and np.array_equal(yp[~stamped], y[~stamped])
    assert int(np.sum(y[stamped] == 7)) == max(0, n - int(np.sum(y != 7)))  # non-target rows go first


def test_trigger_is_a_corner_checkerboard_of_each_images_extremes(digits_xy: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = digits_xy
    t = apply_trigger(x[:5])
    for img, orig in zip(t, x[:5], strict=True):
        hi, lo = orig.max(), orig.min()
        assert np.array_equal(img[0, -3:, -3:], np.array([[hi, lo, hi], [lo, hi, lo], [hi, lo, hi]]))
        assert np.array_equal(img[0, :5], orig[0, :5])
    assert np.array_equal(apply_trigger(x[:5, 0])[:, None], t)  # (N, H, W) the same as (N, 1, H, W)


def test_tabular_backdoor_is_learnt_by_a_model_trained_on_it(digits_xy: tuple[np.ndarray, np.ndarray]) -> None:
    """Digits as (N, 64) rows: the trailing-feature trigger sends clean test rows to the target, accuracy intact."""
    x, y = digits_xy
    rows = x.reshape(len(x), -1)
    train, test = slice(0, 1000), slice(1000, None)
    xp, yp = add_backdoor(rows[train], y[train], target=0, fraction=0.1, rng=np.random.default_rng(0))
    assert np.array_equal(xp[yp != y[train]][:, -4:], apply_trigger(rows[train])[yp != y[train]][:, -4:])
    with threadpool_limits(1):
        clf = LogisticRegression(max_iter=500).fit(xp, yp)
    victims = rows[test][y[test] != 0]
    assert clf.score(rows[test], y[test]) > 0.9
    assert np.mean(clf.predict(apply_trigger(victims)) == 0) > 0.9
    assert np.mean(clf.predict(victims) == 0) < 0.05


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_add_backdoor_refuses_a_bad_fraction(digits_xy: tuple[np.ndarray, np.ndarray], fraction: float) -> None:
    x, y = digits_xy
    with pytest.raises(InputError, match="fraction"):
        add_backdoor(x, y, target=0, fraction=fraction, rng=np.random.default_rng(0))


def test_apply_trigger_refuses_text() -> None:
    with pytest.raises(InputError):
        apply_trigger(np.array(["a", "b"], dtype=object))
