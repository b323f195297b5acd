"""The detector contract and the detection metrics every poisoning benchmark reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelshield.core.errors import InputError
from modelshield.defenses.poisoning import DetectionReport, evaluate_detection


def test_metrics_match_scikit_learn() -> None:
    from sklearn.metrics import f1_score, precision_score, recall_score

    rng = np.random.default_rng(0)
    poisoned = rng.random(500) < 0.1
    flagged = poisoned ^ (rng.random(500) < 0.05)
    r = evaluate_detection(flagged, poisoned, "x")
    assert r.precision == pytest.approx(precision_score(poisoned, flagged))
    assert r.recall == pytest.approx(recall_score(poisoned, flagged))
    assert r.f1 == pytest.approx(f1_score(poisoned, flagged))
    assert r.as_dict()["false_positive_rate"] == pytest.approx((flagged & ~poisoned).sum() / (~poisoned).sum())


def test_metrics_accept_tensors_and_zero_division_is_zero() -> None:
    r = evaluate_detection(torch.zeros(4, dtype=torch.bool), torch.tensor([1, 0, 0, 0]))
    assert (r.precision, r.recall, r.f1) == (0.0, 0.0, 0.0)
    assert r == DetectionReport("", 4, 0, 1, 0)


@pytest.mark.parametrize(
    ("flagged", "poisoned", "words"),
    [([True, False], [True], "2 rows"), ([[True]], [True], "1-D"), ([2, 0], [1, 0], "boolean")],
)
def test_bad_masks_are_refused(flagged: object, poisoned: object, words: str) -> None:
    with pytest.raises(InputError, match=words):
        evaluate_detection(flagged, poisoned)
