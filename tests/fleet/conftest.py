"""Fixtures for the fleet tests: the demo model's weights saved once per session (``Fleet`` reuses the file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelshield.core.model import TorchModel
from tests.fleet.fleet import save_demo_weights


@pytest.fixture(scope="session")
def fleet_weights(tmp_path_factory: pytest.TempPathFactory, digits_model: TorchModel) -> Path:
    """The session's trained digits CNN as a safetensors file, for ``Fleet(..., weights=fleet_weights)``."""
    path = tmp_path_factory.mktemp("fleet-model") / "digits.safetensors"
    save_demo_weights(path, digits_model)
    return path
