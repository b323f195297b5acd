"""Checks that tell whether an assessment's robust accuracy can be trusted.

In the spirit of AutoAttack's flags (Croce & Hein 2020) and Carlini et al.'s evaluation
checklist (arXiv:1902.06705): gradient masking, randomness, probability outputs, attacks that
break their budget, non-monotone ε curves, black-box beating white-box, unbounded attacks that
fail to reach ~100%.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from modelshield.assess.results import AssessmentResult, SanityFlag
from modelshield.attacks.base import Attack
from modelshield.core.model import Model

_SUBSET = 256
_TOL = 0.02


@dataclass
class SanityContext:
    """Everything the checks look at: the model, the data, the result and the adversarials."""

    model: Model
    x: Tensor
    y: Tensor
    result: AssessmentResult
    adversarials: list[tuple[Attack, Tensor, Tensor]]
    """(attack, the inputs it was given, the adversarials it returned) for every run."""


def _input_gradients(model: Model, x: Tensor, y: Tensor) -> Tensor | None:
    """The cross-entropy loss gradient for each input; None when the output does not depend on it differentiably."""
    x = x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model.logits(x), y, reduction="sum")
    if not loss.requires_grad:
        return None
    (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
    return grad


def zero_gradients(ctx: SanityContext) -> SanityFlag | None:
    """Samples whose loss gradient is exactly zero (or missing) can't be attacked by gradients: masking."""
    if not ctx.model.white_box:
        return None
    grad = _input_gradients(ctx.model, ctx.x[:_SUBSET], ctx.y[:_SUBSET])
    usable = (
        torch.zeros(len(ctx.x[:_SUBSET]), dtype=torch.bool) if grad is None else grad.flatten(1).abs().amax(dim=1) > 0
    )
    frac = float((~usable).float().mean())
    return SanityFlag(
        name="zero-gradients",
        passed=frac <= 0.05,
        detail=f"{frac:.1%} of samples have an all-zero, non-finite or missing input gradient"
        + ("; gradient-based attacks cannot move them (gradient masking?)" if frac > 0.05 else ""),
    )


def randomised_outputs(ctx: SanityContext) -> SanityFlag:
    """A model that answers differently to the same input needs EOT attacks, or numbers lie."""
    x = ctx.x[:_SUBSET]
    with torch.no_grad():
        answer = ctx.model.logits if ctx.model.has_scores else ctx.model.predict
        a, b = answer(x).float(), answer(x).float()
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    return SanityFlag(
        name="randomised-outputs",
        passed=diff <= 1e-4,
        detail=f"max score difference between two identical queries: {diff:.2e}"
        + ("; use expectation-over-transformation attacks" if diff > 1e-4 else ""),
    )


def label_like_scores(ctx: SanityContext) -> SanityFlag | None:
    """Scores that take two values per sample (one-hot of the argmax) give Square's margin no signal: it
    degrades to blind search, so its robust accuracy is overstated (score masking)."""
    if not ctx.model.has_scores or not any(r.attack == "square" for r in ctx.result.attacks):
        return None
    with torch.no_grad():
        s = ctx.model.logits(ctx.x[:_SUBSET]).float()
    if not len(s):
        return None
    low, high = s.amin(dim=1, keepdim=True), s.amax(dim=1, keepdim=True)
    two_valued = ((s == low) | (s == high)).all(dim=1) & ((s == high).sum(dim=1) == 1)
    frac = float(two_valued.float().mean())
    return SanityFlag(
        name="label-like-scores",
        passed=frac <= 0.5,
        detail=f"{frac:.1%} of samples get one-hot (label-like) scores"
        + (
            "; Square's margin gets no signal, so its robust accuracy is overstated: trust HopSkipJump"
            if frac > 0.5
            else ""
        ),
    )


def probability_outputs(ctx: SanityContext) -> SanityFlag | None:
    """White-box models should return logits; softmax outputs flatten the cross-entropy gradient."""
    if not ctx.model.white_box:
        return None
    with torch.no_grad():
        s = ctx.model.logits(ctx.x[:_SUBSET])
    probs = bool((s >= 0).all() and torch.allclose(s.sum(dim=1), torch.ones(len(s), device=s.device), atol=1e-4))
    return SanityFlag(
        name="probability-outputs",
        passed=not probs,
        detail="the model returns probabilities, not logits: pass logits to attacks"
        if probs
        else "the model returns unnormalised scores (logits)",
    )


