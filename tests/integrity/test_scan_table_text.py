"""The scan table prints file names and findings as written: "[...]" in a hostile name is not rich markup."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelshield.integrity.render import render_table
from modelshield.integrity.scanner import scan_paths


def test_brackets_in_a_file_name_print_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a short relative name: one table line
    name = "evil[red]hidden[bold]x.pt"
    Path(name).write_bytes(b"not a model")
    assert name in render_table(scan_paths([name]))
