"""Differentially private training (DP-SGD) that is fast on ordinary PyTorch models.

Per-sample gradients are clipped by book-keeping (one forward and one backward pass, norms from each
layer's input and output gradient, :mod:`.clipping`), batches are Poisson-sampled, Gaussian noise is
added, and Google's ``dp-accounting`` tracks ε (:mod:`.accountant`). The budget spent is written into the
saved model (:mod:`.record`)::

    from modelshield.privacy.dp import train_dp, save_dp_model

    net, report = train_dp(net, x, y, epsilon=3.0, delta=1e-5, epochs=20, batch_size=128)
    save_dp_model(net, report, Path("out"))
"""

from __future__ import annotations

from modelshield.privacy.dp.accountant import ACCOUNTANTS, Accountant, epsilon, noise_for_epsilon, steps_within
from modelshield.privacy.dp.clipping import BookKeeping, ClippedBatch, per_sample_cross_entropy
from modelshield.privacy.dp.record import read_dp_metadata, registry_metadata, save_dp_model
from modelshield.privacy.dp.training import DPReport, EpochStats, plan, train_dp
from modelshield.privacy.dp.validate import check_module, replace_batchnorm

__all__ = [
    "ACCOUNTANTS",
    "Accountant",
    "BookKeeping",
    "ClippedBatch",
    "DPReport",
    "EpochStats",
    "check_module",
    "epsilon",
    "noise_for_epsilon",
    "per_sample_cross_entropy",
    "plan",
    "read_dp_metadata",
    "registry_metadata",
    "replace_batchnorm",
    "save_dp_model",
    "steps_within",
    "train_dp",
]
