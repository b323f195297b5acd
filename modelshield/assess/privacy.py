"""``modelshield assess --demo --privacy``: membership inference against an overfit model and its DP twin.

The audit follows Jagielski et al. 2020 (https://arxiv.org/abs/2006.07709): plant canaries, train, and ask
an attack which canaries were trained on. Here the data is scikit-learn's digits with ``DEMO_CANARIES``
mislabeled canaries, each in the training set with probability ½. The *baseline* MLP is trained until it
fits every label (it must memorise the canaries to do so); its *twin* is the same MLP trained with DP-SGD
(``modelshield.privacy.dp``) to ε = ``DEMO_EPSILON`` at δ = ``DEMO_DELTA`` on the same records. Both face the
loss-threshold attack and RMIA with reference models trained by the same recipe as each target; each
row gives the attack's AUC, TPR at low FPR and the ε it demonstrates, beside the accountant's ε.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from modelshield.assess.results import PrivacyRecord, RocCurve
from modelshield.attacks.privacy import RMIA, LossThreshold, MembershipAttack, ReferenceModels, TrainFn
from modelshield.core.datasets import sklearn_dataset
from modelshield.core.model import TorchModel
from modelshield.privacy.audit import MembershipAudit, audit_twins, insert_canaries
from modelshield.privacy.dp import train_dp

if TYPE_CHECKING:
    from modelshield.defenses.training.loop import DataObserver

DEMO_CANARIES = 500
DEMO_EPSILON = 2.0
DEMO_DELTA = 1e-5
DEMO_REFERENCE_MODELS = 2
DEMO_BATCH = 256
"""The DP twin's expected Poisson batch size (a data-access monitor of its training is made for it)."""
ROC_POINTS = 160
"""At most this many vertices per ROC in report.json, spread evenly on the plot's log FPR axis."""

INPUT_SHAPE = (1, 8, 8)
CLASSES = 10
Progress = Callable[[str, int], None]


def mlp() -> nn.Module:
    """The audited architecture: a two-hidden-layer MLP on 8×8 digits, large enough to memorise canaries."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, CLASSES)
    )


def _wrap(net: nn.Module) -> TorchModel:
    return TorchModel(net.eval(), input_shape=INPUT_SHAPE, num_classes=CLASSES, bounds=(0.0, 1.0))


def train_memorising(x: Tensor, y: Tensor, seed: int = 0, steps: int = 250) -> TorchModel:
    """The deliberately overfit baseline: full-batch Adam, no regularisation, until every label is fitted."""
    torch.manual_seed(seed)
    net = mlp()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return _wrap(net)


def train_private(
    x: Tensor, y: Tensor, seed: int = 0, data_observer: DataObserver | None = None
) -> tuple[TorchModel, float]:
    """The twin: the same MLP by DP-SGD to ε = ``DEMO_EPSILON``; returns the model and the accountant's ε.

    Adam at lr 0.01 with batches of ``DEMO_BATCH``: on digits' test split 90 % at ε = 2, where SGD (lr 1–4)
    stayed near 63 %. ``data_observer`` (a data-access monitor) is told every Poisson batch it reads.
    """
    torch.manual_seed(seed)
    net, report = train_dp(
        mlp(),
        x,
        y,
        epsilon=DEMO_EPSILON,
        delta=DEMO_DELTA,
        epochs=30,
        batch_size=DEMO_BATCH,
        optimizer="adam",
        lr=1e-2,
        seed=seed,
        data_observer=data_observer,
    )
    return _wrap(net), report.epsilon


def _attacks(train_fn: TrainFn, pool_x: Tensor, pool_y: Tensor, seed: int) -> list[MembershipAttack]:
    """The loss threshold (no reference models) and RMIA with reference models of the target's own recipe."""
    refs = ReferenceModels.train(train_fn, pool_x, pool_y, n_models=DEMO_REFERENCE_MODELS, seed=seed)
    return [LossThreshold(), RMIA(refs)]


