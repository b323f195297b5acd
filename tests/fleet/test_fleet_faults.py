"""Faults across a fleet: gateway replicas behind HAProxy on a PostgreSQL and a Redis of the test's own (which it
kills and restarts: the machine's shared servers are never touched), under load from a client that records every
answer. What an operator relies on, fault by fault:

- kill -9 of one replica: the balancer routes around it; requests it had taken are lost with it (502), never
  answered twice; every request sent after HAProxy marked it down is answered by the others.
- PostgreSQL restarted: the fleet fails closed (503, no answer without its audit record) and serves again by
  itself once the database is back, within a bound.
- Redis restarted: rate limiting fails closed (503), serves again once Redis is back, and the key-revocation feed
  has re-subscribed: a key revoked afterwards is refused by every replica long before its cached verification
  would have expired.

After each: every answered (2xx) request is in the audit log, the chain verifies (``modelshield audit verify``),
and no request waited longer than ``ANSWER_BOUND``: nothing hangs. Every wait in the test is bounded too.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelshield.core.storage import open_engine
from modelshield.serve.apikeys import ApiKeyStore
from modelshield.serve.errors import ServiceUnavailableError
from tests.fleet.fleet import ANSWER_SECONDS, Answer, Fleet, fresh_database
from tests.fleet.services import Postgres, Redis, pg_server, redis_server  # noqa: F401 - fixtures

ANSWER_BOUND = 8.0  # the longest any request may take: the audit writer gives up after 5 s, HAProxy's checks 2 s
RECOVERY_BOUND = 15.0  # from a dependency answering again to the first 2xx through the balancer
CONCURRENCY = 4
# A replica that missed a revocation still accepts the key until its cached verification expires (5 s); the feed
# must beat that by far, also after Redis was restarted under it.
FEED_BOUND = 2.0


def until(condition: Callable[[], bool], what: str, seconds: float) -> float:
    """Poll ``condition`` until it holds; the seconds it took (fails the test after ``seconds``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds:g} s"
        time.sleep(0.05)
    return time.monotonic() - started


class Load:
    """``Fleet.drive`` in a background thread: the answers come back from ``answers()``, with a bounded wait."""

    def __init__(self, fleet: Fleet, seconds: float) -> None:
        self.seconds = seconds
        self._pool = ThreadPoolExecutor(1)
        self._future: Future[list[Answer]] = self._pool.submit(fleet.drive, seconds, concurrency=CONCURRENCY)
        self.started = time.monotonic()

    def answers(self) -> list[Answer]:
        try:
            return self._future.result(timeout=self.seconds + ANSWER_SECONDS + 10)
        finally:
            self._pool.shutdown(wait=False)


def answers_2xx(fleet: Fleet) -> bool:
    try:
        return fleet.predict()[0] == 200
    except Exception:  # noqa: BLE001 - the balancer's own 503 page is not JSON; anything but a 200 is "not yet"
        return False


def assert_nothing_lost(fleet: Fleet, answers: list[Answer]) -> None:
    """Every 2xx answer is in the audit log, the chain verifies, and no request hung."""
    answered = {a.request_id for a in answers if 200 <= a.status < 300}
    audited = {e.get("request_id") for e in fleet.audit_events()}
    missing = answered - audited
    assert not missing, f"{len(missing)} of {len(answered)} answered requests are not in the audit log"
    verify = fleet.verify_audit()
    assert verify.returncode == 0, verify.stdout + verify.stderr
    slowest = max(a.seconds for a in answers)
    assert slowest < ANSWER_BOUND, f"a request took {slowest:.1f} s"


def assert_healed(fleet: Fleet) -> None:
    """Once one 2xx came through, the fleet serves again for everyone: a second of load, every answer 2xx."""
    until(lambda: all(s == "UP" for s in fleet.states().values()), "every replica UP in HAProxy", RECOVERY_BOUND)
    answers = fleet.drive(1.0, concurrency=CONCURRENCY)
    assert answers and Counter(a.status for a in answers) == {200: len(answers)}
    assert_nothing_lost(fleet, answers)


