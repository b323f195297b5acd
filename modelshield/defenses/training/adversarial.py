"""Training on attacked inputs: standard training, PGD adversarial training and fast adversarial training.

All three solve ``min_θ E[max_{δ ∈ B_ε} L(f_θ(x + δ), y)]`` with a different inner maximiser:
none (standard), PGD-k (Madry et al.) or one FGSM step from a random start (Wong et al.). The
inner maximiser is :class:`modelshield.attacks.evasion.PGD`, run on the model adapter, so it
respects the model's bounds and preprocessing exactly as an assessment's attack does.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from modelshield.attacks.base import Norm
from modelshield.attacks.evasion import PGD
from modelshield.attacks.evasion._common import check_positive
from modelshield.defenses.training.step import Step, frozen
from modelshield.defenses.training.trainer import Trainer


class StandardTraining(Trainer):
    """Plain empirical-risk minimisation (cross-entropy), the baseline robust methods are compared to.

    Args:
        temperature: divide the logits by this before the softmax (default 1); defensive
            distillation trains its teacher this way.
    """

    name = "standard"

    def __init__(self, *, temperature: float = 1.0) -> None:
        self.temperature = check_positive("temperature", temperature)

    def train_batch(self, step: Step, x: Tensor, y: Tensor) -> Tensor:
        loss = F.cross_entropy(step.model.logits(x) / self.temperature, y)
        step.update(loss)
        return loss.detach()


class PGDTraining(Trainer):
    """PGD adversarial training.

    Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018, https://arxiv.org/abs/1706.06083.

    Each minibatch is replaced by its PGD-``steps`` adversarial examples (random start, step
    ``alpha``, crafted in eval mode with frozen weights), and the network takes one step on
    their cross-entropy.

    Args:
        eps: perturbation budget in ``norm``, in the model's input units (e.g. 0.3 on [0, 1]).
        steps: attack steps per minibatch (default 7).
        alpha: attack step size; default ``2.5 * eps / steps``.
        norm: ``"linf"`` (default) or ``"l2"``.
        random_start: start each attack uniformly inside the ε-ball (default True).

    Example::

        result = PGDTraining(eps=0.1).fit(model, train, TrainConfig(epochs=20))
    """

    name = "pgd"

    def __init__(
        self, eps: float, *, steps: int = 7, alpha: float | None = None, norm: Norm = "linf", random_start: bool = True
    ) -> None:
        self._attack = PGD(eps, steps=steps, alpha=alpha, norm=norm, random_start=random_start)
        self.eps, self.steps, self.alpha = self._attack.eps, self._attack.steps, self._attack.alpha
        self.norm, self.random_start = norm, bool(random_start)

    def train_batch(self, step: Step, x: Tensor, y: Tensor) -> Tensor:
        with frozen(step.model):
            x_adv = self._attack(step.model, x, y)
        loss = F.cross_entropy(step.model.logits(x_adv), y)
        step.update(loss)
        return loss.detach()


class FastTraining(PGDTraining):
    """Fast adversarial training: FGSM from a random start.

    Wong, Rice, Kolter, "Fast is better than free: Revisiting adversarial training", ICLR 2020,
    https://arxiv.org/abs/2001.03994.

    One signed-gradient step of size ``alpha = 1.25 ε`` from a uniform random point of the
    ε-ball, projected back; about as cheap as standard training. The paper pairs it with a
    cyclic learning rate (``TrainConfig(lr_schedule="cyclic")``) and early stopping, which also
    guards against its failure mode, catastrophic overfitting (robust accuracy collapsing to 0).

    Args:
        eps: perturbation budget in ``norm``, in the model's input units.
        alpha: step size; default ``1.25 * eps``.
        norm: ``"linf"`` (default) or ``"l2"``.
    """

    name = "fast"

    def __init__(self, eps: float, *, alpha: float | None = None, norm: Norm = "linf") -> None:
        eps = check_positive("eps", eps)
        super().__init__(eps, steps=1, alpha=1.25 * eps if alpha is None else alpha, norm=norm, random_start=True)
