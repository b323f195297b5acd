"""Harden a model end to end: measure it, train it robustly, measure again, write the results.

This is what ``modelshield harden`` calls. The output folder holds ``model.safetensors`` (the
hardened weights), ``model.json`` (the architecture reference ``load_model`` needs),
``history.json`` (per-epoch history plus before/after accuracies) and ``checkpoints/``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelshield.core.datasets import Dataset
from modelshield.core.loading import save_torch_model
from modelshield.core.model import TorchModel
from modelshield.defenses.training.config import TrainConfig
from modelshield.defenses.training.evaluation import accuracies
from modelshield.defenses.training.history import TrainResult, write_json_atomic
from modelshield.defenses.training.loop import DataObserver
from modelshield.defenses.training.trainer import Trainer


@dataclass
class Accuracy:
    """Clean and PGD robust accuracy of one model on the evaluation set."""

    clean: float
    robust: float


@dataclass
class HardenOutcome:
    """Before and after, the training run, and where everything was written."""

    before: Accuracy
    after: Accuracy
    eps: float
    steps: int
    result: TrainResult
    paths: dict[str, Path]


def measure(model: TorchModel, data: Dataset, eps: float, steps: int, seed: int = 0) -> Accuracy:
    """Clean and PGD-``steps`` robust accuracy at L∞ ``eps`` on ``data``."""
    x, y = data.x.to(model.device), data.y.to(model.device)
    clean, robust = accuracies(model, x, y, eps=eps, steps=steps, seed=seed)
    assert robust is not None
    return Accuracy(clean, robust)


def harden(
    model: TorchModel,
    train: Dataset,
    test: Dataset,
    trainer: Trainer,
    config: TrainConfig,
    *,
    out: Path,
    eval_eps: float,
    eval_steps: int = 20,
    model_info: dict[str, Any] | None = None,
    data_observer: DataObserver | None = None,
) -> HardenOutcome:
    """Train ``model`` in place with ``trainer`` and record its robustness before and after.

    Checkpoints go to ``out/checkpoints`` unless ``config`` names another folder; with
    ``config.resume`` a run that was interrupted continues where its last checkpoint left off.
    ``data_observer`` (a data-access monitor) is told every batch the training loop reads.
    """
    model.check_inputs(test.x, test.y)
    out.mkdir(parents=True, exist_ok=True)
    if config.checkpoint_dir is None:
        config = replace(config, checkpoint_dir=out / "checkpoints")
    before = measure(model, test, eval_eps, eval_steps, config.seed)
    result = trainer.fit(model, train, config, data_observer=data_observer)
    after = measure(model, test, eval_eps, eval_steps, config.seed)
    weights = save_torch_model(model, out / "model.safetensors")
    info = {
        **(model_info or {}),
        "weights": weights.name,
        "input_shape": list(model.input_shape),
        "num_classes": model.num_classes,
        "bounds": list(model.bounds),
        "method": trainer.name,
        "params": trainer.params(),
    }
    paths = {"weights": weights, "model": write_json_atomic(out / "model.json", info)}
    evaluation = {
        "eps": eval_eps,
        "steps": eval_steps,
        "samples": len(test),
        "before": vars(before),
        "after": vars(after),
    }
    paths["history"] = write_json_atomic(out / "history.json", {**result.to_dict(), "evaluation": evaluation})
    return HardenOutcome(before, after, eval_eps, eval_steps, result, paths)
