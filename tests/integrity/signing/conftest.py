"""A small model folder (nested folder, safetensors weights, config, tokenizer) and signing keys of each type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modelshield.integrity.signing import generate_key_pair


def write_model(folder: Path) -> Path:
    """What a small Hugging Face style model folder holds, plus a .git folder that must not be signed."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.randn(64, 32), "b": torch.zeros(32)}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"hidden": 32, "layers": 1}))
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")
    (folder / "tokenizer" / "empty.txt").write_bytes(b"")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return folder


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return write_model(tmp_path / "tiny-model")


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """(private PEM, public PEM) for ec-p256, ec-p384 and ed25519, plus a second P-256 pair as the wrong key."""
    folder = tmp_path_factory.mktemp("keys")
    pairs = {kind: generate_key_pair(kind, folder / f"{kind}.pem") for kind in ("ec-p256", "ec-p384", "ed25519")}
    pairs["other-p256"] = generate_key_pair("ec-p256", folder / "other.pem")
    return pairs
