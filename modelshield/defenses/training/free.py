"""Free adversarial training (Shafahi et al. 2019): the attack rides on the training gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from modelshield.attacks.base import Norm
from modelshield.attacks.evasion._common import check_count, check_norm, check_positive
from modelshield.attacks.evasion._norms import make_ball
from modelshield.core.datasets import Dataset
from modelshield.core.model import TorchModel
from modelshield.defenses.training.config import TrainConfig
from modelshield.defenses.training.step import Step
from modelshield.defenses.training.trainer import Trainer


class FreeTraining(Trainer):
    """Free adversarial training.

    Shafahi, Najibi, Ghiasi, Xu, Dickerson, Studer, Davis, Taylor, Goldstein, "Adversarial
    Training for Free!", NeurIPS 2019, https://arxiv.org/abs/1904.12843.

    Each minibatch is replayed ``replays`` (m) times. Every replay does one forward/backward on
    ``x + δ`` that yields both the weight gradient (one optimiser step) and the input gradient,
    with which ``δ`` takes a step of size ε and is projected back into the ε-ball and the
    bounds. ``δ`` persists from one minibatch to the next. An epoch here is one pass over the
    data, so it costs m standard epochs: the paper trains for ``epochs / m`` of them.

    Args:
        eps: perturbation budget in ``norm``, in the model's input units.
        replays: m, the number of times each minibatch is replayed (default 4).
        norm: ``"linf"`` (default) or ``"l2"``.
    """

    name = "free"

    eps: float

    def __init__(self, eps: float, *, replays: int = 4, norm: Norm = "linf") -> None:
        self.eps = check_positive("eps", eps)
        self.replays = check_count("replays", replays)
        self.norm: Norm = check_norm(norm)  # type: ignore[assignment]
        self._delta: Tensor | None = None

    def prepare(self, model: TorchModel, train: Dataset, config: TrainConfig) -> None:
        self._delta = torch.zeros((config.batch_size, *model.input_shape), device=model.device)

    def state_tensors(self) -> dict[str, Tensor]:
        return {} if self._delta is None else {"delta": self._delta}

    def load_state_tensors(self, model: TorchModel, tensors: dict[str, Tensor]) -> None:
        self._delta = tensors["delta"].to(model.device)

    def train_batch(self, step: Step, x: Tensor, y: Tensor) -> Tensor:
        if self._delta is None or self._delta.shape[0] < x.shape[0]:
            raise RuntimeError("FreeTraining.train_batch runs inside fit(), which sizes the perturbation first")
        model = step.model
        ball = make_ball(self.norm, x, self.eps, model.bounds)
        x_adv = ball.project_(x + self._delta[: x.shape[0]])
        total = torch.zeros((), device=x.device)
        for _ in range(self.replays):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model.logits(x_adv), y)
            step.update(loss)  # one backward: weight gradients for the step, input gradient for δ
            grad = x_adv.grad
            assert grad is not None
            x_adv = x_adv.detach().add_(ball.direction(grad), alpha=self.eps)
            ball.project_(x_adv)
            total += loss.detach()
        self._delta[: x.shape[0]] = x_adv - x
        return total / self.replays
