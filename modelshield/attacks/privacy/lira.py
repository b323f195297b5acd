"""The Likelihood Ratio Attack, online and offline (Carlini et al. 2022)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from modelshield.attacks.privacy._signals import check_labelled, log_probs, scaled_logit
from modelshield.attacks.privacy.base import MembershipAttack
from modelshield.attacks.privacy.reference import ReferenceModels, check_reference
from modelshield.core.errors import InputError
from modelshield.core.model import Model

#: below this many IN (or OUT) models per sample, one variance shared by all samples is the better estimate
PER_EXAMPLE_VARIANCE_FROM = 32
_MIN_STD = 1e-3


class LiRA(MembershipAttack):
    """Membership by a per-sample likelihood-ratio test on the logit-scaled confidence.

    Carlini, Chien, Nasr, Song, Terzis, Tramèr, "Membership Inference Attacks From First
    Principles", IEEE S&P 2022, https://arxiv.org/abs/2112.03570.

    For each sample, the reference models that trained on it (IN) and those that did not (OUT)
    give two samples of φ = log(p_y / (1 − p_y)); a Gaussian is fitted to each. *Online*, the
    score is the log-likelihood ratio log N(φ_target; μ_in, σ_in²) − log N(φ_target; μ_out, σ_out²).
    *Offline* (no model trained on the sample, so the targets need not be in the reference pool)
    it is the one-sided z-score (φ_target − μ_out) / σ_out, which ranks samples as the paper's
    p-value does. With few reference models a variance pooled over all samples replaces the
    per-sample one (the paper's "fixed variance", stronger below ~64 models).

    A sample that is hard for every model (low φ IN and OUT) no longer looks like a non-member, and
    an easy one no longer looks like a member: that is what lifts the TPR at low FPR over a global
    loss threshold.

    Args:
        references: reference models trained with the target's recipe (:class:`ReferenceModels`).
        online: use IN and OUT models (default True); False uses OUT models only.
        fixed_variance: pool the variance over samples; default: when fewer than 32 IN/OUT models per sample.

    Example::

        refs = ReferenceModels.train(train_fn, x_pool, y_pool, n_models=16)
        scores = LiRA(refs).scores(target, x_pool, y_pool)
    """

    def __init__(self, references: ReferenceModels, *, online: bool = True, fixed_variance: bool | None = None) -> None:
        self.references = check_reference(references, "LiRA")
        self.online = bool(online)
        half = self.references.n_models // 2
        self.fixed_variance = half < PER_EXAMPLE_VARIANCE_FROM if fixed_variance is None else bool(fixed_variance)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "lira-online" if self.online else "lira-offline"

    def scores(self, model: Model, x: Tensor, y: Tensor) -> np.ndarray:
        check_labelled(model, x, y)
        target = scaled_logit(log_probs(model, x), y)
        ref = np.stack([scaled_logit(lp, y) for lp in self.references.log_probs(x, y)])  # (K, N)
        member = self.references.membership(x, y)
        mu_out, sd_out = _gaussian(ref, ~member, self.fixed_variance)
        if not self.online:
            return np.asarray((target - mu_out) / sd_out, dtype=np.float64)
        if not member.any(axis=0).all():
            missing = int((~member.any(axis=0)).sum())
            raise InputError(
                f"online LiRA needs every sample in the reference pool; {missing} of {x.shape[0]} are not",
                hint="train the reference models on a pool that holds the samples, or use online=False",
            )
        mu_in, sd_in = _gaussian(ref, member, self.fixed_variance)
        return _log_normal(target, mu_in, sd_in) - _log_normal(target, mu_out, sd_out)


def _gaussian(values: np.ndarray, mask: np.ndarray, fixed_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample mean and standard deviation of ``values`` (K, N) over the rows where ``mask`` holds."""
    count = mask.sum(axis=0)
    if (count == 0).any():
        raise InputError("some samples have no OUT reference model; train more reference models")
    mean = np.where(mask, values, 0.0).sum(axis=0) / count
    dev2 = np.where(mask, (values - mean) ** 2, 0.0)
    if fixed_variance:
        std = np.full(values.shape[1], np.sqrt(dev2.sum() / max(mask.sum() - mask.shape[1], 1)))
    else:
        std = np.sqrt(dev2.sum(axis=0) / np.maximum(count - 1, 1))
    return mean, np.maximum(std, _MIN_STD)


def _log_normal(v: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return np.asarray(-0.5 * ((v - mu) / sd) ** 2 - np.log(sd), dtype=np.float64)


__all__ = ["LiRA"]
