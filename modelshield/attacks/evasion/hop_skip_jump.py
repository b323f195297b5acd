"""HopSkipJump (Chen, Jordan, Wainwright 2020): decision-based attack from predicted labels only."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from modelshield.attacks.base import Attack, Norm, Outcome
from modelshield.attacks.evasion._common import batch_view, check_count, check_norm, check_positive
from modelshield.attacks.evasion._norms import ball_class
from modelshield.attacks.losses import is_adversarial
from modelshield.attacks.noise import SampleNoise
from modelshield.core.model import Model

_INIT_TRIES = 50  # random draws per sample when looking for a first adversarial
_MAX_HALVINGS = 25  # cap on the geometric step-size search
_PROBE_ELEMENTS = 2**24  # probes per chunk × input size, bounding memory in gradient estimation


class HopSkipJump(Attack):
    """HopSkipJump, L2 or L∞: a decision-based attack that needs only predicted labels.

    Chen, Jordan, Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack",
    IEEE S&P 2020, https://arxiv.org/abs/1904.02144.

    Algorithm 2 of the paper, batched over samples: find a first adversarial point (uniform
    noise, up to 50 draws), then repeat (1) binary search between ``x`` and it to the decision
    boundary, (2) estimate the boundary's normal from ``B_t = min(init_evals·√t, max_evals)``
    random probes around the boundary point (Monte-Carlo sign estimate with a baseline), and
    (3) step along it with a geometrically shrinking step size ``ξ_t = dist/√t`` until the point
    is adversarial again. Uses only ``model.predict``.

    Args:
        norm: ``"l2"`` (default) or ``"linf"``.
        max_queries: label queries per sample (default 1000); a sample stops once it has spent
            them (its last iteration may overrun by its binary and step-size searches).
        eps: when given, a sample stops as soon as its perturbation is within ``eps`` and the
            attack returns adversarials only there (the input elsewhere). Default None: return
            every adversarial found, whatever its size.
        init_evals: probes for the first gradient estimate (default 100).
        max_evals: cap on the probes per estimate (default 1000).
        gamma: sets the binary-search tolerance ``θ = γ/d^{3/2}`` (L2) or ``γ/d²`` (L∞) (default 1.0).
        seed: seed for all random draws, drawn per sample index (default None: one seed drawn
            from torch's global RNG per call).
        targeted: ``y`` holds target labels (default False).

    After each call, ``queries_per_sample`` (int64, (N,)) holds each sample's queries until its
    first success (adversarial found; within ``eps`` when ``eps`` is given), or all it spent if it
    never succeeded. Output: same shape, dtype and device as ``x``, inside the bounds.

    Example::

        x_adv = HopSkipJump(max_queries=2000, seed=0)(label_only_model, x, y)
        l2 = (x_adv - x).flatten(1).norm(dim=1)
    """

    name = "hopskipjump"
    black_box = True

    def __init__(
        self,
        norm: Norm = "l2",
        *,
        max_queries: int = 1000,
        eps: float | None = None,
        init_evals: int = 100,
        max_evals: int = 1000,
        gamma: float = 1.0,
        seed: int | None = None,
        targeted: bool = False,
    ) -> None:
        self.norm = check_norm(norm)  # type: ignore[assignment]
        self.max_queries = check_count("max_queries", max_queries)
        self.eps = None if eps is None else check_positive("eps", eps, allow_zero=True)
        self.init_evals = check_count("init_evals", init_evals)
        self.max_evals = check_count("max_evals", max_evals)
        self.gamma = check_positive("gamma", gamma)
        self.seed = seed
        self.targeted = bool(targeted)
        self.queries_per_sample = torch.zeros(0, dtype=torch.long)

    # --- the oracle ----------------------------------------------------------------------------

    def _phi(self, cand: Tensor, owner: Tensor) -> Tensor:
        """Is each candidate adversarial for the sample it belongs to? Counts one query per row."""
        self._queries.index_add_(0, owner, torch.ones_like(owner))
        return is_adversarial(self._model.predict(cand), self._y[owner], self.targeted)

    # --- the attack ----------------------------------------------------------------------------

    def _attack(self, model: Model, x: Tensor, y: Tensor, noise: SampleNoise) -> Outcome:
        self._model, self._y, self._noise = model, y, noise
        self._lo, self._hi = model.bounds
        n, d = x.shape[0], x[0].numel()
        self._queries = torch.zeros(n, dtype=torch.long, device=x.device)
        first = torch.full_like(self._queries, -1)  # queries at first success
        self._theta = self.gamma / (d * math.sqrt(d)) if self.norm == "l2" else self.gamma / d**2
        dist_fn = ball_class(self.norm).norm

        everyone = torch.arange(n, device=x.device)
        clean_adv = self._phi(x, everyone)
        found, x_adv = self._initialise(x, everyone[~clean_adv])
        if self.eps is None:
            first = torch.where(found | clean_adv, self._queries, first)
        else:
            first = torch.where(clean_adv, self._queries, first)
        best = x.clone()
        best_dist = torch.where(clean_adv, 0.0, float("inf")).to(x.dtype)
        active = everyone[found]
        for t in range(1, self.max_queries + 1):
            active = active[self._queries[active] < self.max_queries]
            if active.numel() == 0:
                break
            x0 = x[active]
            boundary = self._binary_search(x0, x_adv[active], active)
            dist = dist_fn(boundary - x0)
            closer = dist < best_dist[active]
            best[active] = torch.where(batch_view(closer, x0), boundary, best[active])
            best_dist[active] = torch.minimum(dist, best_dist[active])
            if self.eps is not None:
                hit = dist <= self.eps
                first[active[hit]] = self._queries[active[hit]]
                keep = ~hit & (self._queries[active] < self.max_queries)
                active, x0, boundary, dist = (active[keep], x0[keep], boundary[keep], dist[keep])
                if active.numel() == 0:
                    break
            grad = self._estimate_direction(boundary, active, dist, t)
            x_adv[active] = self._jump(boundary, grad, dist / math.sqrt(t), active)

        queries = torch.where(first >= 0, first, self._queries)
        ok = torch.isfinite(best_dist) & (best_dist <= (self.eps if self.eps is not None else float("inf")))
        return Outcome(torch.where(batch_view(ok, x), best, x), ok, queries)

    def _initialise(self, x: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """A first adversarial for samples ``idx``: uniform noise in the bounds, several draws."""
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        x_adv = x.clone()
        for attempt in range(_INIT_TRIES):
            todo = idx[~found[idx]]
            if todo.numel() == 0:
                break
            draw = self._noise.rows(todo).keyed(0, attempt).uniform(x.shape[1:], dtype=x.dtype)
            draw = draw * (self._hi - self._lo) + self._lo
            hit = self._phi(draw, todo)
            x_adv[todo[hit]] = draw[hit]
            found[todo[hit]] = True
        return found, x_adv

    def _towards(self, x0: Tensor, x1: Tensor, alpha: Tensor) -> Tensor:
        """Points between ``x0`` (alpha=0) and ``x1``: a blend for L2, a clip to an alpha-box for L∞."""
        a = batch_view(alpha, x0)
        if self.norm == "l2":
            return (1 - a) * x0 + a * x1
        return torch.maximum(torch.minimum(x1, x0 + a), x0 - a)

    def _binary_search(self, x0: Tensor, x1: Tensor, owner: Tensor) -> Tensor:
        """The boundary point between clean ``x0`` and adversarial ``x1`` (adversarial side)."""
        if self.norm == "l2":
            high = torch.ones(x0.shape[0], device=x0.device, dtype=x0.dtype)
            tol = torch.full_like(high, self._theta)
        else:
            high = ball_class("linf").norm(x1 - x0)
            tol = (high * self._theta).clamp(max=self._theta)
        low = torch.zeros_like(high)
        while True:
            open_ = torch.nonzero((high - low) > tol).squeeze(1)
            if open_.numel() == 0:
                break
            mid = (high[open_] + low[open_]) / 2
            adv = self._phi(self._towards(x0[open_], x1[open_], mid), owner[open_])
            high[open_] = torch.where(adv, mid, high[open_])
            low[open_] = torch.where(adv, low[open_], mid)
        return self._towards(x0, x1, high)

    def _estimate_direction(self, boundary: Tensor, owner: Tensor, dist: Tensor, t: int) -> Tensor:
        """Monte-Carlo estimate of the boundary normal (pointing to the adversarial side).

        Each sample uses ``B_t`` probes, fewer when its query budget has less left, drawn from
        its own noise; samples with equal probe counts are estimated together.
        """
        d = boundary[0].numel()
        remaining = self.max_queries - self._queries[owner]
        evals = remaining.clamp(min=1, max=min(int(self.init_evals * math.sqrt(t)), self.max_evals))
        if t == 1:
            delta = torch.full_like(dist, 0.1 * (self._hi - self._lo))
        else:
            delta = (math.sqrt(d) if self.norm == "l2" else d) * self._theta * dist
        g = torch.empty_like(boundary)
        for k in evals.unique().tolist():
            group = torch.nonzero(evals == k).squeeze(1)
            chunk = max(1, _PROBE_ELEMENTS // (k * d))
            for s in range(0, group.numel(), chunk):
                rows = group[s : s + chunk]
                g[rows] = self._probe_mean(boundary[rows], owner[rows], delta[rows], k, t)
        if self.norm == "linf":
            return g.sign()
        return g / batch_view(g.flatten(1).norm(dim=1) + 1e-12, g)

    def _probe_mean(self, b: Tensor, owner: Tensor, delta: Tensor, evals: int, t: int) -> Tensor:
        """Mean of ``evals`` random unit probes around ``b`` weighted by their (baselined) ±1 answers."""
        noise = self._noise.rows(owner).keyed(1, t)
        if self.norm == "l2":
            rv = noise.normal((evals, *b.shape[1:]), dtype=b.dtype)
        else:
            rv = noise.uniform((evals, *b.shape[1:]), dtype=b.dtype).mul_(2).sub_(1)
        per_probe = (b.shape[0], evals) + (1,) * (b.ndim - 1)
        rv = rv / rv.flatten(2).norm(dim=2).view(per_probe)
        dl_v = delta.view((-1, 1) + (1,) * (b.ndim - 1))
        probes = (b.unsqueeze(1) + dl_v * rv).clamp_(self._lo, self._hi)
        rv = (probes - b.unsqueeze(1)) / dl_v
        fval = self._phi(probes.flatten(0, 1), owner.repeat_interleave(evals)).view(-1, evals).to(b.dtype) * 2 - 1
        mean = fval.mean(dim=1, keepdim=True)
        fval = torch.where(mean.abs() < 1, fval - mean, fval)  # baseline, unless all probes agree
        return (fval.view(per_probe) * rv).mean(dim=1)

    def _jump(self, boundary: Tensor, direction: Tensor, step: Tensor, owner: Tensor) -> Tensor:
        """Step along ``direction`` from the boundary, halving the step until adversarial again."""
        out = boundary.clone()
        todo = torch.arange(boundary.shape[0], device=boundary.device)
        for _ in range(_MAX_HALVINGS):
            cand = (boundary[todo] + batch_view(step[todo], boundary[todo]) * direction[todo]).clamp(self._lo, self._hi)
            adv = self._phi(cand, owner[todo])
            out[todo[adv]] = cand[adv]
            todo = todo[~adv]
            todo = todo[self._queries[owner[todo]] < self.max_queries]  # a sample out of budget stops here
            if todo.numel() == 0:
                break
            step = step.clone()
            step[todo] /= 2
        return out
