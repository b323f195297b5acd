"""``modelshield redteam`` on the command line: bad flags are one line and exit 2; ``--target`` against a loopback
gateway with its audit database; ``--demo`` end to end (slow)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.serve.server.conftest import ARCH, make_state, running, secure_config

RunMain = Callable[..., tuple[int, str, str]]  # the run_main fixture of tests/conftest.py


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --demo or --target URL"),
        (["--demo", "--target", "http://127.0.0.1:9/v1/models/m/predict"], "give --demo or --target URL"),
        (["--demo", "--attacks", "square,steal"], "--attacks takes a comma list"),
        (["--demo", "--budget", "5"], "the budget must be at least 20"),
        (["--target", "http://127.0.0.1:9/v1/models/m/predict"], "needs an API key"),
        (["--target", "http://127.0.0.1:9/p", "--key", "k", "--subject", "s"], "needs --audit-db"),
    ],
)
def test_rt_cli_refuses_bad_flags_in_one_line(
    args: list[str], message: str, tmp_path: Path, run_main: RunMain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELSHIELD_API_KEY", raising=False)
    code, _, stderr = run_main("redteam", "--out", str(tmp_path / "out"), *args)
    assert code == 2 and message in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) <= 2  # the error line (and its hint)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_rt_cli_demo_end_to_end(victim_weights: tuple[Path, str], tmp_path: Path) -> None:
    """The demo gateway in its own process, every control on (guard, monitor, extraction signal, limits)."""
    state = tmp_path / "state"
    (state / "model").mkdir(parents=True)
    shutil.copy(victim_weights[0], state / "model" / "model.safetensors")  # the demo's cache: no training here
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "modelshield", "redteam", "--demo", "--state-dir", str(state), "--out", str(out),
         "--budget", "80", "--evasion-samples", "2"],
        capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads((out / "redteam.json").read_text())
    assert [r["attack"] for r in doc["attacks"]] == ["square", "hopskipjump", "jacobian", "knockoff", "membership"]
    for row in doc["attacks"]:
        assert {"attack", "queries", "success", "detected", "detected_after_queries", "controls"} <= set(row)
        assert isinstance(row["detected"], bool) and row["queries"] > 0
    assert (out / "redteam.md").read_text().startswith("# Red team against blue team")
    assert any("guard_fallback" in r["controls"] for r in doc["attacks"])  # the demo's guard acted


def test_rt_cli_target_mode_scores_from_the_audit_db(
    victim_weights: tuple[Path, str], tmp_path: Path, run_main: RunMain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone's gateway: keys and their identities given, the blue side reads the audit database it names."""
    monkeypatch.setattr("modelshield.cli.redteam.SETTLE_S", 0.3)
    path, digest = victim_weights
    state = make_state(tmp_path / "gw", {"alice": ["predictor"], "bob": ["predictor"]})
    config = secure_config(state, {"demo": {"path": str(path), "digest": digest, **ARCH}})
    out = tmp_path / "out"
    with running(config) as url:
        code, stdout, stderr = run_main(
            "redteam", "--target", f"{url}/v1/models/demo/predict", "--out", str(out),
            "--key", state.keys["alice"], "--subject", "alice", "--key", state.keys["bob"], "--subject", "bob",
            "--audit-db", state.db_url, "--attacks", "square,membership", "--members", "sklearn:digits:train",
            "--budget", "40", "--evasion-samples", "2",
        )  # fmt: skip
    assert code == 0, stderr
    doc = json.loads((out / "redteam.json").read_text())
    assert [(r["attack"], r["subject"]) for r in doc["attacks"]] == [("square", "alice"), ("membership", "bob")]
    assert doc["attacks"][1]["details"]["members"] == 20 and doc["attacks"][1]["queries"] == 40
    assert state.keys["alice"] not in stdout + stderr + (out / "redteam.json").read_text()
    assert "wrote" in stdout
