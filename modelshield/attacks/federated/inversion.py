"""Gradient inversion: rebuild a client's training inputs from the gradient it shared.

Two attacks by an honest-but-curious server that holds the model and one client's gradient of
the mean cross-entropy over its batch:

* ``"dlg"`` — Deep Leakage from Gradients (Zhu, Liu, Han, NeurIPS 2019,
  https://arxiv.org/abs/1906.08935): L-BFGS on dummy inputs to minimise the squared L2 distance
  between their gradient and the shared one.
* ``"cosine"`` — Inverting Gradients (Geiping, Bauermeister, Dröge, Moeller, NeurIPS 2020,
  https://arxiv.org/abs/2003.14053): Adam (on the signed gradient by default) minimising
  ``1 − cos(∇', ∇)`` plus a total-variation prior, with the learning rate cut ten-fold at 3/8,
  5/8 and 7/8 of the steps and the inputs kept inside the data's box.

Labels, unless given, are read off the last layer first (iDLG: Zhao, Mopuri, Bilen, 2020,
https://arxiv.org/abs/2001.02610), which is what makes DLG reliable: with softmax cross-entropy
the output-bias gradient is ``p − onehot(y)``, negative only at the true class, and each row of
the last weight gradient has that sign times a non-negative activation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from modelshield.attacks.federated import quality
from modelshield.core.errors import InputError

Method = Literal["dlg", "cosine"]
DEFAULT_STEPS: dict[str, int] = {"dlg": 300, "cosine": 2000}
LBFGS_CHUNK = (
    20  # L-BFGS iterations per optimiser call, as in the DLG reference code; the best point is kept between calls
)


@dataclass(frozen=True, eq=False)  # tensors inside: equality is identity
class InversionResult:
    """A reconstruction and, where the ground truth was given, how close it came.

    Attributes:
        reconstruction: (B, *input_shape) the rebuilt inputs, on the CPU, in the order of ``labels``.
        labels: (B,) int64, the labels used: given, or inferred from the last layer.
        labels_inferred: True when ``labels`` were inferred rather than given.
        method: ``"dlg"`` or ``"cosine"``.
        steps: optimiser iterations run.
        gradient_distance: the matching objective's gradient term at the returned point
            (squared L2 for DLG, ``1 − cos`` for cosine; lower is closer).
        mse, psnr, ssim: mean over the batch against the ground truth, each reconstruction paired
            with its closest true input; PSNR in dB over the data range; SSIM only for images
            with sides ≥ 7. None without ground truth.
        psnr_per_sample: (B,) PSNR of each paired reconstruction, or None.
        label_accuracy: share of the true labels recovered (as multisets), or None.
    """

    reconstruction: Tensor
    labels: Tensor
    labels_inferred: bool
    method: str
    steps: int
    gradient_distance: float
    mse: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    psnr_per_sample: np.ndarray | None = None
    label_accuracy: float | None = None


def invert_gradients(
    model: nn.Module,
    gradients: Sequence[Tensor | np.ndarray],
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int = 1,
    labels: Tensor | None = None,
    method: Method = "dlg",
    steps: int | None = None,
    seed: int = 0,
    lr: float | None = None,
    tv_weight: float = 0.0,
    signed: bool = True,
    bounds: tuple[float, float] | None = None,
    ground_truth: Tensor | None = None,
    true_labels: Tensor | None = None,
) -> InversionResult:
    """Reconstruct the ``batch_size`` inputs whose mean cross-entropy gradient is ``gradients``.

    Args:
        model: the network as the client ran it (its mode, train or eval, is left as it is);
            it returns logits and its trainable parameters are not changed.
        gradients: one tensor (or array) per trainable parameter, in ``model.parameters()``
            order — a FedSGD update divided by ``-learning_rate``, or a SecAgg sum divided by k.
        input_shape: shape of one input, e.g. (1, 8, 8) or (64,).
        num_classes: number of classes (the width of the last layer).
        batch_size: how many inputs to rebuild.
        labels: (B,) known labels; default: inferred from the last layer's gradient.
        method: ``"dlg"`` (L-BFGS, L2) or ``"cosine"`` (Adam, cosine distance, optional TV).
        steps: optimiser iterations (default 300 for DLG, 2000 for cosine).
        seed: seed of the dummy inputs' N(0, 1) start.
        lr: step size (default 1 for L-BFGS, 0.1 for Adam).
        tv_weight: weight of the total-variation prior (cosine, image inputs only; default 0).
            Geiping et al. use 1e-4 to 1e-2 on natural images; with signed steps the prior's sign
            wins wherever the cosine term's input gradient is smaller, and on 8×8 digits every
            weight tried (1e-6 to 1e-2) lowered the PSNR (LeNet: 93 dB at 0, 19 dB at 1e-6).
        signed: cosine only — step on the gradient's sign, as Geiping et al. do.
        bounds: the data's (low, high) box; cosine projects into it every step, and both clamp
            the result to it. Also the data range for PSNR/SSIM (default: the ground truth's).
        ground_truth: (B, *input_shape) the true inputs, to score the reconstruction.
        true_labels: (B,) the true labels, to score label inference.
    """
    if method not in DEFAULT_STEPS:
        raise InputError(f"method must be 'dlg' or 'cosine', got {method!r}")
    steps = DEFAULT_STEPS[method] if steps is None else steps
    for name, value in (("steps", steps), ("batch_size", batch_size), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be an integer ≥ 1, got {value!r}")
    if not input_shape or not all(isinstance(d, int) and d >= 1 for d in input_shape):
        raise InputError(f"input_shape must be the shape of one input, e.g. (1, 8, 8), got {input_shape!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InputError("the model has no trainable parameters: there is no gradient to invert")
    device = params[0].device
    target = _target_gradients(gradients, params)
    if labels is None:
        y = infer_labels(target, num_classes=num_classes, batch_size=batch_size)
    else:
        y = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if y.shape != (batch_size,) or y.min() < 0 or y.max() >= num_classes:
            raise InputError(f"labels must be {batch_size} class indices in [0, {num_classes}), got {y.tolist()}")
    y = y.to(device)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((batch_size, *input_shape), generator=generator).to(device).requires_grad_(True)
    if method == "dlg":
        x_best, distance, ran = _dlg(model, params, target, x, y, steps, 1.0 if lr is None else lr)
    else:
        weight = tv_weight if len(input_shape) >= 2 else 0.0
        x_best, distance, ran = _cosine(
            model, params, target, x, y, steps, 0.1 if lr is None else lr, weight, signed, bounds
        )
    if bounds is not None:
        x_best = x_best.clamp(*bounds)
    result = InversionResult(x_best.detach().cpu(), y.cpu(), labels is None, method, ran, distance)
    return _scored(result, ground_truth, true_labels, bounds, num_classes)


def infer_labels(gradients: Sequence[Tensor], *, num_classes: int, batch_size: int = 1) -> Tensor:
    """The batch's labels, read off the gradient of the last layer with ``num_classes`` outputs.

    One input (iDLG): the class whose bias gradient (or weight-row sum) is negative, the least.
    A batch: with a bias, the class counts of Geng et al. ("Towards General Deep Leakage in
    Federated Learning", 2021, https://arxiv.org/abs/2110.09074): the mean bias gradient is
    ``p̄ − n/B``, so ``n ≈ B·(p̄ − ∇b)`` with ``p̄`` taken as uniform (an untrained network's
    outputs; trained networks skew it), rounded to sum to ``B``. Without a bias, the ``B`` most
    negative weight-row sums (distinct labels assumed).
    """
    last = next((g for g in reversed(gradients) if g.ndim >= 1 and g.shape[0] == num_classes), None)
    if last is None:
        raise InputError(f"no layer has {num_classes} outputs: cannot infer labels; pass labels= instead")
    score = last.detach().double() if last.ndim == 1 else last.detach().double().flatten(1).sum(1)
    if batch_size == 1 or last.ndim > 1:
        order = torch.argsort(score)
        return order[torch.arange(batch_size) % num_classes].long()
    counts = (batch_size * (1.0 / num_classes - score)).clamp_min(0)
    whole = counts.floor()
    remainder = batch_size - int(whole.sum())
    if remainder > 0:
        whole[torch.argsort(counts - whole, descending=True)[:remainder]] += 1
    elif remainder < 0:  # over-counted: take from the largest counts
        for _ in range(-remainder):
            whole[torch.argmax(whole)] -= 1
    return torch.repeat_interleave(torch.arange(num_classes), whole.long())


def _target_gradients(gradients: Sequence[Tensor | np.ndarray], params: list[nn.Parameter]) -> list[Tensor]:
    target = [torch.as_tensor(np.asarray(g) if not isinstance(g, Tensor) else g) for g in gradients]
    shapes = [tuple(p.shape) for p in params]
    if [tuple(g.shape) for g in target] != shapes:
        raise InputError(
            f"the gradients must match the model's trainable parameters {shapes}, got {[tuple(g.shape) for g in target]}"
        )
    return [g.detach().to(device=p.device, dtype=p.dtype) for g, p in zip(target, params, strict=True)]


def _dummy_gradients(model: nn.Module, params: list[nn.Parameter], x: Tensor, y: Tensor) -> tuple[Tensor, ...]:
    loss = F.cross_entropy(model(x), y)
    return torch.autograd.grad(loss, params, create_graph=True)


def _dlg(
    model: nn.Module, params: list[nn.Parameter], target: list[Tensor], x: Tensor, y: Tensor, steps: int, lr: float
) -> tuple[Tensor, float, int]:
    """L-BFGS on ``Σ ‖∇' − ∇‖²`` in chunks; the best finite point survives a divergence."""
    optimizer = torch.optim.LBFGS([x], lr=lr, max_iter=LBFGS_CHUNK, history_size=100, line_search_fn="strong_wolfe")

    def distance() -> Tensor:
        dummy = _dummy_gradients(model, params, x, y)
        return torch.stack([((d - t) ** 2).sum() for d, t in zip(dummy, target, strict=True)]).sum()

    def objective() -> Tensor:
        optimizer.zero_grad()
        loss = distance()
        loss.backward()
        return loss

    best, best_x, ran = float("inf"), x.detach().clone(), 0
    while ran < steps:
        optimizer.param_groups[0]["max_iter"] = min(LBFGS_CHUNK, steps - ran)
        optimizer.step(objective)
        before, ran = ran, int(optimizer.state[x].get("n_iter", 0))
        loss = float(distance().detach())
        if not np.isfinite(loss):  # L-BFGS diverged: keep the best point seen
            break
        if loss < best:
            best, best_x = loss, x.detach().clone()
        if ran == before or loss < 1e-12:  # converged (no iteration made) or an exact match
            break
    return best_x, best, ran


def _cosine(
    model: nn.Module,
    params: list[nn.Parameter],
    target: list[Tensor],
    x: Tensor,
    y: Tensor,
    steps: int,
    lr: float,
    tv_weight: float,
    signed: bool,
    bounds: tuple[float, float] | None,
) -> tuple[Tensor, float, int]:
    """Adam on ``1 − cos(∇', ∇) + tv_weight·TV(x)``, the rate cut ×0.1 at 3/8, 5/8 and 7/8 of the steps; the last point is kept."""
    optimizer = torch.optim.Adam([x], lr=lr)
    milestones = [int(steps * f) for f in (3 / 8, 5 / 8, 7 / 8)]
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    flat_target = torch.cat([t.flatten() for t in target])

    def distance() -> Tensor:
        dummy = torch.cat([d.flatten() for d in _dummy_gradients(model, params, x, y)])
        return 1 - F.cosine_similarity(dummy, flat_target, dim=0, eps=1e-12)

    for _ in range(steps):
        optimizer.zero_grad()
        loss = distance() + tv_weight * total_variation(x) if tv_weight else distance()
        (grad,) = torch.autograd.grad(loss, x)
        x.grad = grad.sign() if signed else grad
        optimizer.step()
        schedule.step()
        if bounds is not None:
            with torch.no_grad():
                x.clamp_(*bounds)
    return x.detach().clone(), float(distance().detach()), steps


def total_variation(x: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring values along the last two axes (Geiping et al.'s TV)."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def _scored(
    result: InversionResult,
    truth: Tensor | None,
    true_labels: Tensor | None,
    bounds: tuple[float, float] | None,
    num_classes: int,
) -> InversionResult:
    fields: dict[str, Any] = {}
    if true_labels is not None:
        true = torch.as_tensor(true_labels, dtype=torch.long).reshape(-1).cpu()
        fields["label_accuracy"] = quality.label_accuracy(result.labels, true, num_classes)
    if truth is not None:
        truth = torch.as_tensor(truth).detach().cpu().float()
        if truth.shape != result.reconstruction.shape:
            raise InputError(f"the ground truth must be {tuple(result.reconstruction.shape)}, got {tuple(truth.shape)}")
        data_range = bounds[1] - bounds[0] if bounds is not None else float(truth.max() - truth.min()) or 1.0
        rec = result.reconstruction[quality.match(result.reconstruction, truth)]
        per_sample = quality.psnr(rec, truth, data_range)
        ssim = quality.ssim(rec, truth, data_range)
        fields |= {
            "mse": float((rec - truth).square().mean()),
            "psnr": float(per_sample.mean()),
            "ssim": None if ssim is None else float(ssim.mean()),
            "psnr_per_sample": per_sample.numpy(),
        }
    return replace(result, **fields)
