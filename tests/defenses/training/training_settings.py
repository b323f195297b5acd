"""Settings shared by the robust-training tests (a module of its own: ``from conftest import ...`` resolves to
whichever conftest.py pytest loaded last, so it breaks when other test folders are collected first)."""

from __future__ import annotations

from modelshield.defenses.training import TrainConfig

GATE = 0.1  # the demo assessment's gating ε (modelshield.cli.assess.DEMO_GATE)


def quick(epochs: int, **changes: object) -> TrainConfig:
    """A short run without validation or progress bars (tests measure on the test split instead)."""
    settings: dict[str, object] = {"batch_size": 64, "lr": 3e-3, "val_fraction": 0.0, "progress": False}
    settings.update(changes)
    return TrainConfig(epochs=epochs, **settings)  # type: ignore[arg-type]
