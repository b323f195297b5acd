"""Watermarked and clean demo models, trained once per session (on one thread: tests/conftest.py)."""

from __future__ import annotations

import pytest
from watermark_keys import OWNER_KEY

from modelshield.core.datasets import Dataset, sklearn_dataset
from modelshield.core.model import TorchModel
from modelshield.demo import demo_model_and_data
from modelshield.integrity.watermark import TriggerSetWatermark, WeightWatermark


@pytest.fixture(scope="session")
def train() -> Dataset:
    """The digits training split the demo model was trained on."""
    return sklearn_dataset("digits", "train", seed=0)


@pytest.fixture(scope="session")
def clean_models(digits_model: TorchModel) -> list[TorchModel]:
    """Two demo models trained independently (seeds 0 and 1), neither watermarked (more in the slow tests)."""
    return [digits_model, demo_model_and_data(1)[0]]


@pytest.fixture(scope="session")
def weight_marked(digits_model: TorchModel, train: Dataset) -> TorchModel:
    return WeightWatermark(OWNER_KEY).embed(digits_model, train)


@pytest.fixture(scope="session")
def trigger_marked(digits_model: TorchModel, train: Dataset) -> TorchModel:
    return TriggerSetWatermark(OWNER_KEY).embed(digits_model, train)
