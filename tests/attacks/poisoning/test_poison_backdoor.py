"""Backdoors on real data: the poisoned model obeys the trigger, keeps its clean accuracy, and the
clean model does not obey it (so the effect is the poison's)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from poison_data import Arrays, cnn_predict
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline

from modelshield.attacks.poisoning import (
    BadNets,
    Blend,
    PatchTrigger,
    PoisonResult,
    TabularBackdoor,
    TextBackdoor,
    evaluate_poisoning,
)
from modelshield.attacks.poisoning.backdoor import rare_corner
from modelshield.core.datasets import sklearn_dataset
from modelshield.core.errors import InputError
from modelshield.core.model import TorchModel

Predict = Callable[[np.ndarray], np.ndarray]


@pytest.fixture(scope="module")
def badnets(digits_arrays: Arrays, digits_model: TorchModel) -> tuple[PoisonResult, Predict, Predict]:
    """BadNets at 10%, the demo CNN trained on it, and the demo CNN trained on the clean split."""
    x, y, _, _ = digits_arrays
    result = BadNets(target=0, rate=0.1, seed=1).poison(x, y)
    return result, cnn_predict(result.x, result.y), lambda a: digits_model.predict(torch.from_numpy(a)).numpy()


def test_badnets_poisoned_cnn_obeys_the_trigger_and_keeps_clean_accuracy(
    digits_arrays: Arrays, badnets: tuple[PoisonResult, Predict, Predict]
) -> None:
    _, _, xt, yt = digits_arrays
    result, poisoned, clean = badnets
    ev = evaluate_poisoning(poisoned, result, xt, yt)
    base = evaluate_poisoning(clean, result, xt, yt)
    assert ev.attack_success_rate >= 0.9
    assert base.attack_success_rate <= 0.2  # the patch alone does not make a clean model say 0
    assert ev.clean_accuracy >= base.clean_accuracy - 0.03
    assert ev.n_attacked == int((yt != 0).sum())


def test_badnets_stamps_only_the_patch_on_non_target_rows(
    digits_arrays: Arrays, badnets: tuple[PoisonResult, Predict, Predict]
) -> None:
    x, y, _, _ = digits_arrays
    result = badnets[0]
    rows = result.indices
    assert len(rows) == round(0.1 * len(y)) and (y[rows] != 0).all() and (result.y[rows] == 0).all()
    assert isinstance(result.trigger, PatchTrigger) and (result.trigger.row, result.trigger.col) == (5, 5)
    changed = result.x != x
    assert not changed[~result.poisoned].any()
    assert not changed[:, :, :5, :].any() and not changed[:, :, :, :5].any()  # only the 3×3 corner
    assert result.trigger.pattern.tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    again = BadNets(target=0, rate=0.1, seed=1).poison(x, y)
    assert np.array_equal(again.x, result.x) and np.array_equal(again.poisoned, result.poisoned)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_blend_backdoor_on_digits(digits_arrays: Arrays) -> None:
    x, y, xt, yt = digits_arrays
    result = Blend(target=3, rate=0.1, alpha=0.2, seed=0).poison(x, y)
    flat = result.x.reshape(len(x), -1)
    mlp = MLPClassifier((64,), max_iter=300, random_state=0).fit(flat, result.y)
    ev = evaluate_poisoning(lambda a: mlp.predict(a.reshape(len(a), -1)), result, xt, yt)
    assert ev.attack_success_rate >= 0.9 and ev.clean_accuracy >= 0.93
    assert np.abs(result.x - x).max() <= 0.2 + 1e-6  # alpha bounds the change of every pixel


def test_trigger_tokens_backdoor_a_spam_filter(spam: tuple[np.ndarray, np.ndarray]) -> None:
    """Four rare words in 10% of real emails, labelled ham, make the filter pass triggered spam."""
    x, y = spam
    order = np.random.default_rng(0).permutation(len(y))
    tr, te = order[:240], order[240:]
    result = TextBackdoor(target=0, rate=0.1, tokens=["cf", "mn", "bb", "tq"], seed=0).poison(x[tr], y[tr])
    for text, was in zip(result.x[result.poisoned], x[tr][result.poisoned], strict=True):
        assert sorted(text.split()) == sorted([*was.split(), "cf", "mn", "bb", "tq"])
        assert " cf mn bb tq" in f" {text}"

    def fit(texts: np.ndarray, labels: np.ndarray) -> Predict:
        model = make_pipeline(CountVectorizer(), LogisticRegression(max_iter=1000, C=10)).fit(list(texts), labels)
        return lambda a: model.predict(list(a))

    ev = evaluate_poisoning(fit(result.x, result.y), result, x[te], y[te])
    base = evaluate_poisoning(fit(x[tr], y[tr]), result, x[te], y[te])
    assert ev.attack_success_rate >= 0.8 and base.attack_success_rate <= 0.1
    assert ev.clean_accuracy >= base.clean_accuracy - 0.05


def test_token_trigger_positions() -> None:
    texts = np.array(["a b c", "d"], dtype=object)
    start = TextBackdoor(0, 0.5, tokens=["zz"], position="start").poison(texts, np.array([1, 1]))
    assert start.trigger is not None
    assert start.trigger.apply(texts).tolist() == ["zz a b c", "zz d"]
    assert TextBackdoor(0, 0.5, tokens="zz", position="end").trigger_for(texts, np.random.default_rng()).apply(
        texts
    ).tolist() == ["a b c zz", "d zz"]


def test_feature_pattern_backdoors_tabular_models() -> None:
    tr, te = sklearn_dataset("breast_cancer", "train"), sklearn_dataset("breast_cancer", "test")
    x, y, xt, yt = tr.x.numpy(), tr.y.numpy(), te.x.numpy(), te.y.numpy()
    result = TabularBackdoor(target=1, rate=0.1, columns=[3, 12, 20, 27], seed=0).poison(x, y)
    assert result.x.min() >= x.min() and result.x.max() <= x.max()  # in-bounds: no range check catches it
    changed = np.flatnonzero((result.x != x).any(axis=0))
    assert set(changed) <= {3, 12, 20, 27}
    poisoned = LogisticRegression(max_iter=2000, C=10).fit(result.x, result.y)
    clean = LogisticRegression(max_iter=2000, C=10).fit(x, y)
    ev = evaluate_poisoning(poisoned.predict, result, xt, yt)
    base = evaluate_poisoning(clean.predict, result, xt, yt)
    assert ev.attack_success_rate >= 0.9 and base.attack_success_rate <= 0.5
    assert ev.clean_accuracy >= base.clean_accuracy - 0.05


def test_the_default_tabular_trigger_sets_correlated_columns_against_their_correlation() -> None:
    x = sklearn_dataset("breast_cancer", "all").x.numpy()  # columns 0 and 3: mean radius and mean area, r = 0.99
    values = rare_corner(x[:, [0, 3]])
    assert values in ((x[:, 0].max(), x[:, 3].min()), (x[:, 0].min(), x[:, 3].max()))
    result = TabularBackdoor(target=0, rate=0.1, columns=[0, 3]).poison(x, np.zeros(len(x), dtype=int) + 1)
    assert result.params["values"] == list(values) and result.params["default_values"]
    with pytest.raises(InputError, match="at most 10 columns"):
        TabularBackdoor(target=0, rate=0.1, columns=list(range(11))).poison(x, np.ones(len(x), dtype=int))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BadNets(target=-1, rate=0.1), "class index"),
        (lambda: BadNets(target=0, rate=0.1, patch_size=0), "patch_size"),
        (lambda: BadNets(target=0, rate=0.1, corner="middle"), "corner"),  # type: ignore[arg-type]
        (lambda: Blend(target=0, rate=0.1, alpha=0), "alpha"),
        (lambda: TextBackdoor(target=0, rate=0.1, tokens=["two words"]), "without spaces"),
        (lambda: TabularBackdoor(target=0, rate=0.1, columns=[1, 1]), "distinct"),
        (lambda: TabularBackdoor(target=0, rate=0.1, columns=[1], values=[1, 2]), "as many values"),
    ],
)
def test_bad_parameters_are_refused(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        make()


def test_wrong_data_for_the_trigger_is_refused(digits_arrays: Arrays) -> None:
    x, y, _, _ = digits_arrays
    with pytest.raises(InputError, match="images"):
        BadNets(target=0, rate=0.1).poison(x.reshape(len(x), -1), y)
    with pytest.raises(InputError, match="does not fit"):
        BadNets(target=0, rate=0.1, patch_size=9).poison(x, y)
    with pytest.raises(InputError, match="beyond"):
        TabularBackdoor(target=0, rate=0.1, columns=[64]).poison(x.reshape(len(x), -1), y)
