"""Jacobian-based dataset augmentation (Papernot, McDaniel, Goodfellow, Jha, Celik and Swami, "Practical
Black-Box Attacks against Machine Learning", AsiaCCS 2017, arXiv:1602.02697, Algorithm 1 and §6).

Start from a small seed set the attacker owns (a few samples per class), label it with the victim, train
a substitute, then grow the set along the substitute's decision boundaries: every point ``x`` gives a new
one ``x + λ_ρ · sign(∂F_{O(x)}(x)/∂x)`` — a step along the gradient of the substitute's score for the
class the victim gave ``x`` — and the victim labels the new points. Repeat for ``substitute epochs`` ρ.

* **Periodic step size** (§6): ``λ_ρ = λ · (−1)^⌊ρ/τ⌋``, so the set moves back and forth across boundaries
  instead of drifting away from the data.
* **Reservoir sampling** (§6): from iteration σ on, only κ points drawn by reservoir sampling (Vitter's
  algorithm R over the set) are augmented, so each iteration costs κ queries instead of doubling the set.

Labels are what the paper uses; with a victim that gives probabilities the substitute learns from them
(``use_scores``), which is more faithful per query.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor, nn

from modelshield.attacks.extraction.base import (
    EvalSet,
    ExtractionResult,
    Oracle,
    QueryCallback,
    QueryStop,
    Tracker,
    fit_substitute,
    stolen_model,
)
from modelshield.attacks.extraction.knockoff import SubstituteFactory, default_substitute
from modelshield.core.errors import InputError
from modelshield.core.model import Model


class JacobianAugmentation:
    """Papernot et al.'s substitute training with Jacobian-based dataset augmentation.

    Args:
        seed_set: (S, ...) attacker-owned starting points inside the victim's bounds (the paper: 150 test
            samples, 10–15 per class).
        lam: step size λ (the paper: 0.1 on [0, 1] pixels).
        tau: the step's sign flips every τ iterations (periodic step size; None = never).
        sigma: from this iteration on, augment only κ reservoir-sampled points (None = always double).
        kappa: κ, points augmented per iteration once reservoir sampling is on.
        iterations: substitute epochs ρ; the attack also stops when the budget is spent.
        epochs: training epochs of the substitute per iteration (warm-started).
        substitute: builds the network to train, with its ``arch`` record (default: a 256-128 MLP).
        use_scores: learn from probabilities when the victim gives them (None = whenever it does).
        seed: reservoir draws and initialisation.
    """

    name = "jacobian"

    def __init__(
        self,
        seed_set: Tensor,
        *,
        lam: float = 0.1,
        tau: int | None = 3,
        sigma: int | None = 3,
        kappa: int = 400,
        iterations: int = 10,
        epochs: int = 20,
        lr: float = 1e-3,
        batch_size: int = 64,
        substitute: SubstituteFactory = default_substitute,
        use_scores: bool | None = None,
        seed: int = 0,
    ) -> None:
        if seed_set.shape[0] < 1:
            raise InputError("the seed set is empty")
        if lam <= 0 or kappa < 1 or iterations < 1 or epochs < 1:
            raise InputError("lam must be > 0 and kappa, iterations, epochs >= 1")
        self.seed_set = seed_set.detach().float().cpu()
        self.lam, self.tau, self.sigma, self.kappa = lam, tau, sigma, kappa
        self.iterations, self.epochs, self.lr = iterations, epochs, lr
        self.batch_size = batch_size
        self.substitute = substitute
        self.use_scores = use_scores
        self.seed = seed

    def step_size(self, rho: int) -> float:
        """λ_ρ: the periodic step size of iteration ρ."""
        return self.lam * (-1.0) ** (rho // self.tau) if self.tau else self.lam

    def __call__(
        self,
        victim: Model,
        *,
        budget: int,
        evaluation: EvalSet | None = None,
        on_query: QueryCallback | None = None,
        record: bool = False,
    ) -> ExtractionResult:
        """Run up to ``iterations`` augmentation rounds within ``budget`` queries; return the trained substitute."""
        victim.check_inputs(self.seed_set)
        if evaluation is not None:  # asked before the attack: not charged to its budget
            evaluation = evaluation.labelled(victim)
        oracle = Oracle(
            victim, budget, batch_size=self.batch_size, use_scores=self.use_scores, on_query=on_query, record=record
        )
        tracker = Tracker(self.name, oracle, evaluation)
        torch.manual_seed(self.seed)
        net, arch = self.substitute(victim)
        rng = np.random.default_rng(self.seed)
        lo, hi = victim.bounds
        xs: list[Tensor] = []
        labels: list[Tensor] = []
        targets: list[Tensor] = []
        opt: torch.optim.Optimizer | None = None
        rho = 0
        try:
            new = self.seed_set
            for rho in range(self.iterations):
                answers = oracle.ask(new)
                xs.append(answers.x)
                labels.append(answers.labels)
                targets.append(answers.targets)
                x_all = torch.cat(xs)
                opt = fit_substitute(
                    net, x_all, torch.cat(targets), epochs=self.epochs, lr=self.lr, seed=self.seed + rho, optimizer=opt
                )
                tracker.measure(net)
                if oracle.exhausted or rho == self.iterations - 1:
                    break
                chosen = np.arange(x_all.shape[0])
                if self.sigma is not None and rho >= self.sigma and x_all.shape[0] > self.kappa:
                    chosen = np.fromiter(_reservoir(x_all.shape[0], self.kappa, rng), dtype=np.int64)
                idx = torch.from_numpy(chosen)
                step = self.step_size(rho)
                new = (x_all[idx] + step * jacobian_sign(net, x_all[idx], torch.cat(labels)[idx])).clamp(lo, hi)
        except QueryStop:
            pass  # nothing answered in this round: the substitute of the last round is the result
        details = {"iterations": rho + 1, "soft_labels": bool(oracle._soft), "set_size": sum(len(x) for x in xs)}
        return tracker.result(net, stolen_model(net, victim), oracle.stop_reason, arch, details)


def jacobian_sign(net: nn.Module, x: Tensor, labels: Tensor) -> Tensor:
    """sign(∂F_y(x)/∂x) for each row: the direction in which the substitute's score of the victim's label grows."""
    x = x.clone().requires_grad_(True)
    scores = net(x).gather(1, labels.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(scores, x)
    return grad.sign()


def _reservoir(n: int, k: int, rng: np.random.Generator) -> Iterator[int]:
    """k indices out of range(n), uniformly, by reservoir sampling (Vitter's algorithm R)."""
    reservoir = list(range(k))
    for i in range(k, n):
        j = int(rng.integers(i + 1))
        if j < k:
            reservoir[j] = i
    yield from sorted(reservoir)
