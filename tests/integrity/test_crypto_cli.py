"""`modelshield crypto` as a user runs it: keygen → encrypt → inspect → rotate → decrypt, and no key ever printed."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from modelshield.cli.crypto import crypto_app
from modelshield.integrity.encrypt import IntegrityError, read_header
from modelshield.integrity.keys import Keyring

runner = CliRunner()


def cli(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(crypto_app, [str(a) for a in args], env=env)


def secrets_of(keyring: Path) -> list[str]:
    """Every printable form of every key in the keyring."""
    ring = Keyring.load(keyring)
    keys = [ring.key(i) for i in ring.ids]
    return [base64.b64encode(k).decode() for k in keys] + [k.hex() for k in keys]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    path.write_bytes(os.urandom(20_000))
    return path


def test_full_flow_never_prints_keys(tmp_path: Path, model: Path) -> None:
    keyring = tmp_path / "keys.json"
    outputs = [cli("keygen", "--keyring", keyring, "--id", "old"), cli("keygen", "--keyring", keyring, "--id", "new")]
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    sealed = tmp_path / "model.safetensors.msenc"
    outputs.append(cli("encrypt", model, "--keyring", keyring, "--key-id", "old", "--chunk-size", "4096"))
    assert read_header(sealed).kek_id == "old"
    outputs.append(cli("inspect", sealed))
    outputs.append(cli("inspect", sealed, "--json"))
    info = json.loads(outputs[-1].output)
    assert info["kek_id"] == "old" and info["chunk_size"] == 4096 and info["plaintext_size"] == 20_000
    assert info["encrypted_size"] == sealed.stat().st_size and "wrapped_key" not in info
    outputs.append(cli("rotate", sealed, "--keyring", keyring, "--to", "new"))
    assert "old -> new" in outputs[-1].output
    model.rename(tmp_path / "original.bin")
    outputs.append(cli("decrypt", sealed, "--keyring", keyring))
    assert model.read_bytes() == (tmp_path / "original.bin").read_bytes()

    assert all(r.exit_code == 0 for r in outputs), [(r.output, r.exception) for r in outputs]
    printed = "".join(r.output for r in outputs)
    header = read_header(sealed)
    for secret in [*secrets_of(keyring), base64.b64encode(header.wrapped_key).decode()]:
        assert secret not in printed


def test_tampered_file_is_an_integrity_error(tmp_path: Path, model: Path) -> None:
    keyring = tmp_path / "keys.json"
    cli("keygen", "--keyring", keyring)
    sealed = tmp_path / "m.msenc"
    cli("encrypt", model, "--keyring", keyring, "--out", sealed)
    data = bytearray(sealed.read_bytes())
    data[-1] ^= 0x80
    sealed.write_bytes(bytes(data))
    result = cli("decrypt", sealed, "--keyring", keyring, "--out", tmp_path / "out.bin")
    assert isinstance(result.exception, IntegrityError), result.output
    assert not (tmp_path / "out.bin").exists()
    assert not any(s in result.exception.diagnostics() for s in secrets_of(keyring))


def test_ci_secret_in_environment_needs_no_keyring(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELSHIELD_KEYRING", raising=False)
    env = {"MODELSHIELD_KEK_CI": base64.b64encode(os.urandom(32)).decode()}
    sealed = tmp_path / "m.msenc"
    assert cli("encrypt", model, "--key-id", "ci", "--out", sealed, env=env).exit_code == 0
    result = cli("decrypt", sealed, "--out", tmp_path / "out.bin", env=env)
    assert result.exit_code == 0 and env["MODELSHIELD_KEK_CI"] not in result.output
    assert (tmp_path / "out.bin").read_bytes() == model.read_bytes()
    missing = cli("decrypt", sealed, "--out", tmp_path / "again.bin")
    assert "MODELSHIELD_KEK_CI" in missing.exception.diagnostics()  # type: ignore[union-attr]


def test_decrypt_needs_out_without_suffix(tmp_path: Path, model: Path) -> None:
    result = cli("decrypt", model)
    assert "--out" in str(result.exception)
