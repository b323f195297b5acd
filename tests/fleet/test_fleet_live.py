"""Live monitoring across gateway replicas: two ``modelshield serve`` replicas on one PostgreSQL and one Redis show
one fleet-wide window — either replica's monitor view counts all the traffic and its merged class mix, and a
campaign split across them raises each output alarm once, as one process seeing all of it would; when the
evaluating replica dies the other takes over. Without Redis the view says it is one worker's share and the gateway
goes on."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelshield.core.datasets import sklearn_dataset
from modelshield.core.model import TorchModel
from modelshield.monitor.outputs import OutputMonitor
from modelshield.serve.config import MonitorConfig
from modelshield.serve.live import build_monitor
from modelshield.serve.runtime import file_digest
from tests.fleet.fleet import PREDICT, Fleet
from tests.fleet.services import private_redis
from tests.serve.server.conftest import ARCH, make_state, running, secure_config

MONITOR = {"reference_data": "sklearn:digits:train", "window": 200, "min_rows": 100, "check_seconds": 0.5}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, fleet_weights: Path) -> Iterator[Fleet]:
    table = "\n[monitor]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in MONITOR.items())
    with Fleet(tmp_path_factory.mktemp("fleet-live"), replicas=2, weights=fleet_weights, extra_config=table) as f:
        yield f


@pytest.fixture(scope="module")
def answered() -> list[np.ndarray]:
    """Every probability the fleet answered in this module, in the order sent (the one-process replay)."""
    return []


def view(url: str, key: str) -> dict[str, Any]:
    r = httpx.get(url + "/v1/admin/monitor", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def wait_for(fleet: Fleet, done: Callable[[dict[str, Any]], bool], seconds: float = 15.0) -> list[dict[str, Any]]:
    """Every replica's view, once ``done`` holds for each."""
    deadline = time.monotonic() + seconds
    while True:
        views = [view(r.url, fleet.admin_key) for r in fleet.replicas]
        if all(done(v) for v in views):
            return views
        assert time.monotonic() < deadline, [v["models"]["demo"] | {"scope": v["scope"]} for v in views]
        time.sleep(0.2)


def send(fleet: Fleet, replica: int, x: np.ndarray, answered: list[np.ndarray]) -> list[int]:
    r = httpx.post(
        fleet.replicas[replica].url + PREDICT, json={"inputs": x.tolist()}, headers=fleet.headers(), timeout=30
    )
    assert r.status_code == 200, r.text
    answered.append(np.asarray(r.json()["probabilities"]))
    predictions: list[int] = r.json()["predictions"]
    return predictions


def total(v: dict[str, Any], counter: str) -> int:
    return sum(int(b.get(counter, 0)) for b in v["models"]["demo"]["buckets"])


def test_either_replica_shows_the_whole_fleets_traffic_and_class_mix(fleet: Fleet, answered: list[np.ndarray]) -> None:
    x = sklearn_dataset("digits", "test", seed=0).x.numpy()
    x = x[np.random.default_rng(1).permutation(len(x))[:200]]
    predicted: Counter[int] = Counter()
    for i in range(10):  # 6 batches of 20 to r1, 4 to r2
        predicted.update(send(fleet, 0 if i < 6 else 1, x[20 * i : 20 * (i + 1)], answered))
    views = wait_for(fleet, lambda v: total(v, "requests") == 10 and v["models"]["demo"]["classes"] == {
        str(k): predicted[k] for k in sorted(predicted)})  # fmt: skip
    for v in views:
        assert v["scope"] == "fleet" and v["workers"] == 2
        assert total(v, "samples") == 200 and total(v, "allowed") == 10
    assert views[0]["worker"] != views[1]["worker"]  # two processes, one view


