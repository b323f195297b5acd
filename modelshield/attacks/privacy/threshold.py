"""Membership by a threshold on the target model's loss or confidence (Yeom et al. 2018)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from modelshield.attacks.privacy._signals import check_labelled, log_probs, true_class_log_prob
from modelshield.attacks.privacy.base import MembershipAttack
from modelshield.core.model import Model


class LossThreshold(MembershipAttack):
    """A sample is a member when the model's loss on it is low.

    Yeom, Giacomelli, Fredrikson, Jha, "Privacy Risk in Machine Learning: Analyzing the Connection
    to Overfitting", CSF 2018, https://arxiv.org/abs/1709.01604.

    The score is the negative cross-entropy, −ℓ(x, y) = log p_y(x). Yeom et al. call a sample a
    member below the average training loss; the ROC curve sweeps every threshold instead, so no
    training loss is needed. It needs no reference models, and it is the baseline every stronger
    attack must beat: a per-sample threshold (LiRA, RMIA) wins where samples differ in how hard they
    are.

    Example::

        summary = LossThreshold().evaluate(model, x, y, is_member)
    """

    name = "loss"

    def scores(self, model: Model, x: Tensor, y: Tensor) -> np.ndarray:
        check_labelled(model, x, y)
        return true_class_log_prob(log_probs(model, x), y)


class ConfidenceThreshold(MembershipAttack):
    """A sample is a member when the model's top confidence on it is high, whatever the label.

    Yeom et al. 2018 (https://arxiv.org/abs/1709.01604); Salem et al., "ML-Leaks", NDSS 2019
    (https://arxiv.org/abs/1806.01246) show the maximum posterior alone separates members.

    The score is max_c p_c(x): it needs no true label, so it also audits a model whose labels the
    attacker does not know (``y`` is only checked, not used).
    """

    name = "confidence"

    def scores(self, model: Model, x: Tensor, y: Tensor) -> np.ndarray:
        check_labelled(model, x, y)
        return np.asarray(log_probs(model, x).max(dim=1).values.numpy(), dtype=np.float64)


__all__ = ["ConfidenceThreshold", "LossThreshold"]
