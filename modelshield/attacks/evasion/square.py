"""Square Attack (Andriushchenko et al. 2020): score-based random search in square windows."""

from __future__ import annotations

import math
import random
from functools import lru_cache

import torch
from torch import Tensor

from modelshield.attacks.base import Attack, Norm
from modelshield.attacks.evasion._common import batch_view, check_count, check_fraction, check_norm, check_positive
from modelshield.attacks.losses import is_adversarial, margin
from modelshield.core.model import Model

# p is divided by these factors once the share of the budget spent passes each threshold
# (the paper's schedule for 10 000 queries, rescaled to ``n_queries``).
_P_SCHEDULE = ((0.001, 2), (0.005, 4), (0.02, 8), (0.05, 16), (0.1, 32), (0.2, 64), (0.4, 128), (0.6, 256), (0.8, 512))


def _p_at(p_init: float, i: int, n_queries: int) -> float:
    """Fraction of pixels changed at iteration ``i`` (piecewise-constant halving schedule)."""
    frac, div = i / n_queries, 1
    for threshold, factor in _P_SCHEDULE:
        if frac > threshold:
            div = factor
    return p_init / div


def _image_view(x: Tensor) -> Tensor:
    """Inputs as (N, C, H, W): images as they are, anything else as (N, 1, 1, features)."""
    if x.ndim == 4:
        return x
    if x.ndim == 3:
        return x.unsqueeze(2)
    return x.reshape(x.shape[0], 1, 1, -1)


def _centred_rectangle(h: int, w: int) -> Tensor:
    """Concentric rectangles with weights 1/(r+1)², unit L2 norm (the paper's pseudo-Gaussian)."""
    delta = torch.zeros(h, w, dtype=torch.float64)
    if h == 0 or w == 0:
        return delta
    ch, cw = h // 2, w // 2
    for r in range(max(ch, cw) + 1):
        delta[max(ch - r, 0) : ch + r + 1, max(cw - r, 0) : cw + r + 1] += 1.0 / (r + 1) ** 2
    return delta / delta.norm()


