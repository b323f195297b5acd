"""What a poisoning did to a model: clean accuracy, attack success rate and poison rate.

The model is anything with a predict function over numpy inputs (``estimator.predict``, or a
wrapper around a network), so the same measure serves scikit-learn and PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from modelshield.attacks.poisoning.base import PoisonResult
from modelshield.core.errors import InputError

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PoisonEvaluation:
    """A poisoned model's measures.

    Attributes:
        clean_accuracy: accuracy on the clean test set.
        attack_success_rate: what the attack set out to do, per kind of attack:
            backdoors: the fraction of test inputs *not* of the target class that the triggered
            input sends to the target; clean-label attacks: the fraction of the attack's victims
            classified as the target; label flips (no trigger, no victims): the test error rate,
            ``1 - clean_accuracy``, since their aim is to degrade the model as a whole.
        poison_rate: the fraction of training rows the attack touched.
        n_attacked: how many test inputs the attack success rate counts over.
    """

    clean_accuracy: float
    attack_success_rate: float
    poison_rate: float
    n_attacked: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def evaluate_poisoning(
    predict: Predict, result: PoisonResult, x_test: np.ndarray, y_test: np.ndarray
) -> PoisonEvaluation:
    """Measure a model trained on ``result.x, result.y`` against the clean test set ``(x_test, y_test)``.

    ``predict`` maps inputs shaped like ``x_test`` to class labels.
    """
    y_test = np.asarray(y_test)
    if len(x_test) == 0 or len(x_test) != len(y_test):
        raise InputError(f"the test set needs one label per input: {len(x_test)} inputs, {len(y_test)} labels")
    clean = _labels(predict, x_test)
    accuracy = float(np.mean(clean == y_test))
    if result.trigger is not None and result.target is not None:
        others = np.flatnonzero(y_test != result.target)
        if len(others) == 0:
            raise InputError(
                f"every test input is of the target class {result.target}: the backdoor cannot be measured"
            )
        hits = _labels(predict, result.trigger.apply(np.asarray(x_test)[others])) == result.target
        return PoisonEvaluation(accuracy, float(hits.mean()), result.poison_rate, len(others))
    if result.victims is not None and result.target is not None:
        hits = _labels(predict, result.victims) == result.target
        return PoisonEvaluation(accuracy, float(hits.mean()), result.poison_rate, len(result.victims))
    return PoisonEvaluation(accuracy, 1.0 - accuracy, result.poison_rate, len(y_test))


def _labels(predict: Predict, x: np.ndarray) -> np.ndarray:
    labels = np.asarray(predict(x))
    if labels.shape != (len(x),):
        raise InputError(
            f"predict must return one label per input: {len(x)} inputs gave an array of shape {labels.shape}"
        )
    return labels
