"""How close a reconstruction is to the data it came from: MSE, PSNR and SSIM, per sample."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torch.nn import functional as F


def match(reconstruction: Tensor, truth: Tensor) -> Tensor:
    """The order of ``reconstruction`` that best pairs it with ``truth`` (least total MSE).

    A batch comes back from inversion in no particular order; each reconstruction is scored
    against the sample it is closest to, one to one (Hungarian assignment).
    """
    if len(truth) == 1:
        return torch.zeros(1, dtype=torch.long)
    cost = torch.cdist(reconstruction.flatten(1).double(), truth.flatten(1).double()).square()
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    order = np.empty(len(truth), dtype=np.int64)
    order[cols] = rows
    return torch.from_numpy(order)


def psnr(reconstruction: Tensor, truth: Tensor, data_range: float) -> Tensor:
    """Peak signal-to-noise ratio per sample, ``10·log10(range² / MSE)`` in dB (capped at 100 for exact copies)."""
    mse = (reconstruction - truth).double().flatten(1).square().mean(1)
    return (10 * torch.log10(data_range**2 / mse.clamp_min(data_range**2 * 1e-10))).float()


def ssim(reconstruction: Tensor, truth: Tensor, data_range: float) -> Tensor | None:
    """Structural similarity per image (Wang et al., IEEE TIP 2004), Gaussian window σ = 1.5; None for non-images.

    Images are (N, C, H, W) or (N, H, W) with sides ≥ 7; the window is 11×11 as in the paper, or
    7×7 on images smaller than that (scikit-image's default size), averaged over channels and
    the positions where it fits.
    """
    if reconstruction.ndim == 3:
        reconstruction, truth = reconstruction[:, None], truth[:, None]
    if reconstruction.ndim != 4 or min(reconstruction.shape[-2:]) < 7:
        return None
    size = 11 if min(reconstruction.shape[-2:]) >= 11 else 7
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * 1.5**2))
    window = (g[:, None] * g[None, :] / g.sum() ** 2)[None, None]
    n, c, h, w = reconstruction.shape
    x = reconstruction.double().reshape(n * c, 1, h, w)
    y = truth.double().reshape(n * c, 1, h, w)
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    var_x = F.conv2d(x * x, window) - mu_x**2
    var_y = F.conv2d(y * y, window) - mu_y**2
    cov = F.conv2d(x * y, window) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.reshape(n, -1).mean(1).float()


def label_accuracy(inferred: Tensor, truth: Tensor, num_classes: int) -> float:
    """Share of the true labels recovered, as multisets (the order of a batch is unknown)."""
    hits = torch.minimum(torch.bincount(inferred, minlength=num_classes), torch.bincount(truth, minlength=num_classes))
    return float(hits.sum()) / max(len(truth), 1)
