"""Equation-solving extraction of linear softmax models (Tramèr et al., "Stealing Machine Learning Models via
Prediction APIs", USENIX Security 2016, arXiv:1609.02943, section 4.1).

A logistic regression answers ``p = softmax(W·x + b)``. Every answered query gives, for each class k,
one linear equation in the unknowns: ``log p_k(x) − log p_0(x) = (w_k − w_0)·x + (b_k − b_0)``. With
d + 1 queries in general position the (d + 1) × (d + 1) system has one solution, which is the model
itself up to the softmax's per-class shift (only differences between classes are identifiable, and
they are all the model's predictions depend on). Binary logistic regression is the case of two classes:
the logit ``log(p / (1 − p))`` is linear in x. More queries than d + 1 are solved in least squares: for
a non-linear victim that gives its best linear-softmax approximation, not the model.

Needs the victim's probabilities; a label-only victim raises ``CapabilityError`` (Tramèr's label-only
attacks are retraining attacks: use :class:`~modelshield.attacks.extraction.knockoff.KnockoffNets`).
"""

from __future__ import annotations

from math import prod
from typing import Literal

import numpy as np
import torch
from numpy.typing import ArrayLike

from modelshield.attacks.extraction.base import (
    EvalSet,
    ExtractionResult,
    Oracle,
    QueryCallback,
    QueryStop,
    Tracker,
    stolen_model,
)
from modelshield.attacks.extraction.substitutes import LinearSoftmax, arch_of
from modelshield.core.errors import CapabilityError, InputError
from modelshield.core.model import Model

_TINY = float(np.finfo(np.float32).tiny)


class EquationSolving:
    """Recover a linear softmax (logistic regression) victim exactly from d + 1 probability queries.

    Args:
        queries: how many samples to ask about; None = d + 1, the fewest that determine the model.
        design: ``axes`` (default) asks the centre of the input box and one step of half its width along each
            axis, which keeps the system well conditioned (float32 answers then give parameters to ~1e-6);
            ``random`` draws every point uniformly in the box, the paper's design. Queries beyond d + 1 are
            uniform in the box either way.
        seed: draws the random query points.
        batch_size: samples per request to the victim.

    Example::

        result = EquationSolving()(SklearnModel(lr, input_shape=(30,)), evaluation=EvalSet(x_test, y_test))
        result.details["parameter_error"]  # with reference=(lr.coef_, lr.intercept_)
    """

    name = "equation"

    def __init__(
        self,
        *,
        queries: int | None = None,
        design: Literal["axes", "random"] = "axes",
        seed: int = 0,
        batch_size: int = 256,
    ) -> None:
        if design not in ("axes", "random"):
            raise InputError(f"design must be axes or random, not {design!r}")
        self.queries = queries
        self.design = design
        self.seed = seed
        self.batch_size = batch_size

    def __call__(
        self,
        victim: Model,
        *,
        budget: int | None = None,
        evaluation: EvalSet | None = None,
        on_query: QueryCallback | None = None,
        reference: tuple[ArrayLike, ArrayLike] | None = None,
        record: bool = False,
    ) -> ExtractionResult:
        """Query, solve, and return the recovered model; ``reference`` = the true (coef, intercept) to score it."""
        d = prod(victim.input_shape)
        wanted = self.queries if self.queries is not None else d + 1
        if wanted < d + 1:
            raise InputError(f"equation solving needs at least d + 1 = {d + 1} queries, got {wanted}")
        limit = wanted if budget is None else min(budget, wanted)
        if evaluation is not None:  # asked before the attack: not charged to its budget
            evaluation = evaluation.labelled(victim)
        oracle = Oracle(victim, limit, batch_size=self.batch_size, use_scores=True, on_query=on_query, record=record)
        tracker = Tracker(self.name, oracle, evaluation)
        net = LinearSoftmax(victim.input_shape, victim.num_classes)
        arch = arch_of(net, input_shape=list(victim.input_shape), num_classes=victim.num_classes)
        x = self._design(limit, d, victim)
        xs, ps = [], []
        try:
            if not oracle.soft:
                raise CapabilityError(
                    "equation solving needs the victim's probabilities; this victim answers with labels only",
                    hint="use the knockoff or jacobian attack, which learn from labels",
                )
            answers = oracle.ask(x)
            xs.append(answers.x)
            ps.append(answers.targets)
        except QueryStop:
            pass  # the oracle knows why; what was answered is solved below
        details: dict[str, object] = {"unknowns_per_class": d + 1}
        if xs and sum(len(a) for a in xs) >= d + 1:
            weight, bias = solve_linear_softmax(torch.cat(xs).reshape(-1, d).double(), torch.cat(ps).double())
            with torch.no_grad():
                net.linear.weight.copy_(weight)
                net.linear.bias.copy_(bias)
            details["solved"] = True
            if reference is not None:
                details["parameter_error"] = parameter_error(weight.numpy(), bias.numpy(), *reference)
        else:
            details["solved"] = False
        reason = oracle.stop_reason
        if reason == "budget" and limit == wanted:
            reason = "complete"  # it asked for exactly what it needed
        return tracker.result(net, stolen_model(net, victim), reason, arch, details)

    def _design(self, n: int, d: int, victim: Model) -> torch.Tensor:
        lo, hi = victim.bounds
        rng = np.random.default_rng(self.seed)
        if self.design == "random":
            points = rng.uniform(lo, hi, size=(n, d))
        else:  # the box's centre, then one step along each axis: a well-conditioned system
            points = np.full((n, d), (lo + hi) / 2)
            points[1 : d + 1] += np.eye(d)[: n - 1] * (hi - lo) / 2
            points[d + 1 :] = rng.uniform(lo, hi, size=(max(n - d - 1, 0), d))
        return torch.from_numpy(points.astype(np.float32)).reshape(n, *victim.input_shape)


