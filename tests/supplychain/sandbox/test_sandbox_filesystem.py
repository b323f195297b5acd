"""Sandboxed vendor code cannot write outside its scratch folder, and can write inside it."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from modelshield.supplychain.sandbox import Sandbox, VendorCodeError


def targets(vendor: Path, tmp_path: Path) -> dict[str, Path]:
    name = f"escape-{os.getpid()}.txt"
    return {
        "/tmp": Path("/tmp") / name,
        "vendor folder": vendor / "acme" / name,
        "test tmp_path": tmp_path / name,
        "$HOME": Path(os.path.expanduser("~")) / name,
    }


@pytest.mark.parametrize("disable", [(), ("namespaces",)], ids=["all layers", "landlock without namespaces"])
def test_vendor_cannot_write_outside_scratch(vendor: Path, tmp_path: Path, disable: tuple[str, ...]) -> None:
    paths = targets(vendor, tmp_path)
    box = Sandbox(
        vendor=vendor,
        entry="acme.models:write",
        factory_kwargs={"paths": [str(p) for p in paths.values()]},
        disable=disable,
    )
    with pytest.raises(VendorCodeError) as info:
        box.start()
    message = str(info.value)
    for where, path in paths.items():
        assert not path.exists(), f"the sandbox wrote in {where}: {message}"
        assert re.search(re.escape(str(path)) + ": (Read-only file system|Permission denied|No such file)", message)


@pytest.mark.parametrize("disable", [(), ("namespaces",)], ids=["all layers", "landlock without namespaces"])
def test_vendor_cannot_read_files_outside_its_view(
    vendor: Path, world_readable_secret: Path, disable: tuple[str, ...]
) -> None:
    """A world-readable file elsewhere (data, keys, /etc/hostname) is invisible or refused, not just unwritable."""
    for secret in (Path("/etc/hostname"), world_readable_secret):
        box = Sandbox(vendor=vendor, entry="acme.models:read", factory_kwargs={"path": str(secret)}, disable=disable)
        with pytest.raises(VendorCodeError, match="FileNotFoundError|PermissionError"):
            box.start()


@pytest.fixture
def world_readable_secret() -> Iterator[Path]:
    """A file any user may read, in a folder any user may enter: only the sandbox's view keeps it out."""
    folder = Path(tempfile.mkdtemp(prefix="modelshield-test-secret-"))
    folder.chmod(0o755)
    secret = folder / "token.txt"
    secret.write_text("s3cr3t")
    secret.chmod(0o644)
    yield secret
    shutil.rmtree(folder)


def test_vendor_can_keep_state_in_scratch_and_it_is_removed_after(vendor: Path, vendor_module) -> None:
    with Sandbox(vendor=vendor, entry="acme.models:scratch_roundtrip", factory_kwargs={"seed": 3}) as box:
        scratch = box.worker.scratch
        x = np.random.default_rng(0).random((5, 8), dtype=np.float32)
        got = box.model.logits(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, vendor_module.Linear(3)(x), rtol=1e-6)
    assert not scratch.exists()
