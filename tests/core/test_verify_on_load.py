"""load_model (and so `modelshield assess --model`) verifies a signed or locked model before reading it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from modelshield.cli.main import main
from modelshield.core.errors import InputError, IntegrityError, MissingFileError
from modelshield.core.loading import save_torch_model
from modelshield.demo import DigitsCNN
from modelshield.integrity.provenance import add_artifact
from modelshield.integrity.safe_load import load_model
from modelshield.integrity.signing import generate_key_pair, sign_model

ARCH = "modelshield.demo:DigitsCNN"
ENV = (
    "MODELSHIELD_VERIFY_KEY",
    "MODELSHIELD_VERIFY_SIGNATURE",
    "MODELSHIELD_ALLOW_UNVERIFIED",
    "MODELSHIELD_REQUIRE_SIGNATURE",
    "MODELSHIELD_LOCK",
    "MODELSHIELD_CONFIG",
)


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No settings from the developer's shell or the repository: each test states its own."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_key_pair("ec-p256", tmp_path_factory.mktemp("keys") / "signer.pem")


@pytest.fixture
def weights(tmp_path: Path, cnn: DigitsCNN) -> Path:
    folder = tmp_path / "digits-cnn"
    folder.mkdir()
    (folder / "README.md").write_text("demo digits CNN\n")
    return save_torch_model(cnn, folder / "model.safetensors")


def load(path: Path, **kwargs: object) -> object:
    return load_model(path, arch=ARCH, input_shape=(1, 8, 8), **kwargs)


def tamper(path: Path) -> None:
    """Change one weight: the file stays valid safetensors, only the signature can tell."""
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x40
    path.write_bytes(bytes(data))


def test_signed_folder_loads_with_key_and_tampered_weights_are_refused(
    weights: Path, key_pair: tuple[Path, Path], cnn: DigitsCNN
) -> None:
    private, public = key_pair
    sign_model(weights.parent, private)
    model = load(weights, verify_key=public)
    loaded, original = model.module.state_dict(), cnn.state_dict()
    assert loaded.keys() == original.keys() and all(torch.equal(loaded[k], original[k]) for k in original)
    tamper(weights)
    with pytest.raises(IntegrityError, match="does not match its signature: changed model.safetensors"):
        load(weights, verify_key=public)


def test_any_change_in_the_signed_folder_is_refused(weights: Path, key_pair: tuple[Path, Path]) -> None:
    sign_model(weights.parent, key_pair[0])
    (weights.parent / "extra.py").write_text("import os\n")
    with pytest.raises(IntegrityError, match="added extra.py"):
        load(weights, verify_key=key_pair[1])


def test_signed_file_with_its_own_signature(
    weights: Path, key_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_model(weights, key_pair[0])  # writes model.safetensors.sig beside it
    monkeypatch.setenv("MODELSHIELD_VERIFY_KEY", str(key_pair[1]))
    load(weights)
    tamper(weights)
    with pytest.raises(IntegrityError, match="changed ."):
        load(weights)


def test_signed_but_no_key_is_refused_unless_the_user_opts_out(
    weights: Path, key_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_model(weights.parent, key_pair[0])
    with pytest.raises(InputError, match="is signed .* but no public key is configured"):
        load(weights)
    load(weights, allow_unverified=True)
    monkeypatch.setenv("MODELSHIELD_ALLOW_UNVERIFIED", "1")
    load(weights)


def test_key_from_modelshield_toml_relative_to_the_file(
    weights: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    sign_model(weights.parent, key_pair[0])
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "signer.pub.pem").write_bytes(key_pair[1].read_bytes())
    (tmp_path / "modelshield.toml").write_text('[verify]\npublic_key = "keys/signer.pub.pem"\n')
    load(weights)
    tamper(weights)
    with pytest.raises(IntegrityError):
        load(weights)


def test_wrong_key_and_required_signature(
    weights: Path, key_pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELSHIELD_REQUIRE_SIGNATURE", "true")
    with pytest.raises(IntegrityError, match="has no signature"):
        load(weights, verify_key=key_pair[1])
    sign_model(weights.parent, key_pair[0])
    _, other = generate_key_pair("ed25519", tmp_path / "other.pem")
    with pytest.raises(IntegrityError, match="different key"):
        load(weights, verify_key=other)


def test_provenance_lock_entry_is_checked(weights: Path, tmp_path: Path) -> None:
    add_artifact(
        tmp_path / "modelshield.lock.json", "digits-cnn", weights.parent, kind="model", source="tests", licence="MIT"
    )
    load(weights)  # no signature at all: the lock alone is checked
    tamper(weights)
    with pytest.raises(IntegrityError, match="provenance lock entry 'digits-cnn'.*changed model.safetensors"):
        load(weights)


def test_assess_refuses_a_tampered_signed_model(
    weights: Path,
    key_pair: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sign_model(weights.parent, key_pair[0])
    tamper(weights)
    monkeypatch.setenv("MODELSHIELD_VERIFY_KEY", str(key_pair[1]))
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "modelshield",
            "assess",
            "--model",
            str(weights),
            "--arch",
            ARCH,
            "--data",
            "sklearn:digits",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err  # progress lines, then a one-line error
    assert "does not match its signature: changed model.safetensors" in err.strip().splitlines()[-1]
    assert not (tmp_path / "out" / "report.json").exists()


def test_signature_at_a_configured_path(
    weights: Path, key_pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    detached = sign_model(weights.parent, key_pair[0], tmp_path / "release.sig")
    load(weights, verify_key=key_pair[1])  # nothing beside the model: nothing to verify, loads
    tamper(weights)
    with pytest.raises(IntegrityError, match="changed model.safetensors"):
        load(weights, verify_key=key_pair[1], signature=detached)
    monkeypatch.setenv("MODELSHIELD_VERIFY_SIGNATURE", "release.sig")  # a bare name: beside the model
    with pytest.raises(MissingFileError, match="signature .*release.sig .* does not exist"):
        load(weights, verify_key=key_pair[1])
