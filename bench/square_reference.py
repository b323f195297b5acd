"""An independent, vectorised re-implementation of Square Attack L∞ as the authors run it: an accuracy reference.

torchattacks 3.5.1 and ART 1.20.1 both simplify the authors' algorithm
(https://github.com/max-andr/square-attack, ``square_attack_linf``): they draw ONE window and
ONE sign per channel for the whole batch each iteration, and never redraw a proposal that leaves
the window unchanged (a wasted query). The authors' code draws a window per image and signs per
image and channel, redrawing until the window changes. Those simplifications make both peers
weaker at small query budgets, so they cannot check modelshield's Square to 1.5 points; this
re-implementation follows the behaviour of the authors' code (vectorised over the batch, written anew in torch):

* init: vertical stripes ±ε, one sign per image, channel and column;
* each iteration: side ``s = round(sqrt(p·h·w))``, a window position per image, new ±ε signs
  per image and channel, redrawn until the window differs from the current best; accept when
  the margin loss decreases;
* p schedule: the paper's, rescaled from 10 000 iterations to ``n_iters``.

One deliberate deviation, ``authors_windows=False`` by default: the authors' code clips ``s`` to
``h − 1`` and draws the window's corner with ``np.random.randint(0, h − s)``, whose upper end is
exclusive, so no window ever covers the last row or column — those pixels keep their initial
stripe for the whole attack (15 of 64 pixels on 8×8 digits). By default windows may sit
anywhere (``s ≤ h``, corner in ``[0, h − s]``), as the paper describes; ``authors_windows=True``
reproduces the code exactly. torchattacks and ART inherit the exclusive bound.

Only ``torch.no_grad()`` forwards of the module are used. Timing it says little (it is not
tuned); the benchmark reports its robust accuracy as a fourth opinion.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _p_selection(p_init: float, it: int, n_iters: int) -> float:
    it = int(it / n_iters * 10000)
    for bound, div in (
        (10, 1),
        (50, 2),
        (200, 4),
        (500, 8),
        (1000, 16),
        (2000, 32),
        (4000, 64),
        (6000, 128),
        (8000, 256),
    ):
        if it <= bound:
            return p_init / div
    return p_init / 512


def _margin(module: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """z_y − max_{j≠y} z_j: ≤ 0 once the sample is misclassified (the authors' margin loss)."""
    with torch.no_grad():
        z = module(x).float()
    z_y = z.gather(1, y[:, None]).squeeze(1)
    return z_y - z.scatter(1, y[:, None], float("-inf")).amax(1)


def square_linf_reference(
    module: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    n_iters: int,
    p_init: float = 0.8,
    seed: int = 0,
    bounds: tuple[float, float] = (0.0, 1.0),
    authors_windows: bool = False,
) -> Tensor:
    """Untargeted L∞ Square Attack with the margin loss; returns x_adv (N, C, H, W)."""
    lo, hi = bounds
    gen = torch.Generator(device=x.device).manual_seed(seed)
    n, c, h, w = x.shape

    def signs(*shape: int) -> Tensor:
        return torch.randint(0, 2, shape, generator=gen, device=x.device).to(x.dtype).mul_(2).sub_(1)

    x_best = (x + eps * signs(n, c, 1, w)).clamp(lo, hi)
    margin_min = _margin(module, x_best, y)
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    for i_iter in range(n_iters - 1):
        idx = torch.nonzero(margin_min > 0).squeeze(1)
        if idx.numel() == 0:
            break
        xc, xb = x[idx], x_best[idx]
        m = idx.numel()
        s = int(round(math.sqrt(_p_selection(p_init, i_iter, n_iters) * h * w)))
        s = min(max(s, 1), h - 1) if authors_windows else min(max(s, 1), h, w)
        room = 0 if authors_windows else 1  # the authors' randint(0, h - s) excludes h - s
        top = torch.randint(0, h - s + room, (m,), generator=gen, device=x.device).view(m, 1, 1, 1)
        left = torch.randint(0, w - s + room, (m,), generator=gen, device=x.device).view(m, 1, 1, 1)
        win = (rows >= top) & (rows < top + s) & (cols >= left) & (cols < left + s)  # (m, 1, h, w)
        deltas = xb - xc
        # redraw the window's signs until the proposal differs from the current best
        todo = torch.ones(m, dtype=torch.bool, device=x.device)
        while bool(todo.any()):
            new = eps * signs(m, c, 1, 1)
            deltas = torch.where(win & todo.view(m, 1, 1, 1), new.expand_as(deltas), deltas)
            changed = (((xc + deltas).clamp(lo, hi) - xb).abs() * win).flatten(1).amax(1) >= 1e-7
            todo = todo & ~changed
        x_new = (xc + deltas).clamp(lo, hi)
        margin = _margin(module, x_new, y[idx])
        better = margin < margin_min[idx]
        margin_min[idx] = torch.where(better, margin, margin_min[idx])
        x_best[idx] = torch.where(better.view(m, 1, 1, 1), x_new, xb)
    return x_best
