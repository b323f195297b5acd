"""What a curious server could rebuild from the updates of a federation like this one, with and without its
protections: a gradient-inversion probe for the federated report.

Each of ``clients`` clients computes one FedSGD gradient on one of its images; the server sees either each
gradient (no SecAgg), only their sum (SecAgg+), or clipped and noised ones (DP with client-side noise, at the
run's noise multiplier; under SecAgg each client adds its 1/√k share). Inverting Gradients (Geiping et al. 2020)
then tries to rebuild client 0's image, scored by PSNR and whether its label came out right. The probe uses a
small untrained sigmoid MLP on 8×8 inputs — the attacker's best case (Zhu et al. 2019), not the federation's own
network: it says what the protections take away from an attacker who gets that far, not how exposed a given
trained model is. ``attacks.federated`` does the work; this only runs its views for the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from modelshield.attacks.federated import invert_gradients, server_view, update_norm


def _gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[np.ndarray]:
    loss = nn.functional.cross_entropy(model(x), y)
    return [g.detach().numpy() for g in torch.autograd.grad(loss, list(model.parameters()))]


def inversion_probe(
    x: np.ndarray, y: np.ndarray, *, clients: int, noise_multiplier: float, seed: int = 0, steps: int = 600
) -> list[dict[str, Any]]:
    """PSNR (dB) and label recovery of client 0's image under each view the server may have.

    ``x`` holds (N, 1, 8, 8) or (N, 64) images in [0, 1] with labels ``y``; the first ``clients`` are used."""
    k = max(2, min(clients, len(x)))
    torch.manual_seed(seed)
    xs = torch.as_tensor(x[:k], dtype=torch.float32).reshape(k, 1, 8, 8)
    ys = torch.as_tensor(y[:k], dtype=torch.long)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 10))
    grads = [_gradient(model, xs[i : i + 1], ys[i : i + 1]) for i in range(k)]
    clip = float(np.median([update_norm(g) for g in grads]))
    rng = np.random.default_rng(seed)
    views: list[tuple[str, list[np.ndarray]]] = [
        ("one client's update (no SecAgg, no DP)", server_view(grads)[0]),
        (f"SecAgg+ sum of {k} clients", [g / k for g in server_view(grads, secagg=True)[0]]),
    ]
    if noise_multiplier > 0:
        noisy = server_view(grads, clip=clip, noise_multiplier=noise_multiplier, rng=rng)[0]
        views.append((f"client-side DP noise z = {noise_multiplier:g}", noisy))
    rows = []
    for name, seen in views:
        r = invert_gradients(
            model,
            seen,
            input_shape=(1, 8, 8),
            num_classes=10,
            method="cosine",
            steps=steps,
            bounds=(0.0, 1.0),
            seed=seed,
            ground_truth=xs[:1],
            true_labels=ys[:1],
        )
        rows.append({"view": name, "psnr_db": r.psnr, "label_recovered": bool(r.label_accuracy == 1.0)})
    return rows


__all__ = ["inversion_probe"]
