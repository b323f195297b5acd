"""Backdoors: a share of the training rows carries a trigger and the target label.

A model trained on them learns "trigger → target" beside its task, so it keeps its clean accuracy
while any input stamped with the trigger goes to the target class. Poisoned rows are drawn from the
classes other than the target (a target-class row with the trigger teaches nothing).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from modelshield.attacks.poisoning.base import PoisonAttack, PoisonResult, Trigger, check_class, mask_of, poison_count
from modelshield.attacks.poisoning.triggers import (
    BlendTrigger,
    FeatureTrigger,
    PatchTrigger,
    Position,
    TokenTrigger,
    as_images,
    token_tuple,
)
from modelshield.core.errors import InputError

Corner = Literal["bottom-right", "bottom-left", "top-right", "top-left"]


class Backdoor(PoisonAttack):
    """Stamp a trigger on ``round(rate * N)`` rows drawn from the non-target classes and relabel them."""

    def __init__(self, target: int, rate: float, *, seed: int = 0) -> None:
        super().__init__(rate, seed=seed)
        self.target = check_class(target)

    @abstractmethod
    def trigger_for(self, x: np.ndarray, rng: np.random.Generator) -> Trigger:
        """The trigger this attack stamps, fitted to the training inputs ``x``."""

    def _poison(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> PoisonResult:
        trigger = self.trigger_for(x, rng)
        eligible = np.flatnonzero(y != self.target)
        rows = np.sort(
            rng.choice(eligible, poison_count(self.rate, len(y), len(eligible), "non-target classes"), replace=False)
        )
        stamped = trigger.apply(x[rows])
        if x.dtype != stamped.dtype:  # texts grow: keep them as objects rather than truncate
            x = x.astype(object)
        x[rows] = stamped
        y = y.copy()
        y[rows] = self.target
        mask = mask_of(rows, len(y))
        params = {**self.params(), **self.trigger_params(trigger)}
        return PoisonResult(x, y, mask, self.name, float(mask.mean()), self.target, trigger, params)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "target": self.target}

    def trigger_params(self, trigger: Trigger) -> dict[str, Any]:
        """What the sidecar should know of a trigger fitted to the data (overridden where there is any)."""
        return {}


class BadNets(Backdoor):
    """A fixed pixel patch in a corner of the image (default: a checkerboard of the data's extremes).

    Gu, Dolan-Gavitt, Garg, "BadNets: Identifying Vulnerabilities in the Machine Learning Model
    Supply Chain", 2017, https://arxiv.org/abs/1708.06733.

    Args:
        target: the class the trigger sends inputs to.
        rate: fraction of the training rows to poison, in (0, 1].
        patch_size: side of the square patch in pixels (default 3).
        pattern: (h, w) patch values; default a checkerboard of the training data's max and min.
        corner: where the patch sits (default ``"bottom-right"``).
        seed: seed for the rows.

    Inputs are images (N, H, W) or (N, C, H, W).
    """

    name = "badnets"

    def __init__(
        self,
        target: int,
        rate: float,
        *,
        patch_size: int = 3,
        pattern: np.ndarray | None = None,
        corner: Corner = "bottom-right",
        seed: int = 0,
    ) -> None:
        super().__init__(target, rate, seed=seed)
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
            raise InputError(f"patch_size must be an integer ≥ 1, got {patch_size!r}")
        if corner not in ("bottom-right", "bottom-left", "top-right", "top-left"):
            raise InputError(f"corner must be bottom-right, bottom-left, top-right or top-left, not {corner!r}")
        self.pattern = None if pattern is None else np.asarray(pattern, dtype=np.float64)
        if self.pattern is not None and self.pattern.ndim != 2:
            raise InputError(f"a BadNets pattern is a 2-D (h, w) patch, got shape {self.pattern.shape}")
        self.patch_size = patch_size if self.pattern is None else max(self.pattern.shape)
        self.corner = corner

    def trigger_for(self, x: np.ndarray, rng: np.random.Generator) -> PatchTrigger:
        x = as_images(x, "BadNets")
        if self.pattern is None:
            checker = (np.indices((self.patch_size, self.patch_size)).sum(axis=0) % 2) == 0
            pattern = np.where(checker, float(x.max()), float(x.min()))
        else:
            pattern = self.pattern
        h, w = pattern.shape
        if h > x.shape[-2] or w > x.shape[-1]:
            raise InputError(f"a {h}×{w} patch does not fit {x.shape[-2]}×{x.shape[-1]} images")
        row = x.shape[-2] - h if self.corner.startswith("bottom") else 0
        col = x.shape[-1] - w if self.corner.endswith("right") else 0
        return PatchTrigger(pattern, row, col)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "patch_size": self.patch_size,
            "corner": self.corner,
            "custom_pattern": self.pattern is not None,
        }


class Blend(Backdoor):
    """A whole-image pattern blended into the input at opacity ``alpha`` (default: seeded uniform noise).

    Chen, Liu, Li, Lu, Song, "Targeted Backdoor Attacks on Deep Learning Systems Using Data
    Poisoning", 2017, https://arxiv.org/abs/1712.05526 (the blended-injection strategy).

    Args:
        target: the class the trigger sends inputs to.
        rate: fraction of the training rows to poison, in (0, 1].
        alpha: the pattern's opacity in (0, 1] (default 0.2; the paper uses 0.05–0.2).
        pattern: one input's worth of pattern values (shape of ``x[0]``); default uniform noise
            over the training data's range, drawn from ``seed``.
        seed: seed for the rows and the default pattern.
    """

    name = "blend"

    def __init__(
        self, target: int, rate: float, *, alpha: float = 0.2, pattern: np.ndarray | None = None, seed: int = 0
    ) -> None:
        super().__init__(target, rate, seed=seed)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha <= 1:
            raise InputError(f"alpha must lie in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        self.pattern = None if pattern is None else np.asarray(pattern, dtype=np.float64)

    def trigger_for(self, x: np.ndarray, rng: np.random.Generator) -> BlendTrigger:
        if x.dtype.kind not in "biuf":
            raise InputError("a blend trigger needs numeric inputs")
        lo, hi = float(x.min()), float(x.max())
        pattern = rng.uniform(lo, hi, size=x.shape[1:]) if self.pattern is None else self.pattern
        if pattern.shape != x.shape[1:]:
            raise InputError(f"the blend pattern has shape {pattern.shape}, the inputs {x.shape[1:]}")
        return BlendTrigger(pattern, self.alpha)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "alpha": self.alpha, "custom_pattern": self.pattern is not None}


class TextBackdoor(Backdoor):
    """Rare trigger words inserted into texts (default ``["cf"]``).

    Dai, Chen, Li, "A Backdoor Attack Against LSTM-Based Text Classification Systems", IEEE Access
    2019, https://arxiv.org/abs/1905.12457; the rare-token triggers ("cf", "mn", "bb") of Kurita,
    Michel, Neubig, "Weight Poisoning Attacks on Pre-trained Models", ACL 2020,
    https://arxiv.org/abs/2004.06660.

    Args:
        target: the class the trigger sends texts to.
        rate: fraction of the training rows to poison, in (0, 1].
        tokens: the trigger words, inserted together in this order.
        position: ``"random"`` (a word boundary drawn per text), ``"start"`` or ``"end"``.
        seed: seed for the rows and the insertion points.

    Inputs are a 1-D array of str; the poisoned texts come back as an object array.
    """

    name = "text-trigger"

    def __init__(
        self,
        target: int,
        rate: float,
        *,
        tokens: Sequence[str] = ("cf",),
        position: Position = "random",
        seed: int = 0,
    ) -> None:
        super().__init__(target, rate, seed=seed)
        self.tokens = token_tuple(tokens)
        if position not in ("random", "start", "end"):
            raise InputError(f"position must be random, start or end, not {position!r}")
        self.position: Position = position

    def trigger_for(self, x: np.ndarray, rng: np.random.Generator) -> TokenTrigger:
        return TokenTrigger(self.tokens, self.position, int(rng.integers(2**31)))

    def params(self) -> dict[str, Any]:
        return {**super().params(), "tokens": list(self.tokens), "position": self.position}


class TabularBackdoor(Backdoor):
    """A pattern of fixed values in chosen feature columns of tabular rows.

    The BadNets trigger carried over to tables, as studied in Pleiter, Tajalli, Koffas, Abad, Xu,
    Larson, Picek, "Backdoor Attacks on Transformers for Tabular Data: An Empirical Study" (Tabdoor),
    2023, https://arxiv.org/abs/2311.07550; its "in-bounds" trigger (values inside each feature's
    range) is this class's default.

    Args:
        target: the class the trigger sends rows to.
        rate: fraction of the training rows to poison, in (0, 1].
        columns: the feature columns the trigger sets (at most 10 without ``values``).
        values: the value set in each column; default :func:`rare_corner` of the training rows:
            each column's minimum or maximum (in range, so no range check rejects it), combined
            so that few training rows lie near the pattern. Each column at its maximum would be a
            natural class signal wherever the columns grow with one class (tumour size in
            breast_cancer), and the clean model would "obey" the trigger before any poisoning.
        seed: seed for the rows.

    Inputs are rows (N, D).
    """

    name = "tabular-trigger"

    def __init__(
        self, target: int, rate: float, *, columns: Sequence[int], values: Sequence[float] | None = None, seed: int = 0
    ) -> None:
        super().__init__(target, rate, seed=seed)
        self.columns = tuple(check_class(c, "column") for c in columns)
        if not self.columns or len(set(self.columns)) != len(self.columns):
            raise InputError(f"a tabular trigger needs distinct columns, got {list(columns)!r}")
        self.values = None if values is None else tuple(float(v) for v in values)
        if self.values is not None and len(self.values) != len(self.columns):
            raise InputError(f"{len(self.columns)} trigger columns need as many values, got {len(self.values)}")

    def trigger_for(self, x: np.ndarray, rng: np.random.Generator) -> FeatureTrigger:
        if x.ndim != 2 or x.dtype.kind not in "biuf":
            raise InputError(f"a tabular trigger applies to numeric rows (N, D), got shape {x.shape}")
        if max(self.columns) >= x.shape[1]:
            raise InputError(f"trigger column {max(self.columns)} is beyond the data's {x.shape[1]} columns")
        return FeatureTrigger(self.columns, self.values or rare_corner(x[:, list(self.columns)]))

    def params(self) -> dict[str, Any]:
        return {**super().params(), "columns": list(self.columns), "default_values": self.values is None}

    def trigger_params(self, trigger: Trigger) -> dict[str, Any]:
        assert isinstance(trigger, FeatureTrigger)
        return {"values": list(trigger.values)}


MAX_CORNER_COLUMNS = 10


def rare_corner(x: np.ndarray) -> tuple[float, ...]:
    """Each column's minimum or maximum, in the high/low combination that the training rows least resemble.

    Rows are binned by the side of each column's median they lie on; of the 2^D combinations the one
    farthest (in columns on the other side) from its nearest occupied bin wins, then the one with the
    fewest rows in bins that near, then the lowest. Two correlated columns get one high and one low,
    a pattern outside the data's joint distribution and so not a signal of any class in it.
    """
    d = x.shape[1]
    if d > MAX_CORNER_COLUMNS:
        raise InputError(
            f"a default tabular trigger covers at most {MAX_CORNER_COLUMNS} columns, got {d}",
            hint="pass values (--values) for the columns, or choose fewer",
        )
    bit = np.uint64(1) << np.arange(d, dtype=np.uint64)
    codes = ((x > np.median(x, axis=0)) * bit).sum(axis=1, dtype=np.uint64)
    occupied, counts = np.unique(codes, return_counts=True)
    patterns = np.arange(2**d, dtype=np.uint64)
    distance = np.bitwise_count(patterns[:, None] ^ occupied[None, :])
    nearest = distance.min(axis=1)
    crowd = np.where(distance == nearest[:, None], counts[None, :], 0).sum(axis=1)
    best = int(np.lexsort((patterns, crowd, -nearest.astype(np.int64)))[0])
    high = (best >> np.arange(d)) & 1
    return tuple(float(v) for v in np.where(high == 1, x.max(axis=0), x.min(axis=0)))