def solve_linear_softmax(x: torch.Tensor, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, d) weights and (C,) biases, class 0 pinned to zero, from inputs (n, d) and probabilities (n, C).

    Solved in float64 by least squares (exact when n = d + 1 and the inputs are in general position).
    """
    logp = torch.log(probs.clamp_min(_TINY))
    z = logp[:, 1:] - logp[:, :1]  # (n, C-1): log-odds against class 0
    design = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
    theta = torch.linalg.lstsq(design, z, driver="gelsd").solution  # (d+1, C-1)
    c = probs.shape[1]
    weight = torch.zeros(c, x.shape[1], dtype=x.dtype)
    bias = torch.zeros(c, dtype=x.dtype)
    weight[1:] = theta[:-1].T
    bias[1:] = theta[-1]
    return weight, bias


def parameter_error(weight: np.ndarray, bias: np.ndarray, coef: ArrayLike, intercept: ArrayLike) -> float:
    """Largest error in the identifiable parameters (differences to class 0), relative to their largest size.

    ``coef``/``intercept`` as scikit-learn stores them: (1, d)/(1,) for a binary model (class 1 against
    class 0), (C, d)/(C,) for a multinomial one.
    """
    true_w, true_b = np.atleast_2d(np.asarray(coef, dtype=np.float64)), np.atleast_1d(np.asarray(intercept, float))
    if true_w.shape[0] == 1:
        true_w, true_b = np.vstack([np.zeros_like(true_w), true_w]), np.concatenate([[0.0], true_b])
    true_theta = np.hstack([true_w - true_w[:1], (true_b - true_b[:1])[:, None]])
    got_theta = np.hstack([weight - weight[:1], (bias - bias[:1])[:, None]])
    if true_theta.shape != got_theta.shape:
        raise InputError(f"reference parameters have shape {true_theta.shape}, the recovered ones {got_theta.shape}")
    return float(np.abs(got_theta - true_theta).max() / max(np.abs(true_theta).max(), 1e-12))
