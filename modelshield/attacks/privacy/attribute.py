"""Attribute inference: recover a sensitive feature from the model's output, the label and the other features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from modelshield.attacks.privacy._signals import check_labelled, log_probs, true_class_log_prob
from modelshield.core.errors import InputError
from modelshield.core.model import Model

#: a feature with more distinct values than this needs its candidate values given explicitly
MAX_CANDIDATES = 32


@dataclass(frozen=True)
class AttributeResult:
    """What the attack guessed for each sample, next to the guess the prior alone makes."""

    values: np.ndarray
    posterior: np.ndarray
    predicted: np.ndarray
    prior: np.ndarray

    @property
    def prior_guess(self) -> float:
        """The value a model-free attacker guesses for everyone: the most likely under the prior."""
        return float(self.values[int(np.argmax(self.prior))])

    def accuracy(self, truth: ArrayLike) -> float:
        """Share of samples whose sensitive value the attack recovered."""
        return float(np.mean(self.predicted == self._truth(truth)))

    def prior_accuracy(self, truth: ArrayLike) -> float:
        """Share recovered by guessing the prior's most likely value: the bar the model's leak must clear."""
        return float(np.mean(self._truth(truth) == self.prior_guess))

    def _truth(self, truth: ArrayLike) -> np.ndarray:
        t = np.asarray(truth, dtype=np.float64).reshape(-1)
        if t.shape != self.predicted.shape:
            raise InputError(f"{t.size} true values for {self.predicted.size} samples")
        return t


class AttributeInference:
    """Guess a sensitive feature as the value under which the model best explains the known label.

    Fredrikson, Lantz, Jha, Lin, Page, Ristenpart, "Privacy in Pharmacogenetics: An End-to-End Case
    Study of Personalized Warfarin Dosing", USENIX Security 2014 (https://www.usenix.org/node/184490);
    Yeom et al., CSF 2018, https://arxiv.org/abs/1709.01604 (attribute inference from membership advantage).

    The attacker knows a record's other features and its label, and the sensitive feature's
    marginal ``prior``. For each candidate value ``v`` the feature is set to ``v`` and the model
    queried; the guess maximises ``p_model(y | x with v) · prior(v)`` (Fredrikson's maximum a
    posteriori rule). The model leaks the attribute when this beats guessing the prior's most
    likely value (:meth:`AttributeResult.prior_accuracy`); on training members it typically beats it
    by more, which is Yeom's link between overfitting and attribute leakage.

    Args:
        feature: index of the sensitive feature in the flattened input.
        values: its candidate values (default: the distinct values in the data, at most 32).
        prior: the candidates' probabilities (default: their frequency in the data).
    """

    def __init__(
        self, feature: int, *, values: Sequence[float] | None = None, prior: Sequence[float] | None = None
    ) -> None:
        if isinstance(feature, bool) or not isinstance(feature, int) or feature < 0:
            raise InputError(f"feature must be a column index ≥ 0, got {feature!r}")
        self.feature = feature
        self.values = None if values is None else np.asarray(values, dtype=np.float64)
        self.prior = None if prior is None else np.asarray(prior, dtype=np.float64)

    def _candidates(self, column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = np.unique(column) if self.values is None else self.values
        if values.size > MAX_CANDIDATES and self.values is None:
            raise InputError(
                f"feature {self.feature} has {values.size} distinct values; attribute inference guesses among a few",
                hint="pass values= (e.g. bin centres) for a continuous feature",
            )
        if values.size < 2:
            raise InputError(f"feature {self.feature} needs at least 2 candidate values, got {values.size}")
        if self.prior is None:
            prior = np.array([(column == v).mean() for v in values]) + 1e-12
        else:
            prior = self.prior
            if prior.shape != values.shape or (prior < 0).any() or not prior.sum() > 0:
                raise InputError(f"prior needs one non-negative weight per candidate value ({values.size})")
        return values, prior / prior.sum()

    def infer(self, model: Model, x: Tensor, y: Tensor) -> AttributeResult:
        """Guess the sensitive feature of every sample (whatever ``x`` holds in that column is ignored)."""
        check_labelled(model, x, y)
        flat = x.reshape(x.shape[0], -1)
        if self.feature >= flat.shape[1]:
            raise InputError(f"feature {self.feature} is out of range: the samples have {flat.shape[1]} features")
        values, prior = self._candidates(flat[:, self.feature].cpu().double().numpy())
        lo, hi = model.bounds
        if values.min() < lo or values.max() > hi:
            raise InputError(f"candidate values span [{values.min():g}, {values.max():g}], outside the model's bounds")
        loglik = np.empty((x.shape[0], values.size))
        for k, v in enumerate(values):
            probe = flat.clone()
            probe[:, self.feature] = torch.as_tensor(v, dtype=flat.dtype)
            loglik[:, k] = true_class_log_prob(log_probs(model, probe.reshape(x.shape)), y)
        logpost = loglik + np.log(prior)
        logpost -= logpost.max(axis=1, keepdims=True)
        posterior = np.exp(logpost)
        posterior /= posterior.sum(axis=1, keepdims=True)
        return AttributeResult(values, posterior, values[posterior.argmax(axis=1)], prior)


__all__ = ["AttributeInference", "AttributeResult"]
