"""Fleet-wide controls on two gateway replicas sharing one fresh PostgreSQL database (and the local Redis).

Each test runs on replicas that are apps in threads of this process (default run: seconds) and on replicas that
are ``modelshield serve`` processes (marked slow: on this loaded 2-core machine a process takes up to a minute to
import torch and calibrate its guard). With Redis the replicas poll only every 30 s, so a change seen within
seconds on the other replica came by the Redis push; without Redis they poll every second, and a change must be
seen within that bound (plus the time to apply it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelshield.core.datasets import sklearn_dataset
from tests.fleet.fleet import ensure_postgres, fresh_database
from tests.serve.server.fleet_controls import ControlFleet, seconds_until

PUSH_BOUND = 3.0  # seconds: far below the 30 s poll, so only the Redis push meets it
POLL_SECONDS = 1.0
POLL_BOUND = POLL_SECONDS + 3.0  # the poll, plus loading a version and a loaded machine's delays
KEY_CACHE_BOUND = 5.0 + 3.0  # the gateway's API key cache, plus a loaded machine's delays
X = sklearn_dataset("digits", "test", seed=0).x[:1].numpy().tolist()
NOISE = np.random.default_rng(0).uniform(0, 1, (8, 1, 8, 8)).tolist()  # far from any digit: the guard flags it


KINDS = ["threads", pytest.param("processes", marks=pytest.mark.slow)]


def _fleet(request: pytest.FixtureRequest, weights: Path, redis: bool, poll: float) -> Iterator[ControlFleet]:
    ensure_postgres()
    with fresh_database() as db_url:
        work = request.getfixturevalue("tmp_path_factory").mktemp("fleet")
        processes = request.param == "processes"
        workers = 1 if redis else 2  # the polled process fleet runs two uvicorn workers per replica
        with ControlFleet(
            work, weights, db_url, redis=redis, poll_seconds=poll, processes=processes, workers=workers
        ) as fleet:
            yield fleet


@pytest.fixture(scope="module", params=KINDS)
def pushed(request: pytest.FixtureRequest, weights: tuple[Path, str]) -> Iterator[ControlFleet]:
    """Two replicas on a fresh database and Redis, polling every 30 s."""
    yield from _fleet(request, weights[0], redis=True, poll=30.0)


@pytest.fixture(scope="module", params=KINDS)
def polled(request: pytest.FixtureRequest, weights: tuple[Path, str]) -> Iterator[ControlFleet]:
    """Two replicas on a fresh database without Redis, polling every second."""
    yield from _fleet(request, weights[0], redis=False, poll=POLL_SECONDS)


def _version(fleet: ControlFleet, url: str) -> str | int:
    r = fleet.predict(url, "alice", X)
    return str(r.json()["version"]) if r.status_code == 200 else r.status_code


def test_quarantine_pin_and_rollback_on_one_replica_switch_the_other(pushed: ControlFleet) -> None:
    a, b = pushed.urls
    assert _version(pushed, b) == "2"
    answer = pushed.admin(a, "/v1/admin/models/digits/quarantine", {"reason": "drill"})
    assert answer["quarantined"] == ["2"] and answer["scope"] == "fleet" and answer["generation"] > 0
    seconds_until(lambda: _version(pushed, b) == 503, PUSH_BOUND, "replica b refusing the quarantined version")

    rollback = pushed.admin(a, "/v1/admin/models/digits/pin", {})
    assert rollback["version"] == "1" and rollback["generation"] > answer["generation"]
    seconds_until(lambda: _version(pushed, b) == "1", PUSH_BOUND, "replica b serving the rolled-back version")

    back = pushed.admin(a, "/v1/admin/models/digits/pin", {"version": 2})  # pinned again: out of quarantine
    seconds_until(lambda: _version(pushed, b) == "2", PUSH_BOUND, "replica b serving version 2 again")
    fleet = pushed.controls(b)["fleet"]
    assert fleet["generation_applied"] >= back["generation"] and fleet["redis"] == "listening"
    seen = {r["replica"]: r["generation"] for r in fleet["replicas"]}
    assert len(seen) == 2 and min(seen.values()) >= back["generation"], seen


def test_a_limit_override_and_the_strict_guard_hold_on_every_replica(pushed: ControlFleet) -> None:
    a, b = pushed.urls
    gen = pushed.admin(a, "/v1/admin/limits", {"subject": "carol", "rps": 0.01, "burst": 2})["generation"]
    seconds_until(lambda: pushed.controls(b)["fleet"]["generation_applied"] >= gen, PUSH_BOUND, "b applying it")
    statuses = [pushed.predict(url, "carol", X).status_code for url in (b, a, b)]
    assert statuses == [200, 200, 429]  # one bucket for the fleet: the burst of 2 is spent across both replicas

    assert pushed.predict(b, "alice", NOISE).status_code == 200  # the guard answers a flagged input with abstention
    pushed.admin(a, "/v1/admin/guard", {"mode": "strict", "model": "digits"})
    seconds_until(lambda: pushed.predict(b, "alice", NOISE).status_code == 422, PUSH_BOUND, "b's guard strict")
    assert pushed.controls(b)["guards"]["digits"]["mode"] == "strict"
    pushed.admin(a, "/v1/admin/guard", {"mode": "normal"})
    seconds_until(lambda: pushed.predict(b, "alice", NOISE).status_code == 200, PUSH_BOUND, "b's guard normal")


def test_a_key_revoked_on_one_replica_is_refused_by_the_other(pushed: ControlFleet) -> None:
    a, b = pushed.urls
    assert pushed.predict(b, "bob", X).status_code == 200  # bob's key is now in b's cache
    assert pushed.admin(a, "/v1/admin/keys/revoke", {"subject": "bob"})["scope"] == "fleet"
    seconds_until(lambda: pushed.predict(b, "bob", X).status_code == 401, PUSH_BOUND, "b refusing the revoked key")


def test_without_redis_the_poll_converges_and_a_late_replica_starts_with_the_state(polled: ControlFleet) -> None:
    from modelshield.registry import Registry

    a, b = polled.urls
    assert _version(polled, a) == _version(polled, b) == "2"
    with Registry.open(
        polled.db_url
    ) as registry:  # a promotion made outside the gateways, with the registry CLI's code
        registry.promote("digits", 1, "staged")
        registry.promote("digits", 1, "production")
    for url in (a, b):
        seconds_until(lambda url=url: _version(polled, url) == "1", POLL_BOUND, f"{url} serving the promoted version")

    gen = polled.admin(a, "/v1/admin/models/digits/quarantine", {})["generation"]
    seconds_until(lambda: _version(polled, b) == 503, POLL_BOUND, "b refusing the quarantined version by polling")

    def every_worker_applied() -> bool:
        workers = polled.controls(b)["fleet"]["replicas"]
        return len([w for w in workers if w["generation"] >= gen]) == polled.count * polled.workers

    seconds_until(every_worker_applied, POLL_BOUND, "every worker of every replica applying it")
    polled.admin(a, "/v1/admin/limits", {"subject": "carol", "rps": 0.01, "burst": 1, "expires_in": 600})

    assert polled.predict(b, "bob", X).status_code == 503  # bob's key is now in b's cache (5 s); the model is not
    polled.admin(a, "/v1/admin/keys/revoke", {"subject": "bob"})
    seconds_until(lambda: polled.predict(b, "bob", X).status_code == 401, KEY_CACHE_BOUND, "b refusing bob")

    late = polled.start_replica()
    state = polled.controls(late)
    assert state["fleet"]["generation_applied"] >= gen and state["limits"]["carol"]["rps"] == 0.01
    assert _version(polled, late) == 503 and state["models"]["digits"]["version"] == "1"


@pytest.fixture
def single_host(weights: tuple[Path, str], tmp_path: Path) -> Iterator[ControlFleet]:
    """Two replicas on one SQLite file, no Redis: one host's workers."""
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    with ControlFleet(tmp_path, weights[0], db_url, redis=False, poll_seconds=POLL_SECONDS, processes=False) as fleet:
        yield fleet


