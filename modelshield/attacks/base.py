"""The contract every evasion attack keeps.

An attack is configured once and called on data: ``PGD(eps=8/255, steps=10)(model, x, y)``
returns adversarial inputs with the same shape, dtype and device as ``x``, inside the model's
``bounds``. Untargeted attacks take the true labels ``y``; with ``targeted=True``, ``y`` holds
the target labels. Fixed-budget attacks stay within ``eps`` in their norm; minimum-norm attacks
(``minimal = True``: C&W, DeepFool) look for the smallest perturbation and return the input
unchanged where they fail.

Calling an attack runs it on one batch. :meth:`Attack.run` is the evaluation path: it runs the
attack batch by batch over a whole data set, keeps every per-sample figure across batches, checks
up front that a white-box attack has gradients to follow, and re-verifies every claimed success
with the model's own labels (as AutoAttack does). Randomness is drawn per sample index
(:mod:`modelshield.attacks.noise`), so for a given seed the result does not depend on the batch
size.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor

from modelshield.attacks.gradients import probe_gradients
from modelshield.attacks.losses import is_adversarial
from modelshield.attacks.noise import SampleNoise, fresh_seed
from modelshield.core.errors import InputError
from modelshield.core.model import Model

Norm = Literal["linf", "l2"]


@dataclass
class Outcome:
    """What an attack produced on one batch.

    ``claimed`` is the attack's own belief of success per sample (from the scores or labels it
    searched with), or ``None`` when the attack keeps no belief and lets the model judge.
    ``queries`` counts each sample's queries up to its first success (black-box attacks only).
    """

    x_adv: Tensor
    claimed: Tensor | None
    queries: Tensor | None = None


@dataclass
class AttackResult:
    """An attack's outcome on a whole data set, every field per sample in data order.

    Attributes:
        x_adv: (N, ...) adversarial inputs; for minimum-norm attacks the clean input wherever
            ``success`` is False.
        success: (N,) bool, verified: the model's own labels (``model.predict``) at ``x_adv``
            differ from ``y`` (untargeted) or equal the target (targeted). Count only these.
        claimed: (N,) bool, what the attack itself believed; equals ``success`` for attacks
            that keep no belief of their own (PGD/FGSM with one restart).
        queries: (N,) int64 queries spent on each sample until its first claimed success, or all
            it spent if it never succeeded (black-box attacks), else None.
        total_queries: queries the attack made (its verification not included) for black-box
            attacks, else None.
    """

    x_adv: Tensor
    success: Tensor
    claimed: Tensor
    queries: Tensor | None = None
    total_queries: int | None = None

    @property
    def n_claimed(self) -> int:
        """How many samples the attack claimed to fool."""
        return int(self.claimed.sum())

    @property
    def n_verified(self) -> int:
        """How many of those claims the model's own labels confirm."""
        return int((self.claimed & self.success).sum())


class Attack(ABC):
    """Base class: a named attack in one norm, white- or black-box."""

    name: ClassVar[str]
    norm: Norm
    black_box: ClassVar[bool] = False
    minimal: ClassVar[bool] = False
    targeted: bool = False
    eps: float | None = None
    seed: int | None = None

    def __call__(self, model: Model, x: Tensor, y: Tensor) -> Tensor:
        """Return adversarial examples for one batch ``x`` (labels or targets ``y``).

        Sample ``i`` of ``x`` draws the noise keyed by ``(seed, i)``. Black-box attacks
        leave each sample's query count in ``queries_per_sample``.
        """
        model.check_inputs(x, y)
        x = x.detach()
        out = self._attack(model, x, y, SampleNoise(self._seed(), torch.arange(x.shape[0]), x.device))
        if out.queries is not None:
            self.queries_per_sample = out.queries
        if self.minimal and out.claimed is not None:
            return torch.where(_per_sample(out.claimed, x), out.x_adv, x)
        return out.x_adv

    def run(self, model: Model, x: Tensor, y: Tensor, *, batch_size: int = 512, first_index: int = 0) -> AttackResult:
        """Attack a whole data set in batches of ``batch_size``; the result does not depend on it.

        ``first_index`` is the index of ``x[0]`` in a larger data set this is one contiguous slice of
        (a shard): each sample draws the noise of its index in the whole set, so shards run apart and
        put back together give exactly the result of one run on the whole set.

        White-box attacks first probe the model's gradients and raise
        :class:`~modelshield.attacks.errors.GradientUnavailableError` when there are none to
        follow. Memory grows with the batch, plus the (N, ...) output.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch size must be an integer ≥ 1, got {batch_size!r}")
        model.check_inputs(x, y)
        x = x.detach()
        if not self.black_box:
            probe_gradients(model, x, y)
        seed, n = self._seed(), x.shape[0]
        x_adv = torch.empty_like(x)
        success = torch.zeros(n, dtype=torch.bool, device=x.device)
        claimed = torch.zeros_like(success)
        queries = torch.zeros(n, dtype=torch.long, device=x.device) if self.black_box else None
        spent = 0
        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n))
            xb, yb = x[rows], y[rows]
            before = model.queries
            index = torch.arange(first_index + rows.start, first_index + rows.stop)
            out = self._attack(model, xb, yb, SampleNoise(seed, index, x.device))
            spent += model.queries - before
            ok = is_adversarial(model.predict(out.x_adv, batch_size), yb, self.targeted)
            x_adv[rows] = torch.where(_per_sample(ok, xb), out.x_adv, xb) if self.minimal else out.x_adv
            success[rows] = ok
            claimed[rows] = ok if out.claimed is None else out.claimed
            if queries is not None and out.queries is not None:
                queries[rows] = out.queries
        if queries is not None:
            self.queries_per_sample = queries
        return AttackResult(x_adv, success, claimed, queries, spent if self.black_box else None)

    def _seed(self) -> int:
        """The attack's seed, or one drawn from torch's global RNG when it has none."""
        return fresh_seed() if self.seed is None else int(self.seed)

    def _attack(self, model: Model, x: Tensor, y: Tensor, noise: SampleNoise) -> Outcome:
        """Attack one batch of checked, detached inputs; row ``i`` draws its randomness from ``noise`` row ``i``.

        The built-in attacks implement this. An attack written against the older contract, which
        implements ``__call__`` itself, still runs under :meth:`run`: its output is judged by the model.
        """
        if type(self).__call__ is Attack.__call__:
            raise TypeError(f"{type(self).__name__} must implement _attack (or __call__)")
        return Outcome(self(model, x, y), None)


def _per_sample(flags: Tensor, like: Tensor) -> Tensor:
    return flags.reshape((-1,) + (1,) * (like.ndim - 1))