def budget_respected(ctx: SanityContext) -> SanityFlag:
    """Every fixed-budget adversarial stays inside its ε ball and the input bounds."""
    lo, hi = ctx.model.bounds
    worst: list[str] = []
    for attack, src, x_adv in ctx.adversarials:
        eps = attack.eps
        if eps is None:
            continue
        d = (x_adv - src).flatten(1)
        size = d.abs().amax(dim=1) if attack.norm == "linf" else d.norm(dim=1)
        if (
            float(size.max()) > eps * (1 + 1e-4) + 1e-6
            or float(x_adv.min()) < lo - 1e-6
            or float(x_adv.max()) > hi + 1e-6
        ):
            worst.append(f"{attack.name}/{attack.norm}@{eps:g}")
    return SanityFlag(
        name="budget-respected",
        passed=not worst,
        detail="every adversarial example is inside its ε ball and the input bounds"
        if not worst
        else f"attacks left their budget or bounds: {', '.join(worst)}",
    )


def monotone_in_eps(ctx: SanityContext) -> SanityFlag | None:
    """Robust accuracy must not rise as ε grows; if it does, an attack is not converging."""
    bad = []
    for name, norm in {
        (r.attack, r.norm) for r in ctx.result.attacks if r.eps is not None and r.attack in ("pgd", "fgsm")
    }:
        curve = sorted((r.eps, r.robust_accuracy) for r in ctx.result.attacks if (r.attack, r.norm) == (name, norm))
        for (e0, a0), (e1, a1) in itertools.pairwise(curve):
            if a1 > a0 + _TOL:
                bad.append(f"{name}/{norm}: {a0:.3f} at ε={e0:g} but {a1:.3f} at ε={e1:g}")
    if not ctx.result.attacks:
        return None
    return SanityFlag(
        name="monotone-in-eps",
        passed=not bad,
        detail="robust accuracy falls (or holds) as ε grows" if not bad else "; ".join(bad),
    )


def black_box_beats_white_box(ctx: SanityContext) -> SanityFlag | None:
    """A black-box attack doing better than gradients at the same ε signals gradient masking."""
    gate = ctx.result.gating.get("eps")
    at_gate = [r for r in ctx.result.attacks if r.norm == "linf" and r.eps == gate]
    white = [r.robust_accuracy for r in at_gate if r.queries is None]
    black = [r.robust_accuracy for r in at_gate if r.queries is not None]
    if not white or not black:
        return None
    gap = min(white) - min(black)
    return SanityFlag(
        name="black-box-beats-white-box",
        passed=gap <= _TOL,
        detail=f"at ε={gate:g}: best white-box robust accuracy {min(white):.3f}, black-box {min(black):.3f}"
        + ("; gradients are likely masked, trust the black-box figure" if gap > _TOL else ""),
    )


def unbounded_attacks_succeed(ctx: SanityContext) -> SanityFlag | None:
    """Minimum-norm attacks have no budget, so they should fool nearly every sample."""
    minimal = [r for r in ctx.result.attacks if r.eps is None and r.queries is None]
    if not minimal or ctx.result.clean_accuracy == 0:  # no correctly classified sample: nothing to fool
        return None
    weak = [f"{r.attack} {r.success_rate:.1%}" for r in minimal if r.success_rate < 0.95]
    return SanityFlag(
        name="unbounded-attacks-succeed",
        passed=not weak,
        detail="minimum-norm attacks fooled ≥95% of correctly classified samples"
        if not weak
        else f"unbounded attacks should reach ~100% success but got {', '.join(weak)}",
    )


CHECKS = (
    zero_gradients,
    randomised_outputs,
    label_like_scores,
    probability_outputs,
    budget_respected,
    monotone_in_eps,
    black_box_beats_white_box,
    unbounded_attacks_succeed,
)


def run_sanity_checks(ctx: SanityContext) -> list[SanityFlag]:
    """Every check that applies to this model and result."""
    return [flag for check in CHECKS if (flag := check(ctx)) is not None]
