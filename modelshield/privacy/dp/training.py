"""DP-SGD training: Poisson-sampled batches, per-sample clipping, Gaussian noise, and a budget it stops at.

Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang, "Deep Learning with Differential Privacy",
CCS 2016, https://arxiv.org/abs/1607.00133.

Each step includes every training sample independently with probability ``q = batch_size / N`` (the
sampling the accountant's subsampled-Gaussian analysis assumes; fixed-size shuffled batches would not
match it), clips each sample's gradient to ``max_grad_norm`` (:class:`.clipping.BookKeeping`), adds
Gaussian noise of standard deviation ``σ · max_grad_norm`` to the sum and divides by the expected batch
size ``q N``. With a target ε the run never takes a step that would spend more than it. A
``data_observer`` (a data-access monitor) is told each step's sample indices and each epoch's end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from modelshield.core.errors import InputError
from modelshield.defenses.training.loop import DataObserver
from modelshield.privacy.dp import accountant as acct
from modelshield.privacy.dp.accountant import ACCOUNTANTS, Accountant
from modelshield.privacy.dp.clipping import BookKeeping, LossFn, per_sample_cross_entropy

DPOptimizer = Literal["sgd", "adam"]
FORMAT = "modelshield.dp/1"


@dataclass
class EpochStats:
    """Where a run stands after one epoch (also what a progress callback receives)."""

    epoch: int
    steps: int
    loss: float
    epsilon: float
    seconds: float


@dataclass
class DPReport:
    """The privacy budget a run spent, and how: what is recorded with the model."""

    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    planned_steps: int
    max_grad_norm: float
    accountant: str
    target_epsilon: float | None
    stopped_at_target: bool
    batch_size: int
    dataset_size: int
    epochs: float
    seconds: float
    history: list[EpochStats] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the format tag, every field, and the mechanism in words."""
        return {
            "format": FORMAT,
            "mechanism": "DP-SGD: Poisson sampling, flat per-sample L2 clipping, Gaussian noise",
            **asdict(self),
        }


def _check_data(x: Tensor, y: Tensor, batch_size: int) -> int:
    n = int(x.shape[0]) if x.ndim else 0
    if n == 0 or y.shape != (n,):
        raise InputError(f"need inputs (N, ...) and labels (N,) with N > 0, got {tuple(x.shape)} and {tuple(y.shape)}")
    if not 1 <= batch_size <= n:
        raise InputError(f"batch size must lie in [1, {n}] (the number of training samples), got {batch_size}")
    return n


def _optimizer(name: str, params: list[nn.Parameter], lr: float | None) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=1.0 if lr is None else lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3 if lr is None else lr)
    raise InputError(f"optimizer must be sgd or adam, not {name!r}")


def poisson_batch(n: int, q: float, generator: torch.Generator) -> Tensor:
    """One step's batch: the indices of the samples, each drawn independently with probability ``q``."""
    return (torch.rand(n, generator=generator) < q).nonzero().squeeze(1)


def default_delta(n: int) -> float:
    """δ for N training records when none is given: the customary 1e-5 while it is below 1/N, else the power of
    ten at or below 0.1/N (1e-7 for a million rows)."""
    return 1e-5 if 1e-5 < 1 / n else 10.0 ** math.floor(math.log10(0.1 / n))


def plan(
    n: int,
    *,
    epsilon_target: float | None,
    delta: float,
    epochs: int,
    batch_size: int,
    noise_multiplier: float | None,
    accountant: Accountant,
) -> tuple[float, float, int, int]:
    """(σ, q, steps to run, steps planned) for a run: σ from the target ε, or the steps σ allows within it."""
    if accountant not in ACCOUNTANTS:
        raise InputError(f"accountant must be one of {', '.join(ACCOUNTANTS)}, not {accountant!r}")
    if epochs < 1:
        raise InputError(f"epochs must be at least 1, got {epochs}")
    if delta >= 1 / n:
        raise InputError(
            f"δ={delta:g} is not below 1/N = {1 / n:.3g}: a release that publishes one random training record "
            "in full meets that δ, so the (ε, δ) figure would promise nothing",
            hint=f"use a δ well below 1/N, e.g. {default_delta(n):g}",
        )
    q = batch_size / n
    planned = epochs * max(1, round(n / batch_size))
    if noise_multiplier is None:
        if epsilon_target is None:
            raise InputError("give a target ε (epsilon) or a noise multiplier; DP training needs one of them")
        sigma = acct.noise_for_epsilon(epsilon_target, q, planned, delta, accountant)
        return sigma, q, planned, planned
    if epsilon_target is None:
        acct.epsilon(noise_multiplier, q, planned, delta, accountant)  # checks the values
        return noise_multiplier, q, planned, planned
    steps = acct.steps_within(epsilon_target, noise_multiplier, q, planned, delta, accountant)
    if steps == 0:
        raise InputError(
            f"σ={noise_multiplier:g} spends more than ε={epsilon_target:g} in a single step at q={q:.4g}",
            hint="raise --noise-multiplier or leave it out to derive it from ε",
        )
    return noise_multiplier, q, steps, planned


