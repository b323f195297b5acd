"""`modelshield registry` end to end: exit codes, one-line errors, MODELSHIELD_DB_URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stores import run_cli as run


def test_registry_cli_flow(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MODELSHIELD_DB_URL", db_url)
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    code, out, _ = run(["registry", "register", "digits", str(model), "--owner", "ml-team", "--dataset", "sklearn:digits",
                        "--meta", "task=classification"], monkeypatch, capsys)
    assert code == 0 and out.startswith("registered digits:1 sha256:")
    for expected in ("staged", "production"):
        code, out, _ = run(["registry", "promote", "digits", "1"], monkeypatch, capsys)
        assert code == 0 and out.strip() == f"digits:1 is now {expected}"
    code, out, _ = run(["registry", "show", "digits"], monkeypatch, capsys)
    shown = json.loads(out)
    assert code == 0 and shown["status"] == "production" and shown["datasets"] == ["sklearn:digits"]
    code, out, _ = run(["registry", "pin", "digits", "--digest", shown["digest"]], monkeypatch, capsys)
    assert code == 0 and out.startswith("pinned digits:1")
    code, out, _ = run(["registry", "list", "--json"], monkeypatch, capsys)
    assert code == 0 and json.loads(out)[0]["pinned"] is True
    code, out, _ = run(["registry", "verify", "digits"], monkeypatch, capsys)
    assert code == 0 and out.startswith("ok digits:1")
    model.write_bytes(b"tampered")
    code, out, _ = run(["registry", "verify", "digits"], monkeypatch, capsys)
    assert code == 1 and out.startswith("QUARANTINED digits:1") and len(out.strip().splitlines()) == 1
    code, out, _ = run(["registry", "list"], monkeypatch, capsys)
    assert "quarantined" in out
    code, _, err = run(["registry", "register", "../../etc", str(model), "--owner", "x"], monkeypatch, capsys)
    assert code == 2 and err.startswith("error: model name") and len(err.strip().splitlines()) == 1
    code, _, err = run(["registry", "promote", "digits", "7"], monkeypatch, capsys)
    assert code == 2 and "no version 7" in err
    code, _, err = run(["registry", "register", "other", str(tmp_path / "missing"), "--owner", "x"], monkeypatch, capsys)
    assert code == 2 and "does not exist" in err
