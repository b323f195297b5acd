"""`modelshield keys` end to end: the key is printed once, works, rotates with overlap, and is revoked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelshield.cli.main import app
from modelshield.core.errors import KeyringError, ModelShieldError
from modelshield.serve.apikeys import ApiKeyStore
from modelshield.serve.errors import AuthenticationError


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"MODELSHIELD_HOME": str(tmp_path), "MODELSHIELD_DB_URL": f"sqlite:///{tmp_path / 'ms.db'}"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("MODELSHIELD_KEY_PEPPER_FILE", raising=False)
    monkeypatch.delenv("MODELSHIELD_REDIS_URL", raising=False)
    return values


def test_create_list_rotate_revoke(env: dict[str, str]) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--subject",
            "alice",
            "--role",
            "predictor",
            "--tenant",
            "acme",
            "--scope",
            "predict:digits",
            "--expires",
            "30d",
        ],
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[0]
    store = ApiKeyStore.open()
    ident = store.verify(key)
    assert (ident.subject, ident.roles, ident.tenant, ident.scopes) == (
        "alice",
        ("predictor",),
        "acme",
        ("predict:digits",),
    )
    assert ident.attributes["clearance"] == "internal"

    listed = runner.invoke(app, ["keys", "list", "--json"])
    rows = json.loads(listed.stdout)
    assert listed.exit_code == 0 and rows[0]["status"] == "active" and key.split("_")[2] not in listed.stdout
    key_id = rows[0]["key_id"]

    rotated = runner.invoke(app, ["keys", "rotate", key_id, "--overlap", "0s"])
    assert rotated.exit_code == 0, rotated.output
    new_key = rotated.stdout.strip().splitlines()[0]
    fresh = ApiKeyStore.open()
    assert fresh.verify(new_key).subject == "alice"
    with pytest.raises(AuthenticationError):
        fresh.verify(key)

    revoked = runner.invoke(app, ["keys", "revoke", new_key.split("_")[1]])
    assert revoked.exit_code == 0
    with pytest.raises(AuthenticationError, match="revoked"):
        ApiKeyStore.open().verify(new_key)
    text = runner.invoke(app, ["keys", "list"]).stdout
    assert "revoked" in text and "expired" in text and new_key.split("_")[2] not in text


def test_a_lost_pepper_is_refused_and_a_foreign_one_is_warned_about(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--subject", "kim", "--role", "predictor"])
    assert created.exit_code == 0, created.output
    pepper = tmp_path / "apikey-pepper"
    pepper.unlink()
    lost = runner.invoke(app, ["keys", "list"])
    assert isinstance(lost.exception, KeyringError) and not pepper.exists()
    assert f"restore {pepper}" in lost.exception.diagnostics() and "1 usable keys" in lost.exception.diagnostics()
    other = tmp_path / "other-pepper"
    other.write_text("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=\n")
    other.chmod(0o600)
    listed = runner.invoke(app, ["keys", "list", "--pepper-file", str(other)])
    assert listed.exit_code == 0 and "kim" in listed.stdout
    assert "warning: 1 usable keys in this store were made under another pepper" in listed.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "--subject", "a", "--role", "predictor", "--expires", "soon"],
        ["keys", "create", "--subject", "a", "--role", "bad role"],
        ["keys", "create", "--subject", "a", "--role", "predictor", "--clearance", "top"],
        ["keys", "revoke", "../etc"],
        ["keys", "rotate", "0123456789abcdef"],
    ],
)
def test_bad_input_is_a_library_error_main_prints_as_one_line(env: dict[str, str], args: list[str]) -> None:
    """A ModelShieldError is what `modelshield` turns into one stderr line and exit 2 (see the slow test below)."""
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ModelShieldError), result.output
    assert len(result.exception.diagnostics().splitlines()) == 1 and not result.stdout


@pytest.mark.slow  # a fresh interpreter importing the whole CLI: ~10 s on the shared machine
def test_a_leaky_pepper_file_is_refused_by_the_installed_command(env: dict[str, str], tmp_path: Path) -> None:
    pepper = tmp_path / "pepper"
    pepper.write_text("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=\n")
    pepper.chmod(0o644)
    proc = subprocess.run(
        [sys.executable, "-m", "modelshield", "keys", "list", "--pepper-file", str(pepper)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert proc.returncode == 2 and "accessible to others" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_revoke_publishes_under_the_deployments_redis_prefix(
    env: dict[str, str], redis_url: str, redis_prefix: str
) -> None:
    """Gateways listen on ``<rate_limits.redis_prefix>:apikeys:revoked``; the CLI must publish there."""
    import redis

    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--subject", "ann", "--role", "predictor"])
    key_id = created.stdout.strip().splitlines()[0].split("_")[1]
    prefix = redis_prefix.rstrip(":")
    revoked = runner.invoke(app, ["keys", "revoke", key_id, "--redis", redis_url, "--redis-prefix", prefix])
    assert revoked.exit_code == 0, revoked.output
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert client.smembers(f"{prefix}:apikeys:revoked") == {key_id}
    finally:
        client.delete(f"{prefix}:apikeys:revoked")
        client.close()
