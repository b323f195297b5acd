"""Randomized smoothing: PREDICT and CERTIFY, streamed in batches on the model's device.

Cohen, Rosenfeld, Kolter, "Certified Adversarial Robustness via Randomized Smoothing", ICML 2019,
https://arxiv.org/abs/1902.02918.

The smoothed classifier ``g(x) = argmax_c P(f(x + ε) = c)``, ``ε ~ N(0, σ²I)``, is estimated by
counting the base model's votes on noisy copies of ``x``. Noise is drawn batch by batch on the
device, next to the model, and only the (B, K) vote counts ever exist in full: ART's
implementation builds all N copies on the host first (about 1.2 GB per CIFAR image at N = 100k);
bench/certify.py measures the memory and time this costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from modelshield.core.errors import InputError
from modelshield.core.model import Model
from modelshield.defenses.smoothing.bounds import certified_radius, clopper_pearson_lower, top_two_significant

ABSTAIN = -1
"""The label PREDICT and CERTIFY return when the vote is too close to call."""


@dataclass(frozen=True)
class Certificate:
    """CERTIFY's answer per input: the class (or ``ABSTAIN``), the L2 radius and the bound on p_A."""

    prediction: Tensor
    radius: Tensor
    p_lower: Tensor


class SmoothedClassifier:
    """The Gaussian-smoothed version of ``model`` with noise level ``sigma`` (in input units).

    Args:
        model: the base classifier; its scores are only argmax-ed, so any Model with scores works.
            For bf16 / channels-last GPU speed, call ``model.use_fast_path(...)`` first.
        sigma: standard deviation of the Gaussian noise, > 0. The certificate scales with it.
        batch_size: noisy samples per forward pass (default 1000); memory stays flat in N.
        seed: seed of the noise generator (default 0; None draws from the global RNG).

    Example::

        smooth = SmoothedClassifier(model, sigma=0.25)
        cert = smooth.certify(x, n0=100, n=10_000, alpha=0.001)
        certified = (cert.prediction == y) & (cert.radius >= 0.5)
    """

    def __init__(self, model: Model, sigma: float, *, batch_size: int = 1000, seed: int | None = 0) -> None:
        if not sigma > 0:
            raise InputError(f"sigma must be positive, got {sigma}")
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.sigma = float(sigma)
        self.batch_size = int(batch_size)
        self.seed = seed
        self._gen: torch.Generator | None = None

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if self._gen is None or self._gen.device != device:
            self._gen = torch.Generator(device=device).manual_seed(self.seed)
        return self._gen

    def sample_counts(self, x: Tensor, num: int) -> Tensor:
        """Votes (B, K) of the base model on ``num`` noisy copies of each input in ``x``.

        Inputs are grouped so each forward carries about ``batch_size`` noisy samples: many
        inputs per batch when ``num`` is small, many batches per input when it is large.
        """
        if num < 1:
            raise InputError(f"the number of noise samples must be at least 1, got {num}")
        x = x.to(self.model.device)
        k = self.model.num_classes
        counts = torch.zeros((x.shape[0], k), dtype=torch.long, device=x.device)
        gen = self._generator(x.device)
        group = max(1, self.batch_size // num)
        per_input = max(1, self.batch_size // group)
        with torch.no_grad():
            for start in range(0, x.shape[0], group):
                chunk = x[start : start + group]
                left = num
                while left > 0:
                    m = min(left, per_input)
                    batch = chunk.repeat_interleave(m, dim=0)
                    batch.add_(
                        torch.randn(batch.shape, generator=gen, device=x.device, dtype=x.dtype), alpha=self.sigma
                    )
                    labels = self.model.logits(batch).argmax(dim=1)
                    owner = torch.arange(chunk.shape[0], device=x.device).repeat_interleave(m)
                    votes = torch.bincount(owner * k + labels, minlength=chunk.shape[0] * k)
                    counts[start : start + chunk.shape[0]] += votes.view(chunk.shape[0], k)
                    left -= m
        return counts

    def predict(self, x: Tensor, n: int = 100, alpha: float = 0.001) -> Tensor:
        """PREDICT: the smoothed class of each input, or ``ABSTAIN`` when the top two are not separated at level α."""
        counts = self.sample_counts(x, n)
        top = counts.topk(min(2, counts.shape[1]), dim=1)
        out = top.indices[:, 0].clone()
        for i, row in enumerate(top.values.tolist()):
            runner_up = row[1] if len(row) > 1 else 0
            if not top_two_significant(row[0], runner_up, alpha):
                out[i] = ABSTAIN
        return out

    def certify(self, x: Tensor, n0: int = 100, n: int = 10_000, alpha: float = 0.001) -> Certificate:
        """CERTIFY: pick the class on ``n0`` samples, bound its probability on ``n`` fresh ones.

        With probability at least 1 − α (per input) the smoothed prediction is constant within
        the returned L2 radius; inputs whose bound on p_A does not exceed ½ abstain (radius 0).
        """
        if not 0 < alpha < 1:
            raise InputError(f"alpha must be in (0, 1), got {alpha}")
        guess = self.sample_counts(x, n0).argmax(dim=1)
        counts = self.sample_counts(x, n)
        n_a = counts.gather(1, guess[:, None]).squeeze(1).tolist()
        p_lower = [clopper_pearson_lower(int(c), n, alpha) for c in n_a]
        radius = [certified_radius(p, self.sigma) for p in p_lower]
        prediction = torch.where(
            torch.tensor(p_lower, device=guess.device) > 0.5, guess, torch.full_like(guess, ABSTAIN)
        )
        return Certificate(
            prediction=prediction,
            radius=torch.tensor(radius, dtype=torch.float64),
            p_lower=torch.tensor(p_lower, dtype=torch.float64),
        )


__all__ = ["ABSTAIN", "Certificate", "SmoothedClassifier"]
