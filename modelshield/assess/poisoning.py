"""How much a share of poison moves a model, and how much a defence wins back (``report.json``'s ``poisoning``).

For each scenario (an attack, and the defences to try against it): poison the training set, train
a model on it and measure it against the clean test set (clean accuracy, attack success rate);
then, for each defence, fit its detector on the poisoned training set, drop the rows it flags,
train again on what is left and measure again, and score the flagged rows against the known
poison mask (precision, recall, F1).

The model family is the caller's: ``fit(dataset) -> TorchModel`` trains one from scratch. This
module sits in ``assess``, below the demo, so the demo's trainer is handed in by the CLI::

    from modelshield.assess.poisoning import assess_poisoning
    from modelshield.core.model import TorchModel
    from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES, train_digits_cnn

    def fit(ds):
        net = train_digits_cnn(ds, seed=seed)
        return TorchModel(net, input_shape=DEMO_INPUT_SHAPE, num_classes=DEMO_NUM_CLASSES, bounds=(0.0, 1.0))

    rows = assess_poisoning(train, test, fit, seed=seed)  # train/test: digits' train and test splits
    result.poisoning = [PoisoningRecord(**row) for row in rows]

Without ``scenarios`` it runs :func:`demo_scenarios`: BadNets at 10 % against STRIP, random label
flips at 20 % against confident learning (cleanlab), four trainings in all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from modelshield.attacks.poisoning import BadNets, PoisonAttack, PoisonResult, RandomLabelFlip, evaluate_poisoning
from modelshield.core.datasets import Dataset
from modelshield.core.errors import InputError
from modelshield.core.model import TorchModel
from modelshield.defenses.poisoning import PoisonDetector, evaluate_detection

Fit = Callable[[Dataset], TorchModel]
DetectorFactory = Callable[[TorchModel, float], PoisonDetector]
"""Builds a detector from the poisoned model and the poison share the defender assumes at most."""


def _strip(model: TorchModel, bound: float) -> PoisonDetector:
    from modelshield.defenses.poisoning.strip import STRIP

    # fitted on the training set itself, STRIP flags its lowest-entropy share: 1.5× the assumed
    # bound, the same margin as Tran et al.'s removal rule, so the whole poison fits under it
    return STRIP(model, frr=min(1.5 * bound, 0.49))


def _spectral(model: TorchModel, bound: float) -> PoisonDetector:
    from modelshield.defenses.poisoning.spectral import SpectralSignatures

    return SpectralSignatures(model, eps=bound)


def _clustering(model: TorchModel, bound: float) -> PoisonDetector:
    from modelshield.defenses.poisoning.clustering import ActivationClustering

    return ActivationClustering(model)


def _confident(model: TorchModel, bound: float) -> PoisonDetector:
    from modelshield.defenses.poisoning.labels import ConfidentLearning

    return ConfidentLearning()


def _mad(model: TorchModel, bound: float) -> PoisonDetector:
    from modelshield.defenses.poisoning.robust import MADScreen

    return MADScreen(per_class=True)


def _isolation_forest(model: TorchModel, bound: float) -> PoisonDetector:
    from modelshield.defenses.poisoning.outliers import IsolationForestScreen

    return IsolationForestScreen(contamination=bound)


#: defence name → how it is built for a poisoned model (every detector of modelshield.defenses.poisoning that
#: screens a training set)
DEFENCES: dict[str, DetectorFactory] = {
    "strip": _strip,
    "spectral-signatures": _spectral,
    "activation-clustering": _clustering,
    "confident-learning": _confident,
    "mad": _mad,
    "isolation-forest": _isolation_forest,
}


@dataclass(frozen=True)
class Scenario:
    """One attack and the defences to measure against it (none: the undefended row alone).

    ``assumed_rate`` is the poison share the defender plans for (detectors with a budget, such as
    STRIP's rejection rate and spectral signatures' ε, are sized from it); default the attack's rate.
    """

    attack: PoisonAttack
    defences: tuple[str, ...] = ()
    assumed_rate: float | None = None

    def __post_init__(self) -> None:
        unknown = [d for d in self.defences if d not in DEFENCES]
        if unknown:
            raise InputError(f"unknown poisoning defence {unknown[0]!r}; choose from {', '.join(DEFENCES)}")


def demo_scenarios(seed: int = 0) -> list[Scenario]:
    """The issue's two measures on digits: 10 % BadNets (target 0) against STRIP, 20 % random flips against cleanlab."""
    return [
        Scenario(BadNets(target=0, rate=0.1, seed=seed), ("strip",)),
        Scenario(RandomLabelFlip(0.2, seed=seed), ("confident-learning",)),
    ]


