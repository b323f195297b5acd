"""Randomized smoothing: exact bounds, useful certificates, abstention, streaming and soundness."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import binomtest
from torch import Tensor, nn

from modelshield.attacks.evasion import PGD
from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import Model, TorchModel
from modelshield.defenses.smoothing import (
    ABSTAIN,
    SmoothedClassifier,
    certified_radius,
    certify_dataset,
    clopper_pearson_lower,
    default_radii,
)

SIGMA = 0.25  # the noise the conftest model was trained with


@pytest.mark.parametrize(
    ("k", "n", "alpha"), [(1, 10, 0.05), (73, 100, 0.001), (9_990, 10_000, 0.001), (500, 500, 0.01)]
)
def test_clopper_pearson_matches_scipy_exact_interval(k: int, n: int, alpha: float) -> None:
    # The one-sided (1 − α) lower bound is the lower end of the two-sided (1 − 2α) exact interval.
    expected = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact").low
    assert clopper_pearson_lower(k, n, alpha) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert clopper_pearson_lower(0, n, alpha) == 0.0


def test_radius_is_sigma_times_inverse_normal() -> None:
    assert certified_radius(0.5, 0.25) == 0.0
    assert certified_radius(0.8413447460685429, 0.5) == pytest.approx(0.5, rel=1e-6)  # Φ(1)


def test_noise_trained_model_gets_positive_radii(noisy_model: TorchModel, digits_test: Dataset) -> None:
    x, y = digits_test.x[:60], digits_test.y[:60]
    result = certify_dataset(noisy_model, x, y, SIGMA, n0=50, n=500, alpha=0.001, batch_size=2000)
    correct = result.predictions == y
    assert correct.float().mean() >= 0.85
    assert (result.radii[correct] > 0).float().mean() >= 0.9
    curve = result.curve(default_radii(SIGMA))
    accuracies = [p.certified_accuracy for p in curve]
    assert accuracies == sorted(accuracies, reverse=True)  # certified accuracy never rises with the radius
    assert curve[2].certified_accuracy >= 0.5  # radius σ/2
    assert all(p.sigma == SIGMA and p.abstain_rate == result.abstain_rate for p in curve)


class _CoinFlips(nn.Module):
    """A base model with no opinion: random scores on every call."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.randn(x.shape[0], 10)


def test_randomised_model_abstains(digits_test: Dataset) -> None:
    model = TorchModel(_CoinFlips(), input_shape=(1, 8, 8), num_classes=10)
    smooth = SmoothedClassifier(model, SIGMA)
    x = digits_test.x[:20]
    assert (smooth.predict(x, n=200, alpha=0.001) == ABSTAIN).float().mean() >= 0.9
    cert = smooth.certify(x, n0=50, n=500, alpha=0.001)
    assert bool((cert.prediction == ABSTAIN).all()) and float(cert.radius.max()) == 0.0


class _BatchSizes(TorchModel):
    """Records the size of every forward pass."""

    sizes: list[int]

    def _scores(self, x: Tensor) -> Tensor:
        self.sizes.append(int(x.shape[0]))
        return super()._scores(x)


@pytest.mark.parametrize(("num", "batch_size"), [(1000, 256), (30, 256)])
def test_noise_is_streamed_in_bounded_batches(
    noisy_model: TorchModel, digits_test: Dataset, num: int, batch_size: int
) -> None:
    model = _BatchSizes(noisy_model.module, input_shape=(1, 8, 8), num_classes=10)
    model.sizes = []
    counts = SmoothedClassifier(model, SIGMA, batch_size=batch_size).sample_counts(digits_test.x[:5], num)
    assert counts.sum(dim=1).tolist() == [num] * 5
    assert max(model.sizes) <= batch_size
    assert sum(model.sizes) == 5 * num


def test_same_seed_same_certificate(noisy_model: TorchModel, digits_test: Dataset) -> None:
    x = digits_test.x[:4]
    a = SmoothedClassifier(noisy_model, SIGMA, seed=3).certify(x, n0=20, n=200)
    b = SmoothedClassifier(noisy_model, SIGMA, seed=3).certify(x, n0=20, n=200)
    assert torch.equal(a.prediction, b.prediction) and torch.equal(a.radius, b.radius)


def test_bad_settings_are_refused(noisy_model: TorchModel, digits_test: Dataset) -> None:
    with pytest.raises(InputError, match="sigma"):
        SmoothedClassifier(noisy_model, 0.0)
    with pytest.raises(InputError, match="alpha"):
        SmoothedClassifier(noisy_model, SIGMA).certify(digits_test.x[:1], alpha=1.5)
    with pytest.raises(InputError, match="noise samples"):
        SmoothedClassifier(noisy_model, SIGMA).sample_counts(digits_test.x[:1], 0)


class _ExpectedSoftmax(Model):
    """A differentiable Monte Carlo estimate of the smoothed soft classifier (Salman et al. 2019)."""

    white_box = True

    def __init__(self, base: TorchModel, sigma: float, samples: int) -> None:
        super().__init__()
        self.base, self.sigma, self.samples = base, sigma, samples
        self.input_shape, self.num_classes, self.bounds = base.input_shape, base.num_classes, base.bounds

    def _scores(self, x: Tensor) -> Tensor:
        noisy = x.repeat_interleave(self.samples, 0) + self.sigma * torch.randn(x.shape[0] * self.samples, *x.shape[1:])
        probs = torch.softmax(self.base.logits(noisy), dim=1).view(x.shape[0], self.samples, -1).mean(dim=1)
        return torch.log(probs + 1e-12)


def test_attacks_inside_the_certified_radius_do_not_flip(noisy_model: TorchModel, digits_test: Dataset) -> None:
    """Soundness, checked empirically: PGD-L2 on the smoothed model within 0.95·radius never changes it."""
    torch.manual_seed(0)
    x, y = digits_test.x[:40], digits_test.y[:40]
    cert = SmoothedClassifier(noisy_model, SIGMA, seed=1).certify(x, n0=50, n=1000, alpha=0.001)
    chosen = torch.nonzero((cert.prediction == y) & (cert.radius > 0.2)).flatten()[:6]
    assert chosen.numel() >= 4
    attacked = 0
    for i in chosen.tolist():
        eps = 0.95 * float(cert.radius[i])
        target = cert.prediction[i : i + 1]
        x_adv = PGD(eps=eps, norm="l2", steps=10, seed=0)(
            _ExpectedSoftmax(noisy_model, SIGMA, 32), x[i : i + 1], target
        )
        assert float((x_adv - x[i : i + 1]).norm()) <= eps + 1e-4
        after = SmoothedClassifier(noisy_model, SIGMA, seed=2).predict(x_adv, n=1000, alpha=0.001)
        assert int(after[0]) in (int(target[0]), ABSTAIN)
        attacked += 1
    assert attacked == chosen.numel()
