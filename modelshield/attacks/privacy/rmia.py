"""Robust membership inference by pairwise likelihood ratios against population samples (Zarifzadeh et al. 2024)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from modelshield.attacks.privacy._signals import check_labelled, log_probs, true_class_log_prob
from modelshield.attacks.privacy.base import MembershipAttack
from modelshield.attacks.privacy.reference import ReferenceModels, check_reference
from modelshield.core.errors import InputError
from modelshield.core.model import Model


class RMIA(MembershipAttack):
    """Membership as the share of population samples ``z`` that ``x`` dominates in likelihood ratio.

    Zarifzadeh, Liu, Mahloujifar, Shokri, "Low-Cost High-Power Membership Inference Attacks", ICML 2024,
    https://arxiv.org/abs/2312.03262.

    ``Pr(x|θ)`` is the target's probability of the true label; ``Pr(x)`` its average over reference
    models. The pairwise ratio ``LR(x, z) = (Pr(x|θ)/Pr(x)) / (Pr(z|θ)/Pr(z))`` compares ``x`` with a
    population sample ``z``, and the score is the fraction of ``z`` with ``LR(x, z) ≥ gamma``. Online,
    ``Pr(x)`` averages all reference models (half trained on ``x``); offline, only the OUT models,
    corrected as the paper does for the missing IN half: ``Pr(x) = ½((1 + a)·Pr_OUT(x) + (1 − a))``.

    Args:
        references: reference models (:class:`ReferenceModels`).
        population: (x, y) samples ``z`` the target did not train on; default: the scored samples
            themselves, each compared with all the others (the audit pool is the population).
        online: use IN and OUT reference models (default True).
        gamma: the threshold on the pairwise ratio (default 1, the paper's choice for small reference sets).
        offline_a: the offline correction ``a`` (default 0.3; the paper tunes it per dataset).
    """

    def __init__(
        self,
        references: ReferenceModels,
        *,
        population: tuple[Tensor, Tensor] | None = None,
        online: bool = True,
        gamma: float = 1.0,
        offline_a: float = 0.3,
    ) -> None:
        self.references = check_reference(references, "RMIA")
        self.population = population
        self.online = bool(online)
        if not gamma > 0:
            raise InputError(f"gamma must be positive, got {gamma}")
        if not 0.0 <= offline_a <= 1.0:
            raise InputError(f"offline_a lies in [0, 1], got {offline_a}")
        self.gamma = float(gamma)
        self.offline_a = float(offline_a)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "rmia-online" if self.online else "rmia-offline"

    def _ratio(self, model: Model, x: Tensor, y: Tensor) -> np.ndarray:
        """log Pr(x|θ) − log Pr(x) per sample."""
        target = np.exp(true_class_log_prob(log_probs(model, x), y))
        ref = np.exp(np.stack([true_class_log_prob(lp, y) for lp in self.references.log_probs(x, y)]))
        if self.online:
            marginal = ref.mean(axis=0)
        else:
            out = ~self.references.membership(x, y)
            pr_out = np.where(out, ref, 0.0).sum(axis=0) / np.maximum(out.sum(axis=0), 1)
            marginal = 0.5 * ((1 + self.offline_a) * pr_out + (1 - self.offline_a))
        return np.log(np.maximum(target, 1e-300)) - np.log(np.maximum(marginal, 1e-300))

    def scores(self, model: Model, x: Tensor, y: Tensor) -> np.ndarray:
        check_labelled(model, x, y)
        ratio_x = self._ratio(model, x, y)
        if self.population is None:
            ratio_z, same = ratio_x, True
        else:
            zx, zy = self.population
            check_labelled(model, zx, zy)
            ratio_z, same = self._ratio(model, zx, zy), False
        # LR(x, z) ≥ γ  ⇔  ratio_x − ratio_z ≥ log γ ; count per x with a sorted population
        sorted_z = np.sort(ratio_z)
        below = np.searchsorted(sorted_z, ratio_x - np.log(self.gamma), side="right")
        if same:  # x is in its own population: do not count the pair (x, x), which always passes at γ ≤ 1
            below = below - (self.gamma <= 1.0)
            return np.asarray(below / max(len(sorted_z) - 1, 1), dtype=np.float64)
        return np.asarray(below / len(sorted_z), dtype=np.float64)


__all__ = ["RMIA"]