def assess_poisoning(
    train: Dataset,
    test: Dataset,
    fit: Fit,
    scenarios: Sequence[Scenario] | None = None,
    *,
    seed: int = 0,
    blas_threads: int | None = 1,
) -> list[dict[str, Any]]:
    """Rows of ``report.json``'s ``poisoning`` list, one per (scenario, defence), or one per undefended scenario.

    Args:
        train: the clean training set the attacks poison.
        test: the clean test set every model is measured on.
        fit: trains a fresh model on a dataset (called once per attack and once per defence).
        scenarios: what to measure (default :func:`demo_scenarios` with ``seed``).
        seed: seed of the default scenarios.
        blas_threads: BLAS threads for the scikit-learn fits inside detectors (default 1: fits this small
            run fastest on one, and many times faster on a busy machine); None leaves BLAS as it is.

    Each row: ``attack``, ``poison_rate``, ``clean_accuracy``, ``attack_success_rate`` (backdoors: share
    of non-target test inputs the trigger sends to the target; label flips: the test error rate),
    ``defence`` (None when none ran) and, after the defence, ``defended_attack_success_rate``,
    ``defended_clean_accuracy``, ``detection_precision``, ``detection_recall``, ``detection_f1``.
    """
    if blas_threads is None:
        return _assess(train, test, fit, scenarios if scenarios is not None else demo_scenarios(seed))
    with threadpool_limits(blas_threads):
        return _assess(train, test, fit, scenarios if scenarios is not None else demo_scenarios(seed))


def _assess(train: Dataset, test: Dataset, fit: Fit, scenarios: Sequence[Scenario]) -> list[dict[str, Any]]:
    x, y = train.x.numpy(), train.y.numpy()
    x_test, y_test = test.x.numpy(), test.y.numpy()
    rows: list[dict[str, Any]] = []
    for scenario in scenarios:
        poison = scenario.attack.poison(x, y)
        model = fit(_dataset(poison.x, poison.y, train))
        before = evaluate_poisoning(_predict(model), poison, x_test, y_test)
        row: dict[str, Any] = {
            "attack": poison.attack,
            "poison_rate": poison.poison_rate,
            "clean_accuracy": before.clean_accuracy,
            "attack_success_rate": before.attack_success_rate,
            "defence": None,
            "defended_attack_success_rate": None,
            "defended_clean_accuracy": None,
            "detection_precision": None,
            "detection_recall": None,
            "detection_f1": None,
        }
        if not scenario.defences:
            rows.append(row)
        bound = scenario.assumed_rate or poison.poison_rate
        for name in scenario.defences:
            rows.append({**row, **_defend(name, bound, model, poison, fit, train, x_test, y_test)})
    return rows


def _defend(
    name: str,
    bound: float,
    model: TorchModel,
    poison: PoisonResult,
    fit: Fit,
    train: Dataset,
    x_test: np.ndarray,
    y_test: np.ndarray,
) -> dict[str, Any]:
    """Screen the poisoned set with one defence, retrain on the rows it keeps, measure both."""
    flagged = np.asarray(DEFENCES[name](model, bound).fit_predict(poison.x, poison.y), dtype=bool)
    keep = ~flagged
    if not keep.any():
        raise InputError(f"the {name} defence flagged every training row: nothing is left to retrain on")
    detection = evaluate_detection(flagged, poison.poisoned, name)
    after = evaluate_poisoning(_predict(fit(_dataset(poison.x[keep], poison.y[keep], train))), poison, x_test, y_test)
    return {
        "defence": name,
        "defended_attack_success_rate": after.attack_success_rate,
        "defended_clean_accuracy": after.clean_accuracy,
        "detection_precision": detection.precision,
        "detection_recall": detection.recall,
        "detection_f1": detection.f1,
    }


def _dataset(x: np.ndarray, y: np.ndarray, like: Dataset) -> Dataset:
    return Dataset(
        torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y), like.name, like.bounds, like.class_names
    )


def _predict(model: TorchModel) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: model.predict(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))).cpu().numpy()
