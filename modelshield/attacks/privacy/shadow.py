"""Shadow-model membership inference (Shokri et al. 2017): an attack classifier learns IN from OUT outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from modelshield.attacks.privacy._signals import check_labelled, log_probs
from modelshield.attacks.privacy.base import MembershipAttack
from modelshield.attacks.privacy.reference import ReferenceModels, check_reference
from modelshield.core.model import Model

#: log-probabilities below this carry no more information and only spread the attack's features
_FLOOR = -30.0
#: a class gets its own attack model when it has this many IN and OUT records; fewer share one
_PER_CLASS_MIN = 20


class ShadowModels(MembershipAttack):
    """An attack classifier trained on shadow models' outputs on their own members and non-members.

    Shokri, Stronati, Song, Shmatikov, "Membership Inference Attacks Against Machine Learning
    Models", IEEE S&P 2017, https://arxiv.org/abs/1610.05820.

    Each shadow model (a :class:`ReferenceModels` member, trained like the target on half of the
    pool) labels its outputs on the pool IN or OUT; one attack classifier per true class (Shokri's
    design; classes with too few records share a pooled one) learns to tell them apart from the
    probability vector, and the score is its probability of IN on the target's output. Unlike
    LiRA, the attack is one global decision rule per class, so samples that are hard for every
    model still look like non-members.

    Args:
        references: the shadow models.
        classifier: a scikit-learn classifier with ``predict_proba`` to clone per class (default:
            gradient-boosted trees, as ML-Leaks and ART's default attack model are tree or MLP based).
    """

    name = "shadow"

    def __init__(self, references: ReferenceModels, *, classifier: Any = None) -> None:
        self.references = check_reference(references, "ShadowModels")
        self.classifier = classifier

    def _features(self, logp: Tensor) -> np.ndarray:
        return np.asarray(logp.clamp(min=_FLOOR).numpy(), dtype=np.float64)

    def _new(self) -> Any:
        from sklearn.base import clone
        from sklearn.ensemble import HistGradientBoostingClassifier

        if self.classifier is None:
            return HistGradientBoostingClassifier(max_iter=50, random_state=0)
        return clone(self.classifier)

    def _fit(self) -> dict[int, Any]:
        """Attack classifiers per class (key −1: the pooled one), trained on every shadow's pool outputs."""
        refs = self.references
        x, y = refs.pool_x, refs.pool_y
        feats = np.concatenate([self._features(lp) for lp in refs.log_probs(x, y)])
        labels = np.tile(y.cpu().numpy(), refs.n_models)
        is_in = refs.in_mask.reshape(-1)
        onehot = np.eye(int(labels.max()) + 1)[labels]
        attack = {-1: self._new().fit(np.hstack([feats, onehot]), is_in)}
        for c in np.unique(labels):
            rows = labels == c
            if min(int(is_in[rows].sum()), int((~is_in[rows]).sum())) >= _PER_CLASS_MIN:
                attack[int(c)] = self._new().fit(feats[rows], is_in[rows])
        return attack

    def scores(self, model: Model, x: Tensor, y: Tensor) -> np.ndarray:
        check_labelled(model, x, y)
        attack = self._fit()
        feats = self._features(log_probs(model, x))
        labels = y.cpu().numpy()
        width = attack[-1].n_features_in_ - feats.shape[1]
        out = np.empty(x.shape[0])
        for c in np.unique(labels):
            rows = labels == c
            if int(c) in attack:
                out[rows] = attack[int(c)].predict_proba(feats[rows])[:, 1]
            else:
                onehot = np.zeros((int(rows.sum()), width))
                if c < width:
                    onehot[:, c] = 1.0
                out[rows] = attack[-1].predict_proba(np.hstack([feats[rows], onehot]))[:, 1]
        return out


__all__ = ["ShadowModels"]
