"""How a training run is driven: optimiser, schedule, validation, early stopping, checkpoints."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from modelshield.core.errors import InputError

Optimizer = Literal["adam", "sgd"]
Schedule = Literal["constant", "cyclic"]

# The fields that decide a run's trajectory: a checkpoint resumes only under the same values.
TRAJECTORY_FIELDS = (
    "batch_size",
    "lr",
    "optimizer",
    "momentum",
    "weight_decay",
    "lr_schedule",
    "seed",
    "val_fraction",
    "val_eps",
    "val_steps",
)


@dataclass
class TrainConfig:
    """Settings of the training loop shared by every method.

    ``val_fraction`` of the training data is held out for validation (or pass a validation set
    to ``fit``); each epoch ends with clean and PGD-``val_steps`` robust accuracy on it at
    ``val_eps`` (default: the method's ε). ``patience`` epochs without a robust-accuracy gain
    of at least ``min_delta`` stop the run, and the best epoch's weights are restored
    (Rice et al. 2020: robust accuracy peaks before training ends). With ``checkpoint_dir``
    every ``checkpoint_every`` epochs are saved there and ``resume=True`` continues from the
    last one (or starts afresh when there is none) with the same result as an uninterrupted run. ``threads`` pins torch's CPU threads
    for the run (small networks on a busy CPU train several times faster on one thread).
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: Optimizer = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: Schedule = "constant"
    seed: int = 0
    val_fraction: float = 0.1
    val_eps: float | None = None
    val_steps: int = 10
    patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = True
    checkpoint_dir: Path | None = None
    checkpoint_every: int = 1
    resume: bool = False
    progress: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = Path(self.checkpoint_dir)

    def validate(self) -> None:
        """Refuse nonsense before any work starts, naming every problem at once."""
        problems = []
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            problems.append(f"threads must be an integer ≥ 1, got {self.threads!r}")
        for name in ("epochs", "batch_size", "val_steps", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name.replace('_', '-')} must be an integer ≥ 1, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a positive number, got {self.lr!r}")
        if self.optimizer not in ("adam", "sgd"):
            problems.append(f"optimizer must be adam or sgd, got {self.optimizer!r}")
        if self.lr_schedule not in ("constant", "cyclic"):
            problems.append(f"lr-schedule must be constant or cyclic, got {self.lr_schedule!r}")
        if not 0.0 <= self.momentum < 1.0 or self.weight_decay < 0:
            problems.append("momentum must lie in [0, 1) and weight-decay be ≥ 0")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"val-fraction must lie in [0, 1), got {self.val_fraction!r}")
        if self.val_eps is not None and not self.val_eps > 0:
            problems.append(f"val-eps must be positive, got {self.val_eps!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            problems.append(f"patience must be an integer ≥ 1, got {self.patience!r}")
        if self.resume and self.checkpoint_dir is None:
            problems.append("resume needs a checkpoint folder")
        if problems:
            raise InputError("; ".join(problems))

    def trajectory(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        values = asdict(self)
        return {k: values[k] for k in TRAJECTORY_FIELDS}

    def lr_at(self, progress: float) -> float:
        """Learning rate at ``progress`` ∈ [0, 1] of the run (a pure function, so resuming needs no state).

        ``cyclic`` is the one-cycle schedule of fast adversarial training (Wong et al. 2020): a
        linear ramp from 0 to ``lr`` over the first 40 % of the run, then down to 0.
        """
        if self.lr_schedule == "constant":
            return self.lr
        peak = 0.4
        if progress <= peak:
            return self.lr * progress / peak
        return self.lr * max(0.0, (1.0 - progress) / (1.0 - peak))