def test_a_campaign_split_across_replicas_raises_each_alarm_once(
    fleet: Fleet, answered: list[np.ndarray], digits_model: TorchModel
) -> None:
    data = sklearn_dataset("digits", "test", seed=0)
    zeros = data.x.numpy()[data.y.numpy() == 0]
    campaign = np.concatenate([zeros] * 3)[:100]  # a poisoning-like run of one class: 2 × 50, one per replica
    time.sleep(3)  # the campaign in seconds of its own
    send(fleet, 0, campaign[:50], answered)
    send(fleet, 1, campaign[50:], answered)
    # one process seeing the same outputs in the same order, with the gateway's reference
    monitor = build_monitor("demo", MonitorConfig(**MONITOR), digits_model)
    assert isinstance(monitor.outputs, OutputMonitor)
    alone = Counter((a.detector, a.stream) for a in monitor.outputs.update(np.concatenate(answered)))
    views = wait_for(fleet, lambda v: (v["models"]["demo"]["outputs_seen"] or 0) >= 300, seconds=20)
    deadline = time.monotonic() + 10  # the evaluator's audit appends follow its verdict
    while True:
        fired = Counter(
            (e["alarm"]["detector"], e["alarm"]["stream"]) for e in fleet.audit_events()
            if e["action"] == "monitor.output_alarm"
        )  # fmt: skip
        if fired == alone or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert fired == alone and ("cusum", "class:0") in fired, (fired, alone)
    time.sleep(1)  # two more checks
    again = Counter(
        (e["alarm"]["detector"], e["alarm"]["stream"]) for e in fleet.audit_events()
        if e["action"] == "monitor.output_alarm"
    )  # fmt: skip
    assert again == fired  # and no second replica raises them again later
    assert views[0]["models"]["demo"]["evaluated_by"] == views[1]["models"]["demo"]["evaluated_by"]
    shown = [[(a["detector"], a["stream"]) for a in v["models"]["demo"]["alarms"]] for v in views]
    assert Counter(shown[0]) == Counter(shown[1]) == fired


def test_when_the_evaluator_dies_the_other_replica_takes_over(fleet: Fleet, answered: list[np.ndarray]) -> None:
    """The lease lapses (3 × check_seconds) and the survivor evaluates from the dead one's cursor on."""
    before = wait_for(fleet, lambda v: v["models"]["demo"]["evaluated_by"] is not None)[0]["models"]["demo"]
    pids = {int(r.proc.pid): i for i, r in enumerate(fleet.replicas) if r.proc is not None}
    dead = pids[int(before["evaluated_by"].split(":")[1])]
    survivor = 1 - dead
    fleet.kill(dead)
    x = sklearn_dataset("digits", "test", seed=0).x.numpy()[:20]
    send(fleet, survivor, x, answered)
    deadline = time.monotonic() + 15
    while True:
        after = view(fleet.replicas[survivor].url, fleet.admin_key)
        demo = after["models"]["demo"]
        if demo["evaluated_by"] == after["worker"] and demo["seen"] >= before["seen"] + 20:
            break
        assert time.monotonic() < deadline, demo
        time.sleep(0.2)
    assert after["scope"] == "fleet" and total(after, "requests") >= 13


def test_without_redis_the_view_is_one_workers_and_the_gateway_goes_on(fleet_weights: Path, tmp_path: Path) -> None:
    state = make_state(tmp_path / "state", {"alice": ["predictor"], "auditor": ["auditor"]})
    x = sklearn_dataset("digits", "test", seed=0).x.numpy()[:10]
    with private_redis() as redis_server:
        config = secure_config(
            state,
            {"digits": {"path": str(fleet_weights), "digest": file_digest(fleet_weights), **ARCH}},
            monitor={**MONITOR, "window": 100},
            rate_limits={"redis_url": redis_server.url, "redis_prefix": "live-down", "fail_open": True},
        )
        with running(config) as url, httpx.Client(base_url=url, timeout=30) as client:
            alice, auditor = {"Authorization": f"Bearer {state.keys['alice']}"}, state.keys["auditor"]
            assert client.post("/v1/models/digits/predict", json={"inputs": x.tolist()}, headers=alice).is_success
            deadline = time.monotonic() + 10
            while (v := view(url, auditor))["scope"] != "fleet" or total_of(v) < 1:
                assert time.monotonic() < deadline, v
                time.sleep(0.2)
            redis_server.kill()
            for _ in range(3):
                assert client.post("/v1/models/digits/predict", json={"inputs": x.tolist()}, headers=alice).is_success
            deadline = time.monotonic() + 10
            while (v := view(url, auditor))["scope"] != "worker":
                assert time.monotonic() < deadline, v
                time.sleep(0.2)
            assert "Redis unreachable" in v["scope_reason"] and "this worker's traffic only" in v["scope_reason"]
            assert total_of(v) == 4  # this worker's own windows, the requests before the outage included
            assert client.get("/readyz").status_code in (200, 503)  # answers (Redis is its own readiness check)


def total_of(v: dict[str, Any]) -> int:
    return sum(int(b.get("requests", 0)) for b in v["models"]["digits"]["buckets"])