def train_dp(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epsilon: float | None = None,
    delta: float = 1e-5,
    epochs: int = 10,
    batch_size: int = 256,
    max_grad_norm: float = 1.0,
    noise_multiplier: float | None = None,
    lr: float | None = None,
    optimizer: DPOptimizer = "sgd",
    accountant: Accountant = "rdp",
    loss_fn: LossFn = per_sample_cross_entropy,
    seed: int = 0,
    progress: Callable[[EpochStats], None] | None = None,
    data_observer: DataObserver | None = None,
) -> tuple[nn.Module, DPReport]:
    """Train ``model`` in place with DP-SGD on ``(x, y)``; return it (in eval mode) and the budget spent.

    Give ``epsilon`` (σ is derived so that ``epochs`` epochs spend it) or ``noise_multiplier`` (with
    ``epsilon`` too, training stops before the step that would exceed it). ``delta`` should be well
    below 1/N. Batches go to the device the model's parameters are on. ``optimizer`` is SGD with
    momentum 0.9 (default lr 1.0, suited to clipped mean gradients of norm ≤ ``max_grad_norm``) or
    Adam (default lr 1e-3). ``data_observer`` is given ``y``, then every Poisson batch's
    indices into ``x`` and the end of every epoch (``N / batch_size`` steps). Noise comes from torch's generator seeded with ``seed``, which is fine for
    research and auditing but not a cryptographically secure source.

    Example::

        net, report = train_dp(net, x_train, y_train, epsilon=3.0, delta=1e-5, epochs=20, batch_size=128)
        report.epsilon   # ≤ 3.0, at δ = 1e-5
    """
    n = _check_data(x, y, batch_size)
    if not 0 < delta < 1 or not max_grad_norm > 0 or (epsilon is not None and not epsilon > 0):
        raise InputError(f"need 0 < δ < 1, max_grad_norm > 0 and ε > 0; got δ={delta}, C={max_grad_norm}, ε={epsilon}")
    sigma, q, steps, planned = plan(
        n,
        epsilon_target=epsilon,
        delta=delta,
        epochs=epochs,
        batch_size=batch_size,
        noise_multiplier=noise_multiplier,
        accountant=accountant,
    )
    device = next(model.parameters()).device
    sampler = torch.Generator().manual_seed(seed)
    noise = torch.Generator(device=device).manual_seed(seed + 1)
    torch.manual_seed(seed)  # dropout and any other randomness inside the model
    per_epoch = planned // epochs
    observer = data_observer
    if observer is not None:
        observer.start(y.cpu())
    history: list[EpochStats] = []
    start = time.perf_counter()
    model.train()
    with BookKeeping(model, max_grad_norm=max_grad_norm) as bk:
        opt = _optimizer(optimizer, bk.params, lr)
        checked = False
        loss_sum, seen = 0.0, 0
        for step in range(1, steps + 1):
            idx = poisson_batch(n, q, sampler)
            if observer is not None:
                observer.record_batch(idx)
            xb, yb = x[idx].to(device), y[idx].to(device)
            if len(idx) and not checked:
                bk.check(xb, yb, loss_fn)
                checked = True
            if len(idx):
                batch = bk.clipped(xb, yb, loss_fn)
                grads, loss_sum, seen = batch.grads, loss_sum + batch.loss, seen + len(idx)
            else:  # an empty Poisson batch still takes a (pure-noise) step: the accountant counts it
                grads = {p: torch.zeros_like(p) for p in bk.params}
            for p in bk.params:
                g = grads[p]
                g.add_(torch.randn(g.shape, generator=noise, device=device, dtype=g.dtype), alpha=sigma * max_grad_norm)
                p.grad = g.div_(q * n)
            opt.step()
            if step % per_epoch == 0 or step == steps:
                if observer is not None:
                    observer.end_epoch()
                stats = EpochStats(
                    epoch=math.ceil(step / per_epoch),
                    steps=step,
                    loss=loss_sum / max(seen, 1),
                    epsilon=acct.epsilon(sigma, q, step, delta, accountant, fast=step < steps),
                    seconds=time.perf_counter() - start,
                )
                history.append(stats)
                loss_sum, seen = 0.0, 0
                if progress is not None:
                    progress(stats)
    model.eval()
    for p in bk.params:
        p.grad = None
    report = DPReport(
        epsilon=history[-1].epsilon,
        delta=delta,
        noise_multiplier=sigma,
        sample_rate=q,
        steps=steps,
        planned_steps=planned,
        max_grad_norm=float(max_grad_norm),
        accountant=accountant,
        target_epsilon=epsilon,
        stopped_at_target=steps < planned,
        batch_size=batch_size,
        dataset_size=n,
        epochs=steps / per_epoch,
        seconds=time.perf_counter() - start,
        history=history,
    )
    return model, report