@lru_cache(maxsize=64)
def _two_bump_pattern(h: int, w: int, transpose: bool) -> Tensor:
    """Two pseudo-Gaussian halves of opposite sign along the longer side, unit L2 norm."""
    if transpose:
        return _two_bump_pattern(w, h, False).T.contiguous()
    delta = torch.zeros(h, w, dtype=torch.float64)
    if h >= w:
        delta[: h // 2] = _centred_rectangle(h // 2, w)
        delta[h // 2 :] = -_centred_rectangle(h - h // 2, w)
    else:
        delta[:, : w // 2] = _centred_rectangle(h, w // 2)
        delta[:, w // 2 :] = -_centred_rectangle(h, w - w // 2)
    return delta / delta.norm()


class Square(Attack):
    """Square Attack, L∞ or L2: score-based black-box random search.

    Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box
    adversarial attack via random search", ECCV 2020, https://arxiv.org/abs/1912.00049.

    Algorithms 1-3 of the paper: start from vertical stripes of ±ε (L∞) or a grid of
    pseudo-Gaussian blobs (L2) on the ε-sphere, then repeatedly redraw the perturbation inside
    one random square window (the same window for the whole batch, a random sign per sample
    and channel) and keep the change when it lowers the margin loss. The window covers a
    fraction ``p`` of the input, halved on a fixed schedule as queries are spent. Uses only
    ``model.logits`` under ``torch.no_grad()``, so it works on black-box adapters (log-probabilities
    score the same margins). Inputs that are not images are searched as a (1 × features) strip.

    Args:
        eps: perturbation budget in ``norm`` (≥ 0), in the model's input units.
        norm: ``"linf"`` (default) or ``"l2"``.
        n_queries: model queries per sample, the clean check included (default 5000).
        p_init: initial fraction of the input in a window (default 0.8 for L∞, 0.1 for L2).
        seed: seed for windows and signs (default None: fresh randomness).
        targeted: ``y`` holds target labels (default False).

    After each call, ``queries_per_sample`` (int64, (N,)) holds the queries spent on each sample
    until its first success, or all it was given if it never succeeded; it sums to the queries
    the call made. Output: same shape, dtype and device as ``x``, within ``eps``, inside bounds.

    Example::

        x_adv = Square(eps=0.3, n_queries=1000, seed=0)(model, x, y)
        robust_acc = (model.predict(x_adv) == y).float().mean()
    """

    name = "square"
    black_box = True
    eps: float

    def __init__(
        self,
        eps: float,
        *,
        norm: Norm = "linf",
        n_queries: int = 5000,
        p_init: float | None = None,
        seed: int | None = None,
        targeted: bool = False,
    ) -> None:
        self.eps = check_positive("eps", eps, allow_zero=True)
        self.norm = check_norm(norm)  # type: ignore[assignment]
        self.n_queries = check_count("n_queries", n_queries, minimum=2)
        self.p_init = check_fraction("p_init", (0.8 if norm == "linf" else 0.1) if p_init is None else p_init)
        self.seed = seed
        self.targeted = bool(targeted)
        self.queries_per_sample = torch.zeros(0, dtype=torch.long)

    def __call__(self, model: Model, x: Tensor, y: Tensor) -> Tensor:
        model.check_inputs(x, y)
        self._rng = random.Random(self.seed)
        self._gen = torch.Generator(device=x.device).manual_seed(self._rng.getrandbits(63))
        lo, hi = model.bounds
        xv = _image_view(x.detach())

        def loss_of(cand: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
            with torch.no_grad():
                scores = model.logits(cand.reshape((-1,) + x.shape[1:]))
            m = margin(scores, target)  # > 0 once y is not predicted
            return (m if self.targeted else -m), is_adversarial(scores, target, self.targeted)

        # Clean check (one query each): already-adversarial samples are done.
        loss_best, done = loss_of(xv, y)
        queries = torch.ones(x.shape[0], dtype=torch.long, device=x.device)
        x_best = xv.clone()
        todo = torch.nonzero(~done).squeeze(1)
        if todo.numel():
            init = self._init_linf(xv[todo]) if self.norm == "linf" else self._init_l2(xv[todo])
            x_best[todo] = (xv[todo] + init).clamp(lo, hi)
            loss_best[todo], done[todo] = loss_of(x_best[todo], y[todo])
            queries[todo] += 1
        for i in range(self.n_queries - 2):
            todo = torch.nonzero(~done).squeeze(1)
            if todo.numel() == 0:
                break
            x0, xb = xv[todo], x_best[todo]
            propose = self._propose_linf if self.norm == "linf" else self._propose_l2
            x_new = propose(x0, xb, _p_at(self.p_init, i, self.n_queries), lo, hi)
            loss, adv = loss_of(x_new, y[todo])
            better = loss < loss_best[todo]
            x_best[todo] = torch.where(batch_view(better, xb), x_new, xb)
            loss_best[todo] = torch.where(better, loss, loss_best[todo])
            done[todo] = adv & better
            queries[todo] += 1
        self.queries_per_sample = queries
        return x_best.reshape(x.shape)

    def _signs(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        return torch.randint(0, 2, shape, generator=self._gen, device=like.device).to(like.dtype).mul_(2).sub_(1)

    def _window(self, p: float, h: int, w: int, minimum: int = 1) -> tuple[int, int, int, int]:
        """A random window covering about a fraction ``p`` of an h×w input: (top, left, height, width)."""
        if h == 1:
            sh, sw = 1, min(max(round(p * w), minimum), w)
        else:
            s = min(max(round(math.sqrt(p * h * w)), minimum), h, w)
            sh = sw = s
        return self._rng.randint(0, h - sh), self._rng.randint(0, w - sw), sh, sw

    # --- L∞ (Algorithm 2) -------------------------------------------------------------------

    def _init_linf(self, x: Tensor) -> Tensor:
        """Vertical stripes of ±ε, one sign per sample, channel and column."""
        n, c, _, w = x.shape
        return self.eps * self._signs((n, c, 1, w), x)

    def _propose_linf(self, x: Tensor, x_best: Tensor, p: float, lo: float, hi: float) -> Tensor:
        n, c, h, w = x.shape
        top, left, sh, sw = self._window(p, h, w)
        win = (slice(None), slice(None), slice(top, top + sh), slice(left, left + sw))
        vals = self.eps * self._signs((n, c, 1, 1), x)
        # A draw that changes nothing after clipping wastes a query: flip its signs instead.
        same = ((x[win] + vals).clamp(lo, hi) - x_best[win]).abs().flatten(1).amax(dim=1) < 1e-7
        vals = torch.where(batch_view(same, vals), -vals, vals)
        delta = x_best - x
        delta[win] = vals
        return (x + delta).clamp_(lo, hi)

    # --- L2 (Algorithm 3) -------------------------------------------------------------------

    def _pattern(self, h: int, w: int, like: Tensor) -> Tensor:
        transpose = h == w and self._rng.random() > 0.5
        return _two_bump_pattern(h, w, transpose).to(device=like.device, dtype=like.dtype)

    def _to_sphere(self, delta: Tensor) -> Tensor:
        return delta * batch_view(self.eps / (delta.flatten(1).norm(dim=1) + 1e-12), delta)

    def _init_l2(self, x: Tensor) -> Tensor:
        """A grid of two-bump blobs with random signs, scaled onto the ε-sphere."""
        n, c, h, w = x.shape
        bh, bw = max(h // 5, 1), max(w // 5, 1)
        delta = torch.zeros_like(x)
        top0, left0 = (h - bh * (h // bh)) // 2, (w - bw * (w // bw)) // 2
        for top in range(top0, h - bh + 1, bh):
            for left in range(left0, w - bw + 1, bw):
                blob = self._pattern(bh, bw, x) * self._signs((n, c, 1, 1), x)
                delta[:, :, top : top + bh, left : left + bw] += blob
        return self._to_sphere(delta)

    def _propose_l2(self, x: Tensor, x_best: Tensor, p: float, lo: float, hi: float) -> Tensor:
        n, c, h, w = x.shape
        t1, l1, sh, sw = self._window(p, h, w, minimum=3)
        t2, l2, _, _ = self._window(p, h, w, minimum=3)
        win1 = (slice(None), slice(None), slice(t1, t1 + sh), slice(l1, l1 + sw))
        win2 = (slice(None), slice(None), slice(t2, t2 + sh), slice(l2, l2 + sw))
        delta = x_best - x
        both = torch.zeros_like(delta[:1, :1])
        both[win1] = 1.0
        both[win2] = 1.0
        norm_img = delta.flatten(1).norm(dim=1)
        norm_win1 = delta[win1].flatten(2).norm(dim=2)[..., None, None]
        norm_both = (delta * both).flatten(2).norm(dim=2)[..., None, None]
        # New blob plus the old window content, rescaled to use the budget left plus what both windows held.
        new = self._pattern(sh, sw, x) * self._signs((n, c, 1, 1), x) + delta[win1] / (norm_win1 + 1e-10)
        budget = ((self.eps**2 - norm_img**2).clamp(min=0)[:, None, None, None] / c + norm_both**2).sqrt()
        new = new / (new.flatten(2).norm(dim=2)[..., None, None] + 1e-12) * budget
        delta[win2] = 0.0
        delta[win1] = new
        return (x + self._to_sphere(delta)).clamp_(lo, hi)
