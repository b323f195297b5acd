"""Fixtures: the demo digit-reader system written once per session, and a fresh copy of it per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelshield.demo import train_digits_cnn
from modelshield.pipeline.demo import write_demo


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo system as `pipeline run --demo` writes it (data, base model, threat model, key, pipeline.yaml)."""
    folder = tmp_path_factory.mktemp("pipe") / "system"
    write_demo(folder, train_digits_cnn)
    return folder


@pytest.fixture
def demo(demo_source: Path, tmp_path: Path) -> Path:
    """A private copy of the demo system, free to plant bad artefacts in; returns its folder."""
    folder = tmp_path / "system"
    shutil.copytree(demo_source, folder)
    return folder
