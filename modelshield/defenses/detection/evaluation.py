"""Detector evaluation: ROC AUC and TPR at a fixed FPR, against standard and adaptive attacks.

A detector that catches FGSM/PGD/C&W examples made without knowledge of it can still be evaded
by an attacker who optimises against it (Carlini & Wagner 2017). ``evaluate_detectors`` reports
both, row by row, so a good non-adaptive AUC is never read as security on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from modelshield.attacks.base import Attack
from modelshield.attacks.evasion import FGSM, PGD, CarliniWagnerL2
from modelshield.core.errors import InputError
from modelshield.core.model import Model
from modelshield.defenses.detection.adaptive import AdaptivePGD
from modelshield.defenses.detection.base import Detector
from modelshield.defenses.detection.confidence import EnergyDetector, MaxSoftmaxDetector
from modelshield.defenses.detection.lid import LIDDetector
from modelshield.defenses.detection.mahalanobis import MahalanobisDetector
from modelshield.defenses.detection.squeezing import FeatureSqueezing
from modelshield.defenses.results import DEFAULT_DETECTORS, DetectionRecord

DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls for cls in (FeatureSqueezing, MahalanobisDetector, LIDDetector, EnergyDetector, MaxSoftmaxDetector)
}
EVAL_ATTACKS = ("fgsm", "pgd", "cw")
FPR = 0.05

Progress = Callable[[str, int], None]


def make_detector(name: str, model: Model) -> Detector:
    """A detector by name with its default settings."""
    if name not in DETECTORS:
        raise InputError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")
    return DETECTORS[name](model)


def roc_auc(clean: np.ndarray, adversarial: np.ndarray) -> float:
    """Probability that a random adversarial input outscores a random clean one (ties count ½)."""
    if clean.size == 0 or adversarial.size == 0:
        raise InputError("AUC needs at least one clean and one adversarial score")
    both = np.concatenate([clean, adversarial])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    sorted_scores = both[order]
    # average ranks over ties (1-based)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2
    u = ranks[len(clean) :].sum() - len(adversarial) * (len(adversarial) + 1) / 2
    return float(u / (len(clean) * len(adversarial)))


def tpr_at_fpr(clean: np.ndarray, adversarial: np.ndarray, fpr: float = FPR) -> float:
    """Share of adversarial inputs above the threshold that lets through ``fpr`` of clean ones."""
    threshold = np.quantile(clean, 1 - fpr, method="higher")
    return float((adversarial > threshold).mean())


def _split(n: int, seed: int) -> tuple[Tensor, Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n // 2], order[n // 2 :]


def _attack(name: str, eps: float, steps: int, cw_steps: int, seed: int) -> Attack:
    if name == "fgsm":
        return FGSM(eps=eps)
    if name == "pgd":
        return PGD(eps=eps, steps=steps, seed=seed)
    if name == "cw":
        return CarliniWagnerL2(steps=cw_steps, lr=0.1, binary_search_steps=4)
    raise InputError(f"unknown evaluation attack {name!r}; choose from {', '.join(EVAL_ATTACKS)}")


def _record(detector: Detector, attack: str, adaptive: bool, clean: np.ndarray, adv: np.ndarray) -> DetectionRecord:
    if adv.size == 0:
        return DetectionRecord(name=detector.name, attack=attack, adaptive=adaptive, auc=None, tpr_at_fpr_005=None)
    return DetectionRecord(
        name=detector.name,
        attack=attack,
        adaptive=adaptive,
        auc=roc_auc(clean, adv),
        tpr_at_fpr_005=tpr_at_fpr(clean, adv),
        samples=int(adv.size),
    )


def evaluate_detectors(
    model: Model,
    x: Tensor,
    y: Tensor,
    names: Sequence[str] = DEFAULT_DETECTORS,
    *,
    eps: float,
    steps: int = 20,
    cw_steps: int = 50,
    attacks: Sequence[str] = EVAL_ATTACKS,
    adaptive: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[DetectionRecord]:
    """Fit each detector on one half of ``(x, y)``, then score the other half clean and attacked.

    Adversarial examples are made from correctly classified inputs of the evaluation half and
    only successful ones are scored (a failed attack is not an adversarial input). With
    ``adaptive``, each detector also faces :class:`AdaptivePGD` at the same ``eps``.
    """
    tick = progress or (lambda _desc, _n: None)
    if len(x) < 40:
        raise InputError(f"detector evaluation needs at least 40 labelled samples, got {len(x)}")
    x, y = x.to(model.device), y.to(model.device)
    fit_idx, eval_idx = _split(len(x), seed)
    x_fit, y_fit, x_eval, y_eval = x[fit_idx], y[fit_idx], x[eval_idx], y[eval_idx]
    correct = model.predict(x_eval) == y_eval
    x_ok, y_ok = x_eval[correct], y_eval[correct]
    detectors = []
    for name in names:
        tick(f"fit detector {name}", 0)
        detectors.append(make_detector(name, model).fit(x_fit, y_fit).calibrate(x_eval))
    clean_scores = {d.name: d.score(x_eval) for d in detectors}
    records: list[DetectionRecord] = []
    for attack_name in attacks:
        tick(f"detectors vs {attack_name}", 0)
        torch.manual_seed(seed)
        x_adv = _attack(attack_name, eps, steps, cw_steps, seed)(model, x_ok, y_ok)
        fooled = model.predict(x_adv) != y_ok
        for d in detectors:
            records.append(_record(d, attack_name, False, clean_scores[d.name], d.score(x_adv[fooled])))
        tick(f"detectors vs {attack_name}", 1)
    if adaptive:
        for d in detectors:
            tick(f"adaptive attack on {d.name}", 0)
            x_adv = AdaptivePGD(d, eps, steps=max(steps, 40), seed=seed)(model, x_ok, y_ok)
            fooled = model.predict(x_adv) != y_ok
            records.append(_record(d, "adaptive-pgd", True, clean_scores[d.name], d.score(x_adv[fooled])))
            tick(f"adaptive attack on {d.name}", 1)
    for d in detectors:
        tick(f"fit detector {d.name}", 1)
    return records


__all__ = [
    "DEFAULT_DETECTORS",
    "DETECTORS",
    "EVAL_ATTACKS",
    "evaluate_detectors",
    "make_detector",
    "roc_auc",
    "tpr_at_fpr",
]