def demo_audit(
    seed: int = 0, progress: Progress | None = None, data_observer: DataObserver | None = None
) -> list[MembershipAudit]:
    """Train the baseline and its DP twin on digits with canaries, attack both, bound ε from each attack;
    ``data_observer`` watches the twin's training (the audited DP model, not its reference models)."""
    step = progress or (lambda _desc, _n: None)
    data = sklearn_dataset("digits", "all", seed=seed)
    audit = insert_canaries(data, DEMO_CANARIES, CLASSES, seed=seed)
    pool_x = torch.cat([audit.train.x, audit.canaries.x[torch.from_numpy(~audit.is_member)]])
    pool_y = torch.cat([audit.train.y, audit.canaries.y[torch.from_numpy(~audit.is_member)]])

    step("privacy: training the overfit baseline and its reference models", 0)
    baseline = train_memorising(audit.train.x, audit.train.y, seed)
    baseline_attacks = _attacks(lambda x, y: train_memorising(x, y, seed + 1), pool_x, pool_y, seed)
    step("privacy: training the overfit baseline and its reference models", 1)

    step(f"privacy: DP-SGD twin at ε={DEMO_EPSILON:g} and its reference models", 0)
    private, spent = train_private(audit.train.x, audit.train.y, seed, data_observer)
    private_attacks = _attacks(lambda x, y: train_private(x, y, seed + 1)[0], pool_x, pool_y, seed)
    step(f"privacy: DP-SGD twin at ε={DEMO_EPSILON:g} and its reference models", 1)

    x, y, member = audit.canaries.x, audit.canaries.y, audit.is_member
    return audit_twins(
        baseline, private, spent, x, y, member, baseline_attacks, private_attacks=private_attacks, delta=DEMO_DELTA
    )


def thin_roc(fpr: np.ndarray, tpr: np.ndarray, points: int = ROC_POINTS) -> tuple[list[float], list[float]]:
    """Thin a ROC to about ``points`` vertices: those at FPRs spaced evenly on a log axis, and both ends.

    At each chosen FPR the first and last vertex are kept, so the steps of a small sample's ROC keep their shape.
    """
    if len(fpr) <= points:
        return [float(v) for v in fpr], [float(v) for v in tpr]
    grid = np.geomspace(max(float(fpr[fpr > 0].min(initial=1.0)), 1e-6), 1.0, points // 2)
    keep = np.concatenate(
        [np.searchsorted(fpr, grid, "left"), np.searchsorted(fpr, grid, "right") - 1, [0, len(fpr) - 1]]
    )
    idx = np.unique(np.clip(keep, 0, len(fpr) - 1))
    return [float(v) for v in fpr[idx]], [float(v) for v in tpr[idx]]


def privacy_section(audits: Sequence[MembershipAudit]) -> tuple[list[PrivacyRecord], list[RocCurve]]:
    """report.json's ``privacy`` rows and the ROC curves the HTML report plots."""
    rows, curves = [], []
    for a in audits:
        role = "dp" if a.model == "dp" else "baseline"
        rows.append(
            PrivacyRecord(
                attack=a.attack,
                model=role,
                epsilon=a.epsilon,
                auc=a.roc.auc,
                tpr_at_fpr_0001=a.roc.tpr_at_fpr_0_001,
                tpr_at_fpr_001=a.roc.tpr_at_fpr_0_01,
                epsilon_lower_bound=a.bound.epsilon,
                delta=a.bound.delta,
                confidence=a.bound.confidence,
            )
        )
        fpr, tpr = thin_roc(a.roc.fpr, a.roc.tpr)
        curves.append(RocCurve(attack=a.attack, model=role, fpr=fpr, tpr=tpr))
    return rows, curves


def demo_privacy(
    seed: int = 0, progress: Progress | None = None, data_observer: DataObserver | None = None
) -> tuple[list[PrivacyRecord], list[RocCurve]]:
    """What ``assess --demo --privacy`` adds to the report."""
    return privacy_section(demo_audit(seed, progress, data_observer))


__all__ = [
    "DEMO_BATCH",
    "DEMO_CANARIES",
    "DEMO_DELTA",
    "DEMO_EPSILON",
    "demo_audit",
    "demo_privacy",
    "privacy_section",
    "thin_roc",
]
