"""The console entry point run in-process, for CLI tests (importable from any test folder: tests/ is on sys.path)."""

from __future__ import annotations

import sys

import pytest


def invoke_main(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run ``modelshield ARGS`` through the console entry point in this process: (exit code, stdout, stderr).

    ``main`` turns library errors into one stderr line and exit 2, as the installed command does; in process
    it takes milliseconds where starting a subprocess takes seconds."""
    from modelshield.cli.main import main

    capsys.readouterr()  # drop what the test printed before
    monkeypatch.setattr(sys, "argv", ["modelshield", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    streams = capsys.readouterr()
    return code, streams.out, streams.err
