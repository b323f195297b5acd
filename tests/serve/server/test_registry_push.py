"""``modelshield registry pin|unpin|promote --redis``: a registry change reaches the gateway by the Redis push.

The gateway polls the store only every 30 s, so a version switch seen within 3 s of the command came by the
message the CLI published on ``<prefix>:controls``. Without Redis the change still commits: one warning line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelshield.cli.main import app
from modelshield.core.datasets import sklearn_dataset
from modelshield.registry import Registry
from tests.fleet.fleet import REDIS_URL, free_port
from tests.serve.server.fleet_controls import ControlFleet, seconds_until

PUSH_BOUND = 3.0  # seconds: far below the 30 s poll, so only the push meets it
X = sklearn_dataset("digits", "test", seed=0).x[:1].numpy().tolist()


@pytest.fixture
def gateway(weights: tuple[Path, str], tmp_path: Path) -> Iterator[ControlFleet]:
    """One gateway (an app in a thread) on a SQLite store, listening on Redis, polling every 30 s."""
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    with ControlFleet(tmp_path, weights[0], db_url, redis=True, poll_seconds=30.0, replicas=1, processes=False) as f:
        yield f


def _registry(fleet: ControlFleet, *args: str) -> str:
    result = CliRunner().invoke(
        app, ["registry", *args, "--db", fleet.db_url, "--redis", REDIS_URL, "--redis-prefix", fleet.prefix]
    )
    assert result.exit_code == 0 and not result.stderr, result.output
    return result.stdout


def test_pin_unpin_and_promote_from_the_cli_reach_the_gateway_at_once(gateway: ControlFleet) -> None:
    (url,) = gateway.urls

    def serving() -> str | int:
        r = gateway.predict(url, "alice", X)
        return str(r.json()["version"]) if r.status_code == 200 else r.status_code

    assert serving() == "2"
    assert _registry(gateway, "pin", "digits", "1").startswith("pinned digits:1")
    seconds_until(lambda: serving() == "1", PUSH_BOUND, "the gateway serving the pinned version")
    _registry(gateway, "unpin", "digits")
    seconds_until(lambda: serving() == "2", PUSH_BOUND, "the gateway serving production again")
    _registry(gateway, "promote", "digits", "1", "--to", "staged")
    assert _registry(gateway, "promote", "digits", "1").strip() == "digits:1 is now production"
    seconds_until(lambda: serving() == "1", PUSH_BOUND, "the gateway serving the promoted version")


def test_without_redis_the_change_commits_with_one_warning_line(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "m.bin").write_bytes(b"weights")
    with Registry.open(db_url) as reg:
        reg.register("demo", tmp_path / "m.bin", owner="test")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = CliRunner().invoke(app, ["registry", "pin", "demo", "1", "--db", db_url, "--redis", dead])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("pinned demo:1")
    (line,) = result.stderr.splitlines()
    assert line.startswith("warning: could not publish to Redis channel modelshield:controls") and "next poll" in line
    with Registry.open(db_url) as reg:
        assert reg.get("demo", 1).pinned
