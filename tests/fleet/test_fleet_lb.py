"""Two ``modelshield serve`` replicas on one PostgreSQL and one Redis behind HAProxy (deploy/haproxy/haproxy.cfg)
act as one service: both take traffic, a rate limit and a daily quota hold across them, a key revoked or a model
quarantined through one is refused by both within a bound, and their concurrent audit appends form one chain
that verifies."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelshield.serve.runtime import file_digest
from tests.fleet.fleet import PREDICT, Fleet

RPS, BURST = 20.0, 20.0  # per identity, shared through Redis
QUOTA, BATCH = 2000, 200  # samples per identity per day: 10 batches
# The Redis feed tells every replica at once; without it a replica would accept a key it verified in the last
# 5 s (ApiKeyStore.cache_ttl) until that entry expires. 1 s leaves room for a loaded machine's round trips.
REVOCATION_BOUND = 1.0
SPARE = "/v1/models/spare/predict"  # a second route on the same weights, for the quarantine test


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, fleet_weights: Path) -> Iterator[Fleet]:
    spare = (
        f'\n[models.spare]\npath = "{fleet_weights}"\ndigest = "{file_digest(fleet_weights)}"\n'
        'arch = "modelshield.demo:DigitsCNN"\ninput_shape = [1, 8, 8]\n'
    )
    with Fleet(
        tmp_path_factory.mktemp("fleet"),
        replicas=2,
        weights=fleet_weights,
        rps=RPS,
        burst=BURST,
        daily_quota=QUOTA,
        extra_config=spare,
    ) as f:
        yield f


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after}


def test_both_replicas_answer_through_the_balancer(fleet: Fleet) -> None:
    before = fleet.served()
    keys = [fleet.create_key(f"fleet-{fleet.tag}-spread{i}") for i in range(4)]  # 4 × 20 req/s, under the limit
    answers = fleet.drive(2.0, concurrency=4, rate=40, keys=keys)
    assert answers and Counter(a.status for a in answers) == {200: len(answers)}
    per_replica = _delta(before, fleet.served())
    assert sum(per_replica.values()) == len(answers)
    assert min(per_replica.values()) >= 0.25 * len(answers), per_replica  # leastconn spreads them


def test_rate_limit_holds_across_replicas_at_a_10x_burst(fleet: Fleet) -> None:
    key = fleet.create_key(f"fleet-{fleet.tag}-burst")
    before = fleet.served()
    answers = fleet.drive(4.0, concurrency=16, rate=10 * RPS, keys=[key])
    per_replica = _delta(before, fleet.served())
    assert min(per_replica.values()) > 0.25 * len(answers), per_replica  # both replicas spent from the bucket
    statuses = Counter(a.status for a in answers)
    assert set(statuses) == {200, 429}, statuses
    span = max(a.sent for a in answers) - min(a.sent for a in answers)  # as Redis saw them, one latency later
    expected = BURST + RPS * span
    offered = len(answers) / span
    assert offered > 7 * RPS, f"the load generator offered only {offered:.0f} req/s"
    # One process's bucket would let each replica pass BURST + RPS·t: about twice as many.
    assert abs(statuses[200] - expected) <= 0.05 * expected, (statuses, expected)


def test_daily_quota_holds_across_replicas(fleet: Fleet) -> None:
    """Batches of 200 samples against a 2,000-sample quota, alternating between the replicas: 10 pass in all."""
    key = fleet.create_key(f"fleet-{fleet.tag}-quota")
    import json

    body = json.dumps({"inputs": json.loads(fleet.body)["inputs"] * BATCH}).encode()
    statuses = []
    for i in range(16):
        if i % 5 == 4:  # now and then through the balancer too
            url = fleet.url
        else:
            url = fleet.replicas[i % 2].url
        r = httpx.post(url + PREDICT, content=body, headers=fleet.headers(key), timeout=15)
        statuses.append(r.status_code)
        time.sleep(1.0 / RPS)  # stay under the request rate limit: only the quota refuses
    assert statuses[: QUOTA // BATCH] == [200] * (QUOTA // BATCH)
    assert statuses[QUOTA // BATCH :] == [429] * (16 - QUOTA // BATCH)


def test_key_revoked_through_one_replica_is_refused_by_every_replica(fleet: Fleet) -> None:
    key = fleet.create_key(f"fleet-{fleet.tag}-revoked")
    for replica in fleet.replicas:  # each replica has verified (and cached) the key
        assert fleet.predict(key, url=replica.url)[0] == 200
    got = fleet.revoke_and_time(key, via=0)
    assert got.accepted_after["r1"] == 0  # the replica that revoked it: at once
    assert max(got.seconds.values()) < REVOCATION_BOUND, got
    before = fleet.served()
    statuses = Counter(fleet.predict(key)[0] for _ in range(10))
    assert statuses == {401: 10}
    assert min(_delta(before, fleet.served()).values()) > 0  # refused by each replica behind the balancer


def test_audit_log_is_one_chain_of_every_request_from_both_replicas(fleet: Fleet) -> None:
    keys = [fleet.create_key(f"fleet-{fleet.tag}-audit{i}") for i in range(8)]
    before = fleet.served()
    answers = fleet.drive(3.0, concurrency=16, keys=keys)
    assert min(_delta(before, fleet.served()).values()) > 0.25 * len(answers)
    ok = {a.request_id for a in answers if 200 <= a.status < 300}
    assert len(ok) > 50 and all(a.status in (200, 429) for a in answers)
    events = fleet.audit_events()
    audited = {e.get("request_id") for e in events}
    assert ok <= audited, f"{len(ok - audited)} answered requests are missing from the audit log"
    assert {a.request_id for a in answers} <= audited  # the refusals too
    verify = fleet.verify_audit()
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"intact: {len(events)} records" in verify.stdout


def _quarantine_spare(fleet: Fleet, via: int) -> None:
    answer = httpx.post(
        fleet.replicas[via].url + "/v1/admin/models/spare/quarantine",
        json={"reason": "fleet test"},
        headers={"Authorization": f"Bearer {fleet.admin_key}"},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.json()["scope"] == "fleet", answer.text


# The two quarantine tests come last: a quarantine cannot be lifted on a route pinned by digest in the config.


def test_quarantine_sent_to_one_replica_holds_on_every_replica(fleet: Fleet) -> None:
    key = fleet.create_key(f"fleet-{fleet.tag}-quarantine")

    def status(url: str) -> int:
        time.sleep(1.5 / RPS)  # under the identity's rate limit
        return httpx.post(url + SPARE, content=fleet.body, headers=fleet.headers(key), timeout=10).status_code

    for replica in fleet.replicas:
        assert status(replica.url) == 200
    _quarantine_spare(fleet, via=1)
    quarantined_at = time.monotonic()
    pending = {r.name: r.url for r in fleet.replicas}
    while pending:
        for name, url in list(pending.items()):
            if status(url) == 503:
                del pending[name]
        assert time.monotonic() - quarantined_at < 5.0, f"{sorted(pending)} still serve the quarantined version"
    assert Counter(status(fleet.url) for _ in range(4)) == {503: 4}


def test_quarantining_one_model_keeps_the_replicas_in_the_balancer(fleet: Fleet) -> None:
    _quarantine_spare(fleet, via=0)  # idempotent: the same quarantine again
    time.sleep(3.5)  # more than the 2 failed checks 1 s apart that take a replica out
    assert fleet.states() == {r.name: "UP" for r in fleet.replicas}
    assert fleet.predict()[0] == 200
