"""ROC summaries agree with scikit-learn and say when a low FPR is below what the data can resolve."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from modelshield.attacks.privacy import roc_summary
from modelshield.core.errors import InputError


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    member = rng.random(500) < 0.4
    scores = np.round(rng.normal(member * 0.7, 1.0), 1)  # rounded: many ties
    s = roc_summary(scores, member)
    assert s.auc == pytest.approx(roc_auc_score(member, scores), abs=1e-12)
    assert (s.n_members, s.n_non_members) == (int(member.sum()), int((~member).sum()))


def test_tpr_at_fpr_is_interpolated_on_the_curve() -> None:
    rng = np.random.default_rng(2)
    member = rng.random(4000) < 0.5
    scores = rng.normal(member * 2.0, 1.0)
    s = roc_summary(scores, member)
    fpr, tpr, _ = roc_curve(member, scores, drop_intermediate=False)
    assert s.tpr_at_fpr_0_01 == pytest.approx(np.interp(0.01, fpr, tpr), abs=1e-12)
    # with ~2000 non-members 0.1 % FPR is 2 false positives: resolved; the binormal truth is ~9 %
    assert s.resolved(0.001) and 0.02 < s.tpr_at_fpr_0_001 < 0.25
    assert s.to_dict()["unresolved_fprs"] == []


def test_few_non_members_flag_low_fpr_as_unresolved() -> None:
    member = np.r_[np.ones(300, bool), np.zeros(200, bool)]
    scores = np.r_[np.linspace(1, 2, 300), np.linspace(0, 1.5, 200)]
    s = roc_summary(scores, member)
    assert s.fpr_resolution == 1 / 200
    assert not s.resolved(0.001) and s.resolved(0.01)
    assert s.to_dict()["unresolved_fprs"] == [0.001]
    # a perfect top of the ranking: members above every non-member give TPR > 0 at FPR 0
    assert s.tpr_at(0.0) == pytest.approx(np.mean(np.linspace(1, 2, 300) > 1.5), abs=1e-2)


@pytest.mark.parametrize(
    ("scores", "member", "words"),
    [
        ([0.1, 0.2], [True, True], "both members and non-members"),
        ([0.1, np.nan], [True, False], "NaN"),
        ([0.1, 0.2, 0.3], [True, False], "3 scores but 2"),
        ([0.1, 0.2], [2, 0], "booleans or 0/1"),
    ],
)
def test_bad_input_is_refused(scores: list[float], member: list[object], words: str) -> None:
    with pytest.raises(InputError, match=words):
        roc_summary(scores, member)
