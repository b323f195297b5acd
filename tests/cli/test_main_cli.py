"""The entry point loads only the command group it runs, and its name table matches what discovery finds."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.main import get_command_name
from typer.testing import CliRunner

from modelshield.cli import main as cli_main

# what a clean `modelshield scan FILE` must not import: other groups, numpy, the HTML report, torch
HEAVY = ("numpy", "jinja2", "torch", "modelshield.report", "modelshield.core.findings", "modelshield.cli.crypto",
         "modelshield.cli.assess", "modelshield.core.settings", "modelshield.integrity.keys",
         "modelshield.core.sarif")  # fmt: skip


def _names_added_by(module: str) -> set[str]:
    app = typer.Typer()
    importlib.import_module(f"modelshield.cli.{module}").register(app)
    commands = {c.name or get_command_name(c.callback.__name__) for c in app.registered_commands}
    return commands | {g.name for g in app.registered_groups}


def test_command_table_matches_discovery() -> None:
    found = {name: module for module in cli_main.command_modules() for name in _names_added_by(module)}
    missing = {n: m for n, m in found.items() if cli_main.COMMANDS.get(n) != m}
    assert not missing, f"add these to modelshield.cli.main.COMMANDS: {missing}"
    assert set(cli_main.COMMANDS) == set(found), "COMMANDS names a command no module registers"


def test_full_app_lists_every_command() -> None:
    result = CliRunner().invoke(cli_main.app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in [*cli_main.COMMANDS, "version"]:
        assert f" {name} " in result.output, name


def _run_and_list_imports(args: list[str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``modelshield ARGS`` in a fresh interpreter; report which HEAVY modules it imported."""
    code = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: sys.stderr.write(json.dumps([m for m in {HEAVY!r} if m in sys.modules])))\n"
        f"sys.argv = ['modelshield', *{args!r}]\n"
        "from modelshield.cli.main import main\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return proc, json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_clean_scan_starts_light(tmp_path: Path, fmt: str) -> None:
    model = tmp_path / "weights.pkl"
    model.write_bytes(b"\x80\x04K\x01.")  # the pickle of the int 1: no globals, safe
    proc, loaded = _run_and_list_imports(["scan", str(model), "-f", fmt])
    assert proc.returncode == 0, proc.stderr
    assert loaded == []


def test_unsafe_scan_and_sarif_still_load_what_they_need(tmp_path: Path) -> None:
    evil = tmp_path / "model.bin"
    evil.write_bytes(b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.")
    out = tmp_path / "scan.sarif"
    proc, loaded = _run_and_list_imports(["scan", str(evil), "-f", "sarif", "-o", str(out)])
    assert proc.returncode == 1, proc.stderr
    assert {"modelshield.core.findings", "modelshield.core.sarif"} <= set(loaded)
    assert "modelshield.cli.crypto" not in loaded and "modelshield.report" not in loaded
    result = json.loads(out.read_text())["runs"][0]["results"][0]
    assert result["ruleId"].startswith("MS-SCAN") and result["level"] == "error"


def test_unknown_command_and_errors_keep_their_shape(tmp_path: Path) -> None:
    proc, _ = _run_and_list_imports(["no-such-command"])
    assert proc.returncode == 2 and "No such command" in proc.stderr
    proc, loaded = _run_and_list_imports(["scan", str(tmp_path / "missing.pt")])
    assert proc.returncode == 2 and proc.stderr.startswith("error: no such file")
    assert len(proc.stderr.splitlines()) == 2  # the one error line, then this test's list of imports
    assert loaded == []
