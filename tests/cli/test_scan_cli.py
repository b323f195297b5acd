"""`modelshield scan` through the real entry point: exit 0 safe, 1 unsafe/unknown, 2 error."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from entrypoint import invoke_main as run


class _Payload:
    """Pickles to a call of os.system; dumping it runs nothing."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_scan_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    good, evil = tmp_path / "good.pt", tmp_path / "weights.safetensors"
    torch.save({"w": torch.ones(3)}, good)
    evil.write_bytes(pickle.dumps(_Payload()))  # a pickle under an innocent name
    code, out, _ = run(["scan", str(good), "-f", "json"], monkeypatch, capsys)
    assert code == 0 and json.loads(out)["passed"] is True
    code, out, _ = run(["scan", str(tmp_path), "-f", "json"], monkeypatch, capsys)
    report = json.loads(out)
    assert code == 1 and report["passed"] is False
    verdicts = {Path(f["path"]).name: f["verdict"] for f in report["files"]}
    assert verdicts == {"good.pt": "safe", "weights.safetensors": "unsafe"}
    code, _, err = run(["scan", str(tmp_path / "missing.bin")], monkeypatch, capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
