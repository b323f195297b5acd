"""Label flips on digits: confident learning (cleanlab) and iterative trimmed loss find them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from modelshield.attacks.poisoning import PoisonResult, RandomLabelFlip
from modelshield.core.errors import InputError
from modelshield.defenses.poisoning import evaluate_detection
from modelshield.defenses.poisoning.labels import ConfidentLearning
from modelshield.defenses.poisoning.robust import TrimmedLoss

from .conftest import batches


@pytest.fixture(scope="module")
def flipped() -> PoisonResult:
    x, y = load_digits(return_X_y=True)
    return RandomLabelFlip(0.2, seed=0).poison(x / 16.0, y)


def test_confident_learning_finds_20_percent_flips(flipped: PoisonResult) -> None:
    cl = ConfidentLearning()
    r = evaluate_detection(cl.fit_predict(flipped.x, flipped.y), flipped.poisoned)
    assert r.f1 >= 0.85  # the issue's target is 0.8; measured 0.91
    # the scores rank flips first: the rows flagged on new data use the same models
    scores = cl.score_samples(flipped.x, flipped.y)
    assert scores[flipped.poisoned].mean() > scores[~flipped.poisoned].mean() + 0.3


def test_confident_learning_streamed_with_cleanlabs_batched_inspector(flipped: PoisonResult) -> None:
    cl = ConfidentLearning(n_classes=10).fit_stream(lambda: batches(flipped.x, flipped.y, 200))
    r = evaluate_detection(cl.label_issues_, flipped.poisoned)
    assert r.f1 >= 0.8  # measured 0.89 (SGD fold models instead of logistic regression)


def test_trimmed_loss_flags_flips_and_trains_without_them(flipped: PoisonResult) -> None:
    itlm = TrimmedLoss(0.2).fit(flipped.x, flipped.y)
    r = evaluate_detection(itlm.predict(flipped.x, flipped.y), flipped.poisoned)
    assert r.f1 >= 0.9
    x, y_true = load_digits(return_X_y=True)
    assert (itlm.model_.predict(x / 16.0) == y_true).mean() >= 0.95
    streamed = TrimmedLoss(0.2, n_classes=10).fit_stream(lambda: batches(flipped.x, flipped.y, 200))
    assert evaluate_detection(streamed.predict(flipped.x, flipped.y), flipped.poisoned).f1 >= 0.85


def test_label_detectors_refuse_what_they_cannot_use(flipped: PoisonResult) -> None:
    with pytest.raises(InputError, match="needs labels"):
        ConfidentLearning().fit(flipped.x)
    with pytest.raises(InputError, match="n_classes"):
        ConfidentLearning().fit_stream(lambda: batches(flipped.x, flipped.y, 200))
    with pytest.raises(InputError, match="partial_fit"):
        from sklearn.linear_model import LogisticRegression

        TrimmedLoss(estimator=LogisticRegression(), n_classes=10).fit_stream(lambda: batches(flipped.x, flipped.y, 500))
    with pytest.raises(InputError, match="fewer than cv"):
        ConfidentLearning().fit(flipped.x[:12], np.arange(12) % 4)
    with pytest.raises(InputError, match="labels have shape"):
        TrimmedLoss().fit(flipped.x, flipped.y[:-1])
    with pytest.raises(InputError, match="makes 7 passes"):
        ConfidentLearning(n_classes=10).partial_fit(flipped.x, flipped.y)
