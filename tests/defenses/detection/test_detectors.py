"""Adversarial-input detectors: the metrics, each algorithm's building block, and detection on digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from modelshield.core.adapters import RemoteModel
from modelshield.core.errors import CapabilityError, InputError
from modelshield.defenses.detection import (
    DETECTORS,
    AdaptivePGD,
    EnergyDetector,
    FeatureSqueezing,
    LIDDetector,
    MahalanobisDetector,
    MaxSoftmaxDetector,
    evaluate_detectors,
    roc_auc,
    tpr_at_fpr,
)
from modelshield.defenses.detection.lid import lid_mle
from modelshield.defenses.detection.squeezing import median_filter, reduce_bit_depth

from .conftest import EPS, Split


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    clean, adv = rng.integers(0, 5, 200).astype(float), rng.integers(2, 8, 150).astype(float)
    labels = np.r_[np.zeros(200), np.ones(150)]
    assert roc_auc(clean, adv) == pytest.approx(roc_auc_score(labels, np.r_[clean, adv]))


def test_tpr_at_fpr_uses_the_clean_quantile() -> None:
    clean = np.arange(100.0)  # the 95% quantile is 95: five clean scores lie above it... at most
    assert tpr_at_fpr(clean, np.array([94.0, 96.0, 200.0, 300.0])) == 0.75
    assert (clean > np.quantile(clean, 0.95, method="higher")).mean() <= 0.05


def test_bit_depth_rounds_forward_and_passes_gradients_straight_through() -> None:
    x = torch.tensor([0.0, 0.2, 0.49, 0.51, 1.0], requires_grad=True)
    out = reduce_bit_depth(x, 1, (0.0, 1.0))
    assert out.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    out.sum().backward()
    assert x.grad is not None and x.grad.tolist() == [1.0] * 5


def test_median_filter_matches_a_direct_median() -> None:
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    out = median_filter(x, 3)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    assert out.shape == x.shape
    assert float(out[1, 0, 2, 3]) == float(padded[1, 0, 2:5, 3:6].flatten().median())


def test_lid_estimate_recovers_the_dimension_of_uniform_data() -> None:
    gen = torch.Generator().manual_seed(0)
    for dim in (2, 6):
        ref, query = torch.rand(4000, dim, generator=gen), 0.25 + 0.5 * torch.rand(200, dim, generator=gen)
        knn = torch.cdist(query, ref).topk(20, dim=1, largest=False).values
        assert float(lid_mle(knn).median()) == pytest.approx(dim, rel=0.3)


def test_every_detector_is_reachable_by_the_name_the_cli_offers() -> None:
    """The torch-free names (CLI help, assess) and the detector classes cannot drift apart."""
    from modelshield.defenses.results import DEFAULT_DETECTORS, DETECTOR_NAMES

    assert tuple(DETECTORS) == DETECTOR_NAMES and set(DEFAULT_DETECTORS) < set(DETECTOR_NAMES)


def test_unfitted_and_uncalibrated_detectors_say_so(digits: Split) -> None:
    with pytest.raises(InputError, match="not fitted"):
        EnergyDetector(digits.model).score(digits.x_clean)
    with pytest.raises(InputError, match="threshold"):
        EnergyDetector(digits.model).fit(digits.x_fit, digits.y_fit).flag(digits.x_clean)


def test_activation_detectors_need_a_white_box_model() -> None:
    remote = RemoteModel("http://127.0.0.1:9/predict", input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(CapabilityError, match="white-box"):
        MahalanobisDetector(remote)


def test_calibrated_threshold_keeps_the_false_positive_rate(digits: Split) -> None:
    det = FeatureSqueezing(digits.model).fit(digits.x_fit, digits.y_fit).calibrate(digits.x_fit, fpr=0.05)
    assert det.flag(digits.x_clean).mean() <= 0.10  # fresh clean data: near the 5% target


@pytest.mark.parametrize(
    ("make", "floor"),
    [
        (lambda m: FeatureSqueezing(m), 0.9),
        (lambda m: MahalanobisDetector(m), 0.65),
        (lambda m: LIDDetector(m), 0.75),
        (lambda m: EnergyDetector(m), 0.75),
        (lambda m: MaxSoftmaxDetector(m), 0.75),
    ],
)
def test_detectors_separate_pgd_examples_from_clean_digits(digits: Split, make, floor: float) -> None:  # type: ignore[no-untyped-def]
    det = make(digits.model).fit(digits.x_fit, digits.y_fit)
    assert len(digits.x_adv) >= 50
    assert roc_auc(det.score(digits.x_clean), det.score(digits.x_adv)) >= floor


def test_adaptive_attacker_evades_the_detector_better(digits: Split) -> None:
    det = MahalanobisDetector(digits.model).fit(digits.x_fit, digits.y_fit).calibrate(digits.x_clean)
    ok = digits.model.predict(digits.x_clean) == digits.y_clean
    x, y = digits.x_clean[ok], digits.y_clean[ok]
    x_adv = AdaptivePGD(det, EPS, steps=20)(digits.model, x, y)
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    fooled = digits.model.predict(x_adv) != y
    assert int(fooled.sum()) >= 20
    adaptive = roc_auc(det.score(digits.x_clean), det.score(x_adv[fooled]))
    standard = roc_auc(det.score(digits.x_clean), det.score(digits.x_adv))
    assert adaptive < standard - 0.05
    with pytest.raises(InputError, match="calibrate"):
        AdaptivePGD(MahalanobisDetector(digits.model).fit(digits.x_fit, digits.y_fit), EPS)(digits.model, x, y)


def test_evaluate_reports_standard_and_adaptive_rows(digits: Split) -> None:
    records = evaluate_detectors(
        digits.model, digits.x_clean, digits.y_clean, ("energy",), eps=EPS, steps=5, attacks=("fgsm",)
    )
    assert [(r.name, r.attack, r.adaptive) for r in records] == [
        ("energy", "fgsm", False),
        ("energy", "adaptive-pgd", True),
    ]
    assert all(r.auc is not None and 0 <= r.auc <= 1 and r.samples > 0 for r in records)
    with pytest.raises(InputError, match="unknown detector"):
        evaluate_detectors(digits.model, digits.x_clean, digits.y_clean, ("nope",), eps=EPS)
