"""Fixtures: the demo digit-reader system written once per session, and a fresh copy of it per test."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest

from modelshield.demo import train_digits_cnn
from modelshield.pipeline import load_pipeline, run_pipeline
from modelshield.pipeline.demo import plant_pickle, write_demo


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo system as `pipeline run --demo` writes it (data, base model, threat model, key, pipeline.yaml),
    with a base model trained for 5 epochs instead of 15: these tests scan, sign and fine-tune it, never gate on
    its accuracy (the slow tests that do write their own)."""
    folder = tmp_path_factory.mktemp("pipe") / "system"
    write_demo(folder, functools.partial(train_digits_cnn, epochs=5))
    return folder


@pytest.fixture
def demo(demo_source: Path, tmp_path: Path) -> Path:
    """A private copy of the demo system, free to plant bad artefacts in; returns its folder."""
    folder = tmp_path / "system"
    shutil.copytree(demo_source, folder)
    return folder


@pytest.fixture(scope="session")
def stopped_source(demo_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signed run the scan gate stopped (a pickle planted in the base model): its run folder, with the
    record, the events and the accepted training data. Copy it before changing anything in it."""
    system = tmp_path_factory.mktemp("stopped") / "system"
    shutil.copytree(demo_source, system)
    plant_pickle(system / "base-model")
    config, base = load_pipeline(system / "pipeline.yaml")
    run = system.parent / "run"
    assert run_pipeline(config, base, run_dir=run).stopped_at == "scan"
    return run