def test_on_one_sqlite_file_the_replicas_agree_by_polling(single_host: ControlFleet) -> None:
    a, b = single_host.urls
    single_host.admin(a, "/v1/admin/models/digits/quarantine", {"reason": "drill"})
    seconds_until(lambda: _version(single_host, b) == 503, POLL_BOUND, "b refusing the quarantined version")
    single_host.admin(a, "/v1/admin/models/digits/pin", {"version": 2})
    seconds_until(lambda: _version(single_host, b) == "2", POLL_BOUND, "b serving the released version")


def test_concurrent_changes_from_the_registry_and_the_controls_each_get_their_own_generation(tmp_path: Path) -> None:
    """Writers on separate connections (as on separate replicas) bump the one counter: no number twice, none lost."""
    from concurrent.futures import ThreadPoolExecutor

    from modelshield.core import generation
    from modelshield.registry import Registry
    from modelshield.serve.controls import StoreControls

    ensure_postgres()
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0" * 64)
    with fresh_database() as db_url:
        controls = [StoreControls.open(db_url) for _ in range(4)]
        registry = Registry.open(db_url)
        try:
            mv = registry.register("m", folder, owner="test")
            start = generation.current(controls[0].engine)

            def change(i: int) -> int:
                if i % 5 == 0:
                    registry.pin("m", mv.version)
                    return -1
                return controls[i % 4].put("limit", {f"s{i}": {"rps": 1, "burst": 1}}, expires_at=None)

            with ThreadPoolExecutor(8) as pool:
                got = [g for g in pool.map(change, range(40)) if g >= 0]
            assert len(set(got)) == len(got) == 32  # each control change has a number of its own
            assert generation.current(controls[0].engine) == start + 40  # and the 8 pins counted too
            assert controls[1].snapshot().generation == start + 40
        finally:
            registry.close()
            for c in controls:
                c.close()
