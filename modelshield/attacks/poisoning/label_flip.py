"""Label flipping: the training inputs stay as they are, a share of their labels is changed.

Three ways to choose what to flip, from blind to informed: at random, along chosen class pairs
(a spam filter taught that some spam is ham), and where a reference model says a flip hurts most.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from modelshield.attacks.poisoning.base import PoisonAttack, PoisonResult, check_class, mask_of, poison_count
from modelshield.core.errors import InputError

Scores = Callable[[np.ndarray], np.ndarray]


class RandomLabelFlip(PoisonAttack):
    """Flip the labels of a random share of the rows, each to a uniformly drawn other class.

    Biggio, Nelson, Laskov, "Support Vector Machines Under Adversarial Label Noise", ACML 2011,
    https://proceedings.mlr.press/v20/biggio11.html — the random-flip baseline of label-noise attacks.

    Exactly ``round(rate * N)`` rows are flipped, and every flipped label differs from the original.

    Args:
        rate: fraction of the training rows to flip, in (0, 1].
        num_classes: number of classes (default: the largest label + 1).
        seed: seed for the rows and the new labels.
    """

    name = "random-flip"

    def __init__(self, rate: float, *, num_classes: int | None = None, seed: int = 0) -> None:
        super().__init__(rate, seed=seed)
        self.num_classes = None if num_classes is None else check_class(num_classes, "num_classes")

    def _poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonResult:
        c = _classes(y, self.num_classes)
        rows = np.sort(rng.choice(len(y), poison_count(self.rate, len(y), len(y), "the training set"), replace=False))
        y_new = y.copy()
        y_new[rows] = (y[rows] + rng.integers(1, c, size=len(rows))) % c
        return _flipped(self, x, y_new, rows, target=None)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "num_classes": self.num_classes}


class TargetedLabelFlip(PoisonAttack):
    """Flip labels of chosen source classes to chosen destination classes.

    Rows are drawn uniformly from all rows whose label is a source, ``round(rate * N)`` of them,
    so ``rate`` is, as for every attack, a share of the whole training set.

    Biggio, Nelson, Laskov, "Support Vector Machines Under Adversarial Label Noise", ACML 2011,
    https://proceedings.mlr.press/v20/biggio11.html; the class-pair form is the "targeted label
    flipping" of Tolpegin et al., "Data Poisoning Attacks Against Federated Learning Systems",
    ESORICS 2020, https://arxiv.org/abs/2007.08432.

    Args:
        pairs: ``{source: destination}`` or ``[(source, destination), ...]``, one destination per source.
        rate: fraction of the training rows to flip, in (0, 1].
        seed: seed for the rows.
    """

    name = "targeted-flip"

    def __init__(self, pairs: Mapping[int, int] | Sequence[tuple[int, int]], rate: float, *, seed: int = 0) -> None:
        super().__init__(rate, seed=seed)
        items = list(pairs.items()) if isinstance(pairs, Mapping) else [tuple(p) for p in pairs]
        if not items:
            raise InputError("targeted label flipping needs at least one source:destination class pair")
        self.pairs: dict[int, int] = {}
        for pair in items:
            if len(pair) != 2:
                raise InputError(f"a class pair is (source, destination), got {pair!r}")
            src, dst = check_class(pair[0], "source class"), check_class(pair[1], "destination class")
            if src == dst or src in self.pairs:
                raise InputError(f"class pair {src}:{dst} flips a class to itself or repeats a source")
            self.pairs[src] = dst

    def _poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonResult:
        present = sorted(set(self.pairs) - set(np.unique(y).tolist()))
        if present:
            raise InputError(f"source classes {present} have no rows in the training set")
        eligible = np.flatnonzero(np.isin(y, list(self.pairs)))
        k = poison_count(self.rate, len(y), len(eligible), f"classes {sorted(self.pairs)}")
        rows = np.sort(rng.choice(eligible, k, replace=False))
        y_new = y.copy()
        y_new[rows] = [self.pairs[int(v)] for v in y[rows]]
        destinations = set(self.pairs.values())
        return _flipped(self, x, y_new, rows, target=destinations.pop() if len(destinations) == 1 else None)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "pairs": {str(k): v for k, v in self.pairs.items()}}


class LossMaxLabelFlip(PoisonAttack):
    """Flip the rows whose flip most increases a reference model's loss, each to its costliest label.

    Xiao, Xiao, Eckert, "Adversarial Label Flips Attack on Support Vector Machines", ECAI 2012,
    https://doi.org/10.3233/978-1-61499-098-7-870 — the greedy, loss-maximising flip choice; here in
    its one-shot form: a reference model gives each row's class probabilities ``p``, the gain of
    flipping row ``i`` to class ``c`` is ``log p[i, y_i] - log p[i, c]`` (the rise in its
    cross-entropy), each row takes the ``c`` with the largest gain, and the ``round(rate * N)``
    rows with the largest gains are flipped. These are the rows the model is surest about, so the
    flips pull hardest against what the clean data teaches.

    Args:
        rate: fraction of the training rows to flip, in (0, 1].
        scores: the reference model's class probabilities, ``(N, ...) -> (N, C)``; default: a
            multinomial logistic regression fitted on the clean training set (flattened).
        num_classes: number of classes (default: the largest label + 1, or the scores' width).
        seed: seed for the reference model and to break ties.
    """

    name = "lossmax-flip"

    def __init__(
        self, rate: float, *, scores: Scores | None = None, num_classes: int | None = None, seed: int = 0
    ) -> None:
        super().__init__(rate, seed=seed)
        self.scores = scores
        self.num_classes = None if num_classes is None else check_class(num_classes, "num_classes")

    def _poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonResult:
        c = _classes(y, self.num_classes)
        p = self._probabilities(x, y, c)
        log_p = np.log(np.clip(p, 1e-12, 1.0))
        others = log_p.copy()
        others[np.arange(len(y)), y] = np.inf
        worst = others.argmin(axis=1)
        gain = log_p[np.arange(len(y)), y] - others[np.arange(len(y)), worst]
        k = poison_count(self.rate, len(y), len(y), "the training set")
        order = rng.permutation(len(y))  # ties fall in random order, the largest gains first
        rows = np.sort(order[np.argsort(-gain[order], kind="stable")[:k]])
        y_new = y.copy()
        y_new[rows] = worst[rows]
        return _flipped(self, x, y_new, rows, target=None)

    def _probabilities(self, x: np.ndarray, y: np.ndarray, c: int) -> np.ndarray:
        if self.scores is not None:
            p = np.asarray(self.scores(x), dtype=np.float64)
            if p.shape != (len(y), c):
                raise InputError(f"the reference scores must be ({len(y)}, {c}) class probabilities, got {p.shape}")
            return p
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        flat = x.reshape(len(x), -1)
        if flat.dtype.kind not in "biuf":
            raise InputError("the default reference model needs numeric inputs; pass scores= for text")
        with threadpool_limits(1):  # a fit this small is fastest on one BLAS thread, and far faster on a busy machine
            ref = LogisticRegression(max_iter=1000, random_state=self.seed).fit(flat, y)
        p = np.zeros((len(y), c))
        p[:, ref.classes_] = ref.predict_proba(flat)
        return p

    def params(self) -> dict[str, Any]:
        ref = "logistic-regression" if self.scores is None else "given"
        return {**super().params(), "num_classes": self.num_classes, "reference": ref}


def _classes(y: np.ndarray, num_classes: int | None) -> int:
    c = int(y.max()) + 1 if num_classes is None else num_classes
    if c < 2:
        raise InputError("label flipping needs at least two classes")
    if int(y.max()) >= c:
        raise InputError(f"labels go up to {int(y.max())}, beyond num_classes={c}")
    return c


def _flipped(attack: PoisonAttack, x: np.ndarray, y: np.ndarray, rows: np.ndarray, target: int | None) -> PoisonResult:
    mask = mask_of(rows, len(y))
    return PoisonResult(x, y, mask, attack.name, float(mask.mean()), target, None, attack.params())
