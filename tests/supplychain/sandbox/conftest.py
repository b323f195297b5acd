"""Fixtures for the sandbox tests: a vendor package in a folder the sandbox may read."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def vendor() -> Iterator[Path]:
    """The test vendor package copied to a world-readable folder (the sandbox runs as nobody)."""
    root = Path(tempfile.mkdtemp(prefix="modelshield-vendor-"))
    shutil.copytree(HERE / "vendor_pkg", root, dirs_exist_ok=True)
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def vendor_module(vendor: Path) -> ModuleType:
    """The same vendor module imported in-process (trusted here: it is the test's own code)."""
    spec = importlib.util.spec_from_file_location("acme_models_in_process", vendor / "acme" / "models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sandbox_processes(marker: str) -> list[int]:
    """Pids of live processes whose command line mentions ``marker`` (a sandbox's folder)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path("/proc", entry, "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            pids.append(int(entry))
    return pids


@pytest.fixture
def sandbox_processes() -> Callable[[str], list[int]]:
    """Lists the live processes of a sandbox, found by the marker in their command line."""
    return _sandbox_processes
