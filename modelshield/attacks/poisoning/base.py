"""The contract every poisoning attack keeps, shared with the poisoning defences and ingestion.

A poisoning attack is configured once and called on a training set: ``BadNets(target=0,
rate=0.1, seed=1).poison(x, y)`` returns a :class:`PoisonResult` holding the poisoned training
inputs and labels, a mask of the rows it touched and, for backdoors, the trigger to stamp on test
inputs. Arrays go in and come out as numpy, so the same result trains a scikit-learn estimator or
a PyTorch network. Every random choice comes from ``numpy.random.default_rng(seed)``: one seed,
one result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from modelshield.core.errors import InputError


@runtime_checkable
class Trigger(Protocol):
    """What a backdoor stamps on an input at test time to call up its target class."""

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Return triggered copies of the inputs ``x`` (N, ...); ``x`` itself is left untouched."""
        ...


@dataclass(frozen=True, eq=False)  # arrays inside: equality is identity
class PoisonResult:
    """A poisoned training set and what was done to it.

    Attributes:
        x: (N, ...) poisoned training inputs: the clean rows unchanged, poisoned rows altered
            (backdoors, clean-label attacks) or not (label flips).
        y: (N,) int64 training labels after the attack.
        poisoned: (N,) bool, the rows the attack touched: the ground truth a detector is scored on.
        attack: the attack's name (``"badnets"``, ``"random-flip"`` ...).
        poison_rate: the fraction of rows touched, ``poisoned.mean()``.
        target: the class the attack drives inputs to (backdoors, clean-label attacks, targeted
            flips with a single destination), else None.
        trigger: stamps the backdoor on test inputs (``trigger.apply(x_test)``); None for attacks
            without a trigger (label flips, clean-label attacks).
        params: the attack's settings, JSON-ready, for a sidecar file.
        victims: (M, ...) the test inputs a targeted clean-label attack aims at (they should be
            classified as ``target`` once the model trains on ``x``), else None.
    """

    x: np.ndarray
    y: np.ndarray
    poisoned: np.ndarray
    attack: str
    poison_rate: float
    target: int | None
    trigger: Trigger | None
    params: Mapping[str, Any] = field(default_factory=dict)
    victims: np.ndarray | None = None

    @property
    def indices(self) -> np.ndarray:
        """Indices of the poisoned rows, ascending."""
        return np.flatnonzero(self.poisoned)

    def sidecar(self) -> dict[str, Any]:
        """What a reader needs to know about the poison, JSON-ready (the mask as row indices)."""
        return {
            "attack": self.attack,
            "poison_rate": self.poison_rate,
            "n_rows": int(len(self.y)),
            "n_poisoned": int(self.poisoned.sum()),
            "target": self.target,
            "params": dict(self.params),
            "poisoned_indices": [int(i) for i in self.indices],
        }


class PoisonAttack(ABC):
    """Base class: a named attack that poisons a share ``rate`` of a training set."""

    name: ClassVar[str]

    def __init__(self, rate: float, *, seed: int = 0) -> None:
        self.rate = check_rate(rate)
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise InputError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)

    def poison(self, x: np.ndarray, y: np.ndarray) -> PoisonResult:
        """Poison the training set ``(x, y)``; the inputs are copied, never changed in place."""
        x, y = check_training_set(x, y)
        return self._poison(x, y, np.random.default_rng(self.seed))

    @abstractmethod
    def _poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonResult:
        """Poison checked copies of the training set, drawing every random choice from ``rng``."""

    def params(self) -> dict[str, Any]:
        """The attack's settings, JSON-ready (overridden where an attack has more)."""
        return {"rate": self.rate, "seed": self.seed}


def check_rate(rate: float, what: str = "rate") -> float:
    """A poison rate in (0, 1]."""
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.floating) or not 0 < float(rate) <= 1:
        raise InputError(f"{what} must be a fraction in (0, 1], got {rate!r}")
    return float(rate)


def check_class(value: int, what: str = "target") -> int:
    """A class index ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 0:
        raise InputError(f"{what} must be a class index ≥ 0, got {value!r}")
    return int(value)


def check_training_set(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Copies of a training set: ``x`` (N, ...) and integer labels ``y`` (N,)."""
    x = np.array(x, copy=True)
    y = np.asarray(y)
    if x.ndim < 1 or len(x) == 0:
        raise InputError("the training set is empty")
    if y.ndim != 1 or len(y) != len(x):
        raise InputError(f"labels must be one per sample: {len(x)} inputs, labels of shape {y.shape}")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.array_equal(y, np.round(y))):
        raise InputError("labels must be integer class indices")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise InputError(f"labels must be class indices 0..C-1, found {int(y.min())}")
    return x, y


def poison_count(rate: float, n: int, available: int, what: str) -> int:
    """How many rows a rate asks for out of ``n``, refused when fewer than that are ``available``."""
    k = int(round(rate * n))
    if k < 1:
        raise InputError(f"a poison rate of {rate:g} touches no row of {n}; raise it to at least {1 / n:.2g}")
    if k > available:
        raise InputError(f"a poison rate of {rate:g} needs {k} rows of {what}, but only {available} exist")
    return k


def mask_of(indices: np.ndarray, n: int) -> np.ndarray:
    """A bool mask of length ``n`` that is True at ``indices``."""
    mask = np.zeros(n, dtype=bool)
    mask[indices] = True
    return mask