@pytest.fixture(scope="module")
def fleet(
    pg_server: Postgres,  # noqa: F811 - fixture
    redis_server: Redis,  # noqa: F811 - fixture
    fleet_weights: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    """Two replicas on the private servers, shared by this module's tests (each starts from all replicas UP)."""
    with (
        fresh_database(pg_server.url.rsplit("/", 1)[0]) as db,
        Fleet(
            tmp_path_factory.mktemp("fleet-faults"),
            replicas=2,
            db_url=db,
            redis_url=redis_server.url,
            weights=fleet_weights,
        ) as f,
    ):
        yield f


@pytest.fixture
def healthy(fleet: Fleet, pg_server: Postgres, redis_server: Redis) -> Fleet:  # noqa: F811 - fixtures
    """The fleet with every server running and every replica UP in HAProxy (an earlier test may have left one dead)."""
    for server in (pg_server, redis_server):
        if server.process is None or server.process.poll() is not None:
            server.start()
    for i, replica in enumerate(fleet.replicas):
        if replica.proc is None:
            fleet.start_replica(i)
    fleet.wait_states({r.name: "UP" for r in fleet.replicas}, timeout=30)
    return fleet


def test_key_store_down_is_503_not_500_and_heals(pg_server: Postgres) -> None:  # noqa: F811 - fixture
    """The store behind the API keys restarts: a key not verified lately is refused with 503 (never accepted
    unchecked, never a 500), within the connect bound, and accepted again once the database is back."""
    with fresh_database(pg_server.url.rsplit("/", 1)[0]) as db:
        store = ApiKeyStore(open_engine(db), b"p" * 32, cache_ttl=0.01)
        try:
            key = store.create("alice", ["predictor"])
            assert store.verify(key.plaintext).subject == "alice"
            pg_server.stop()
            try:
                time.sleep(0.02)  # the cached verification expires
                started = time.monotonic()
                with pytest.raises(ServiceUnavailableError, match="API key store is unavailable"):
                    store.verify(key.plaintext)
                assert time.monotonic() - started < 6.0
                with pytest.raises(sa.exc.OperationalError):
                    store.flush_last_used()  # the last-used time is kept for the next flush
            finally:
                pg_server.start()
            assert store.verify(key.plaintext).subject == "alice"
            assert store.flush_last_used() == 1
            assert store.list()[0].last_used_at is not None
        finally:
            store.close()
            store.engine.dispose()


@pytest.mark.parametrize(
    "how", ["restart", pytest.param("kill -9", marks=pytest.mark.slow), pytest.param("hung", marks=pytest.mark.slow)]
)
def test_postgres_restarted_mid_load_fails_closed_then_heals(
    healthy: Fleet,
    pg_server: Postgres,  # noqa: F811 - fixture
    how: str,
) -> None:
    """``restart``: PostgreSQL's fast shutdown (every connection of every replica is cut), then a start.
    ``kill -9``: every PostgreSQL process killed at once; the start replays the WAL, and every record acknowledged
    before the crash is still there (the audit log commits with ``synchronous_commit=on``).
    ``hung``: every PostgreSQL process stopped (SIGSTOP): connections stay open and nothing answers."""
    fleet = healthy
    load = Load(fleet, 8.0 if how == "restart" else 16.0)
    until(lambda: min(fleet.served().values()) > 0, "both replicas serving", 10)
    time.sleep(1.0)
    if how == "hung":
        pg_server.pause()
        time.sleep(3.0)
        pg_server.resume()
    else:
        pg_server.stop() if how == "restart" else pg_server.kill()
        time.sleep(1.5)
        pg_server.start()
    until(lambda: answers_2xx(fleet), "a 2xx through the balancer after the restart", RECOVERY_BOUND)
    answers = load.answers()
    statuses = Counter(a.status for a in answers)
    assert statuses[200] > 0 and statuses[503] > 0, statuses  # served, refused while the store was down, served
    # 503 from a replica whose audit log cannot write, or from HAProxy once its checks took every replica out;
    # 0: a request in flight on a replica when HAProxy marked it down, cut off (bounded below, never hung)
    assert set(statuses) <= {200, 503, 0}, statuses
    assert_healed(fleet)
    assert_nothing_lost(fleet, answers)


def test_redis_restarted_mid_load_fails_closed_then_heals(healthy: Fleet, redis_server: Redis) -> None:  # noqa: F811
    fleet = healthy
    load = Load(fleet, 6.0)
    until(lambda: min(fleet.served().values()) > 0, "both replicas serving", 10)
    redis_server.kill()
    killed = time.monotonic()
    time.sleep(1.5)
    restarting = time.monotonic()
    redis_server.start()
    until(lambda: answers_2xx(fleet), "a 2xx through the balancer after the restart", RECOVERY_BOUND)
    answers = load.answers()
    statuses = Counter(a.status for a in answers)
    # every request passes the shared rate limit in Redis: while it is gone, none is admitted (fail closed)
    assert not [a for a in answers if killed < a.sent < restarting and a.status == 200]
    assert statuses[503] > 0 and set(statuses) <= {200, 503, 0}, statuses  # 0: as with PostgreSQL above
    assert_nothing_lost(fleet, answers)
    assert_healed(fleet)
    # the revocation feed re-subscribed on every replica: a key each has verified (and cached for 5 s) is
    # refused by all of them as soon as the feed tells them
    key = fleet.create_key(f"fleet-{fleet.tag}-after-redis")
    for replica in fleet.replicas:
        assert fleet.predict(key, url=replica.url)[0] == 200
    propagation = fleet.revoke_and_time(key, via=1)
    assert max(propagation.seconds.values()) < FEED_BOUND, propagation


def test_key_store_hung_is_503_within_bound_and_heals(pg_server: Postgres) -> None:  # noqa: F811 - fixture
    """The store stops answering with its connections open (the gateway verifies keys on its event loop): a key
    not verified lately is refused with 503 after ``lookup_seconds``, the next one at once, and accepted again
    once the database answers."""
    with fresh_database(pg_server.url.rsplit("/", 1)[0]) as db:
        store = ApiKeyStore(open_engine(db), b"p" * 32, cache_ttl=0.01)
        try:
            key = store.create("alice", ["predictor"])
            assert store.verify(key.plaintext).subject == "alice"
            pg_server.pause()
            try:
                time.sleep(0.02)  # the cached verification expires
                for bound in (store.lookup_seconds + 1.0, 0.5):  # the first waits its bound, the next fails fast
                    started = time.monotonic()
                    with pytest.raises(ServiceUnavailableError, match="API key store is unavailable"):
                        store.verify(key.plaintext)
                    assert time.monotonic() - started < bound
            finally:
                pg_server.resume()
            until(lambda: _verifies(store, key.plaintext), "the key accepted again", 10)
        finally:
            store.close()
            store.engine.dispose()


def _verifies(store: ApiKeyStore, key: str) -> bool:
    try:
        return store.verify(key).subject == "alice"
    except ServiceUnavailableError:
        return False


def test_replica_killed_mid_load_is_routed_around(healthy: Fleet) -> None:
    fleet = healthy
    load = Load(fleet, 6.0)
    until(lambda: fleet.served()["r1"] > 20, "r1 serving before the fault", 10)
    killed = time.monotonic()
    fleet.kill(0)
    down = killed + fleet.wait_states({"r1": "DOWN", "r2": "UP"}, timeout=10)
    answers = load.answers()
    statuses = Counter(a.status for a in answers)
    # A request r1 had already taken dies with it (HAProxy answers 502 or closes the client's connection: 0) and
    # is not sent again (it could have been audited), so nothing is answered twice. A new request that HAProxy
    # sends to the dead r1 before its checks mark it down fails to connect and is re-dispatched to r2.
    assert set(statuses) <= {200, 502, 0}, statuses
    assert statuses[502] + statuses[0] <= CONCURRENCY, statuses
    after = [a for a in answers if a.sent > down]
    assert len(after) > 20 and {a.status for a in after} == {200}, Counter(a.status for a in after)
    assert_nothing_lost(fleet, answers)
