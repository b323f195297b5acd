"""The defence half of an assessment: randomized-smoothing certificates and detector evaluation.

``modelshield assess --certify`` certifies the assessed model itself as the base classifier of a
smoothed one; ``--detectors`` fits each detector on half the evaluation data and measures it on
the other half against FGSM, PGD and C&W at the gating ε, and against an adaptive attacker.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from modelshield.assess.config import AssessConfig
from modelshield.assess.results import CertifiedPoint, DetectionRecord
from modelshield.core.model import Model

Progress = Callable[[str, int], None]


def certify_model(model: Model, x: Tensor, y: Tensor, cfg: AssessConfig, progress: Progress) -> list[CertifiedPoint]:
    """Certified accuracy against L2 radius on up to ``cfg.certify_samples`` inputs."""
    from modelshield.defenses.smoothing import certify_dataset, default_radii

    if len(x) > cfg.certify_samples:
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.certify_samples]
        x, y = x[idx.to(x.device)], y[idx.to(y.device)]
    desc = f"certify σ={cfg.sigma:g} N={cfg.n} on {len(x)} samples"
    progress(desc, 0)
    result = certify_dataset(
        model,
        x,
        y,
        cfg.sigma,
        n0=cfg.n0,
        n=cfg.n,
        alpha=cfg.cert_alpha,
        batch_size=max(cfg.batch_size, 1000),
        seed=cfg.seed,
    )
    progress(desc, 1)
    return result.curve(default_radii(cfg.sigma))


def evaluate_model_detectors(
    model: Model, x: Tensor, y: Tensor, cfg: AssessConfig, eps: float, progress: Progress
) -> list[DetectionRecord]:
    """Every requested detector against standard attacks and an adaptive one, at the gating ε."""
    from modelshield.defenses.detection import evaluate_detectors

    return evaluate_detectors(
        model,
        x,
        y,
        cfg.detectors,
        eps=eps,
        steps=cfg.pgd_steps,
        cw_steps=min(cfg.cw_steps, 50),
        seed=cfg.seed,
        progress=progress,
    )


__all__ = ["certify_model", "evaluate_model_detectors"]
