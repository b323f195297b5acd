"""Square Attack (Andriushchenko et al. 2020): score-based random search in square windows."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from modelshield.attacks.base import Attack, Norm, Outcome
from modelshield.attacks.evasion._common import batch_view, check_count, check_fraction, check_norm, check_positive
from modelshield.attacks.losses import is_adversarial, margin
from modelshield.attacks.noise import SampleNoise
from modelshield.core.model import Model

# p is divided by these factors once the share of the budget spent passes each threshold
# (the paper's schedule for 10 000 queries, rescaled to ``n_queries``).
_TAPE = 64  # steps of per-sample random draws fetched at once

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
    a random square window (a window and signs per sample and channel, drawn for the sample's
    index, as in the authors' code) and keep the change when it lowers the margin loss. The
    window covers a fraction ``p`` of the input, halved on a fixed schedule as queries are spent.
    Searches with ``model.logits`` under ``torch.no_grad()``, so it works on black-box adapters
    (log-probabilities score the same margins); where the model's labels need not follow its
    scores (``model.labels_from_scores`` False, e.g. scikit-learn), a sample stops only once
    ``model.predict`` confirms it. Inputs that are not images are searched as a (1 × features) strip.

    Args:
        eps: perturbation budget in ``norm`` (≥ 0), in the model's input units.
        norm: ``"linf"`` (default) or ``"l2"``.
        n_queries: model queries per sample, the clean check included (default 5000).
        p_init: initial fraction of the input in a window (default 0.8 for L∞, 0.1 for L2).
        seed: seed for windows and signs, drawn per sample index (default None: one seed drawn
            from torch's global RNG per call).
        targeted: ``y`` holds target labels (default False).

    After each call, ``queries_per_sample`` (int64, (N,)) holds the queries spent on each sample
    until its first success, or all it spent if it never succeeded; it sums to the queries
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

    def _attack(self, model: Model, x: Tensor, y: Tensor, noise: SampleNoise) -> Outcome:
        lo, hi = model.bounds
        xv = _image_view(x)
        n, c, h, w = xv.shape
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        # Labels that may disagree with the scores' argmax (scikit-learn's predict): a claim is
        # confirmed with the model's own label (one more query) before a sample stops.
        confirm = not model.labels_from_scores

        def judge(cand: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
            """Margin loss (lower is better) and score-based success of candidates for samples ``rows``."""
            with torch.no_grad():
                scores = model.logits(cand.reshape((-1,) + x.shape[1:]))
            queries[rows] += 1
            m = margin(scores, y[rows])  # > 0 once y is not predicted
            return (m if self.targeted else -m), is_adversarial(scores, y[rows], self.targeted)

        def confirmed(cand: Tensor, rows: Tensor, claim: Tensor) -> Tensor:
            if not confirm or not bool(claim.any()):
                return claim
            hit = rows[claim]
            out = claim.clone()
            out[claim] = is_adversarial(model.predict(cand[claim].reshape((-1,) + x.shape[1:])), y[hit], self.targeted)
            queries[hit] += 1
            return out

        # Clean check (one query each): already-adversarial samples are done.
        everyone = torch.arange(n, device=x.device)
        loss_best, claim = judge(xv, everyone)
        done = confirmed(xv, everyone, claim)
        x_best = xv.clone()
        init = self._init_linf(xv, noise.keyed(0)) if self.norm == "linf" else self._init_l2(xv, noise.keyed(0))
        todo = torch.nonzero(~done).squeeze(1)
        if todo.numel():
            x_best[todo] = (xv[todo] + init[todo]).clamp(lo, hi)
            loss_best[todo], claim = judge(x_best[todo], todo)
            done[todo] = confirmed(x_best[todo], todo, claim)
        propose = self._propose_linf if self.norm == "linf" else self._propose_l2
        draws_per_step = (2 if self.norm == "linf" else 5) + c
        tape = xv.new_empty(0)
        for i in range(self.n_queries - 2):
            if i % _TAPE == 0:  # the next _TAPE steps' windows and signs, for every sample at once
                tape = noise.keyed(1, i // _TAPE).uniform((_TAPE, draws_per_step), dtype=torch.float64)
            todo = torch.nonzero(~done & (queries < self.n_queries)).squeeze(1)
            if todo.numel() == 0:
                break
            everyone_left = todo.numel() == n  # no row has stopped yet: work on the batch itself, not copies
            x0, xb = (xv, x_best) if everyone_left else (xv[todo], x_best[todo])
            x_new = propose(x0, xb, _p_at(self.p_init, i, self.n_queries), lo, hi, tape[todo, i % _TAPE])
            loss, adv = judge(x_new, todo)
            better = loss < loss_best[todo]
            kept = todo[better]  # only the improved rows change
            x_best.index_copy_(0, kept, x_new[better])
            loss_best[kept] = loss[better]
            done[todo] = confirmed(x_new, todo, adv & better)
        return Outcome(x_best.reshape(x.shape), done, queries)

    def _window(self, p: float, h: int, w: int, u: Tensor, minimum: int = 1) -> tuple[Tensor, int, int]:
        """Per-sample windows covering about a fraction ``p`` of an h×w input, placed by uniforms ``u`` (m, 2).

        Returns the (m, sh, sw) flat pixel indices of each sample's window, and its height and width.
        """
        if h == 1:
            sh, sw = 1, min(max(round(p * w), minimum), w)
        else:
            s = min(max(round(math.sqrt(p * h * w)), minimum), h, w)
            sh = sw = s
        top = (u[:, 0] * (h - sh + 1)).long().clamp_(max=h - sh)
        left = (u[:, 1] * (w - sw + 1)).long().clamp_(max=w - sw)
        rows = top[:, None] + torch.arange(sh, device=u.device)
        cols = left[:, None] + torch.arange(sw, device=u.device)
        return rows[:, :, None] * w + cols[:, None, :], sh, sw

    # --- L∞ (Algorithm 2) -------------------------------------------------------------------

    def _init_linf(self, x: Tensor, noise: SampleNoise) -> Tensor:
        """Vertical stripes of ±ε, one sign per sample, channel and column."""
        _, c, _, w = x.shape
        return self.eps * noise.signs((c, 1, w), dtype=x.dtype)

    def _propose_linf(self, x: Tensor, x_best: Tensor, p: float, lo: float, hi: float, draws: Tensor) -> Tensor:
        n, c, h, w = x.shape
        win, sh, sw = self._window(p, h, w, draws[:, :2])
        vals = self.eps * _signs(draws[:, 2:], x).view(n, c, 1)
        # A draw that changes nothing after clipping wastes a query: flip its signs instead.
        same = ((_take(x, win) + vals).clamp(lo, hi) - _take(x_best, win)).abs().flatten(1).amax(dim=1) < 1e-7
        vals = torch.where(batch_view(same, vals), -vals, vals)
        delta = x_best - x
        _put(delta, win, vals.expand(n, c, sh * sw))
        return delta.add_(x).clamp_(lo, hi)

    # --- L2 (Algorithm 3) -------------------------------------------------------------------

    def _to_sphere(self, delta: Tensor) -> Tensor:
        return delta * batch_view(self.eps / (delta.flatten(1).norm(dim=1) + 1e-12), delta)

    def _init_l2(self, x: Tensor, noise: SampleNoise) -> Tensor:
        """A grid of two-bump blobs with random signs (and orientation), scaled onto the ε-sphere."""
        n, c, h, w = x.shape
        bh, bw = max(h // 5, 1), max(w // 5, 1)
        delta = torch.zeros_like(x)
        top0, left0 = (h - bh * (h // bh)) // 2, (w - bw * (w // bw)) // 2
        cells = [(t, le) for t in range(top0, h - bh + 1, bh) for le in range(left0, w - bw + 1, bw)]
        draws = noise.uniform((len(cells), 1 + c), dtype=torch.float64)
        for k, (top, left) in enumerate(cells):
            blob = _patterns(bh, bw, draws[:, k, 0], x) * _signs(draws[:, k, 1:], x).view(n, c, 1, 1)
            delta[:, :, top : top + bh, left : left + bw] += blob
        return self._to_sphere(delta)

    def _propose_l2(self, x: Tensor, x_best: Tensor, p: float, lo: float, hi: float, draws: Tensor) -> Tensor:
        n, c, h, w = x.shape
        win1, sh, sw = self._window(p, h, w, draws[:, 0:2], minimum=3)
        win2, _, _ = self._window(p, h, w, draws[:, 2:4], minimum=3)
        delta = x_best - x
        both = torch.zeros((n, 1, h, w), dtype=x.dtype, device=x.device)
        _put(both, win1, 1.0)
        _put(both, win2, 1.0)
        norm_img = delta.flatten(1).norm(dim=1)
        in_win1 = _take(delta, win1)  # (n, c, sh·sw)
        norm_win1 = in_win1.norm(dim=2, keepdim=True)
        norm_both = (delta * both).flatten(2).norm(dim=2, keepdim=True)
        # New blob plus the old window content, rescaled to use the budget left plus what both windows held.
        blob = _patterns(sh, sw, draws[:, 4], x).flatten(2) * _signs(draws[:, 5:], x).view(n, c, 1)
        new = blob + in_win1 / (norm_win1 + 1e-10)
        budget = ((self.eps**2 - norm_img**2).clamp(min=0)[:, None, None] / c + norm_both**2).sqrt()
        new = new / (new.norm(dim=2, keepdim=True) + 1e-12) * budget
        _put(delta, win2, 0.0)
        _put(delta, win1, new)
        return (x + self._to_sphere(delta)).clamp_(lo, hi)


def _signs(u: Tensor, like: Tensor) -> Tensor:
    """±1 from uniforms ``u``, in ``like``'s dtype."""
    return torch.where(u < 0.5, -1.0, 1.0).to(like.dtype)


def _patterns(h: int, w: int, u: Tensor, like: Tensor) -> Tensor:
    """(m, 1, h, w) two-bump patterns; a square one is transposed for samples whose ``u`` ≥ ½."""
    pattern = _two_bump_pattern(h, w, False).to(device=like.device, dtype=like.dtype)
    out = pattern.expand(u.shape[0], 1, h, w)
    if h == w:
        out = torch.where(batch_view(u >= 0.5, out), pattern.T, out)
    return out


def _take(v: Tensor, win: Tensor) -> Tensor:
    """Each sample's window pixels: (n, c, h, w) and (n, sh, sw) flat indices -> (n, c, sh·sw)."""
    n, c = v.shape[:2]
    return v.flatten(2).gather(2, win.reshape(n, 1, -1).expand(n, c, -1))


def _put(v: Tensor, win: Tensor, values: Tensor | float) -> None:
    """Write ``values`` (n, c, sh·sw, or a number) into each sample's window of ``v``, in place."""
    n, c = v.shape[:2]
    index = win.reshape(n, 1, -1).expand(n, c, -1)
    flat = v.view(n, c, -1)
    if isinstance(values, float):
        flat.scatter_(2, index, values)
    else:
        flat.scatter_(2, index, values.to(v.dtype))
