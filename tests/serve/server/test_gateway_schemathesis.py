"""schemathesis against a live gateway, as an outside client meets it: every operation of the published OpenAPI
document, with the admin key, positive and negative bodies and stateful sequences; no 5xx, every status and body as
documented. Slow (about a minute on a loaded 2-core machine); ``test_hostile_clients`` keeps what it found."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve.server.conftest import ARCH, ONE_THREAD_ENV, make_state, running, secure_config

# 413 for a batch over max_batch (the schema's maxItems) is as documented, not a wrong refusal
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
"""


@pytest.mark.slow
def test_schemathesis_finds_nothing(weights: tuple[Path, str], tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if cli is None:
        pytest.skip("schemathesis is not installed (pip install modelshield[bench])")
    path, digest = weights
    state = make_state(tmp_path / "state", {"admin": ["admin"]})
    config = secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        rate_limits={"per_identity_rps": 100000, "per_identity_burst": 100000},
    )
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    with running(config) as url:
        # the coverage phase is left out: schemathesis 4.32 stops in it with a Hypothesis-internal error
        # ("AST constructor recursion depth mismatch") that has nothing to do with the server
        done = subprocess.run(
            [
                cli, "--config-file", str(tmp_path / "schemathesis.toml"), "run", f"{url}/openapi.json",
                "-H", f"Authorization: Bearer {state.keys['admin']}", "--checks", "all",
                "--phases", "examples,fuzzing,stateful", "--max-examples", "25", "--seed", "1", "-w", "1",
                "--request-timeout", "30",
            ],
            capture_output=True, text=True, env=ONE_THREAD_ENV, timeout=300, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:]
    assert state.keys["admin"] not in done.stdout
