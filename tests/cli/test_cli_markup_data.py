"""CLI output prints data as written: "[...]" in a column name, a system name or a key's subject is not rich
markup (a hostile value could otherwise hide or restyle text an operator relies on)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from modelshield.threat import demo_text

RunMain = Callable[..., tuple[int, str, str]]
HOSTILE = "evil[red]x[/red][bold]y"


def _drift(tmp_path: Path, run_main: RunMain) -> tuple[int, str, str]:
    """A numeric column named HOSTILE, 40 rows each side: the drift table lists it."""
    for name, shift in (("ref.csv", 0), ("cur.csv", 100)):
        rows = "\n".join(f"{i + shift},{i % 3}" for i in range(40))
        (tmp_path / name).write_text(f"{HOSTILE},k\n{rows}\n", encoding="utf-8")
    return run_main(
        "monitor", "drift", "--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "cur.csv")
    )


def _threat(tmp_path: Path, run_main: RunMain) -> tuple[int, str, str]:
    """The demo system renamed HOSTILE: the findings table's title names it."""
    system = tmp_path / "system.yaml"
    system.write_text(demo_text().replace("name: Credit-risk scoring", f"name: '{HOSTILE}'", 1), encoding="utf-8")
    return run_main("threat", "check", str(system))


def _keys(tmp_path: Path, run_main: RunMain, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """A key whose subject is HOSTILE: `keys list` shows it."""
    monkeypatch.setenv("MODELSHIELD_HOME", str(tmp_path))
    monkeypatch.setenv("MODELSHIELD_DB_URL", f"sqlite:///{tmp_path / 'ms.db'}")
    monkeypatch.delenv("MODELSHIELD_KEY_PEPPER_FILE", raising=False)
    monkeypatch.delenv("MODELSHIELD_REDIS_URL", raising=False)
    code, _, err = run_main("keys", "create", "--subject", HOSTILE, "--role", "predictor", "--tenant", "acme")
    assert code == 0, err
    return run_main("keys", "list")


@pytest.mark.parametrize("command", ["monitor drift", "threat check", "keys list"])
def test_bracketed_data_prints_as_written(
    command: str, tmp_path: Path, run_main: RunMain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table line per row: the value is not wrapped
    if command == "monitor drift":
        code, out, err = _drift(tmp_path, run_main)
    elif command == "threat check":
        code, out, err = _threat(tmp_path, run_main)
    else:
        code, out, err = _keys(tmp_path, run_main, monkeypatch)
    assert code in (0, 1), err  # 1: drift found / findings open
    assert HOSTILE in out
