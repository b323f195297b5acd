"""`modelshield registry` end to end: exit codes, one-line errors, MODELSHIELD_DB_URL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import RunMain


def test_registry_cli_flow(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_main: RunMain) -> None:
    monkeypatch.setenv("MODELSHIELD_DB_URL", db_url)
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    code, out, _ = run_main(
        "registry",
        "register",
        "digits",
        str(model),
        "--owner",
        "ml-team",
        "--dataset",
        "sklearn:digits",
        "--meta",
        "task=classification",
    )
    assert code == 0 and out.startswith("registered digits:1 sha256:")
    for expected in ("staged", "production"):
        code, out, _ = run_main("registry", "promote", "digits", "1")
        assert code == 0 and out.strip() == f"digits:1 is now {expected}"
    code, out, _ = run_main("registry", "show", "digits")
    shown = json.loads(out)
    assert code == 0 and shown["status"] == "production" and shown["datasets"] == ["sklearn:digits"]
    code, out, _ = run_main("registry", "pin", "digits", "--digest", shown["digest"])
    assert code == 0 and out.startswith("pinned digits:1")
    code, out, _ = run_main("registry", "list", "--json")
    assert code == 0 and json.loads(out)[0]["pinned"] is True
    code, out, _ = run_main("registry", "verify", "digits")
    assert code == 0 and out.startswith("ok digits:1")
    model.write_bytes(b"tampered")
    code, out, _ = run_main("registry", "verify", "digits")
    assert code == 1 and out.startswith("QUARANTINED digits:1") and len(out.strip().splitlines()) == 1
    code, out, _ = run_main("registry", "list")
    assert "quarantined" in out
    code, _, err = run_main("registry", "register", "../../etc", str(model), "--owner", "x")
    assert code == 2 and err.startswith("error: model name") and len(err.strip().splitlines()) == 1
    code, _, err = run_main("registry", "promote", "digits", "7")
    assert code == 2 and "no version 7" in err
    code, _, err = run_main("registry", "register", "other", str(tmp_path / "missing"), "--owner", "x")
    assert code == 2 and "does not exist" in err
