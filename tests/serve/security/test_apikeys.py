"""API keys: format, hashed storage, expiry, rotation overlap, revocation (also across replicas via Redis)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelshield.core.errors import InputError, KeyringError
from modelshield.serve.apikeys import ApiKeyStore, RevocationFeed, api_keys_table, load_pepper
from modelshield.serve.errors import AuthenticationError


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def test_key_format_and_only_a_keyed_hash_is_stored(store: ApiKeyStore, engine: sa.Engine) -> None:
    key_id, plaintext = store.create("alice", ["predictor"], tenant="acme", scopes=["predict:digits"])
    prefix, kid, secret = plaintext.split("_")
    assert prefix == "msk" and kid == key_id and len(secret) == 52  # 256-bit secret in base32
    with engine.connect() as conn:
        row = conn.execute(sa.select(api_keys_table)).one()
    dumped = " ".join(str(v) for v in row)
    assert secret not in dumped and plaintext not in dumped
    ident = store.verify(plaintext)
    assert (ident.subject, ident.method, ident.roles, ident.tenant, ident.scopes) == (
        "alice",
        "api_key",
        ("predictor",),
        "acme",
        ("predict:digits",),
    )
    assert ident.attributes["key_id"] == key_id


def test_tampered_truncated_and_foreign_keys_are_refused(store: ApiKeyStore, engine: sa.Engine) -> None:
    _, plaintext = store.create("alice", ["predictor"])
    flipped = plaintext[:-1] + ("a" if plaintext[-1] != "a" else "b")
    for bad in [flipped, plaintext[:-1], plaintext + "a", plaintext.upper(), "msk_" + "0" * 16 + "_" + "a" * 52, ""]:
        with pytest.raises(AuthenticationError):
            store.verify(bad)
    other = ApiKeyStore(engine, os.urandom(32))  # same database, different pepper: the digests are useless
    with pytest.raises(AuthenticationError, match="issued under another pepper than the server's"):
        other.verify(plaintext)
    assert other.foreign_keys() == 1 and store.foreign_keys() == 0
    with pytest.raises(AuthenticationError, match="^invalid API key$"):  # a forged secret under the right pepper
        store.verify(flipped)


def test_expiry(engine: sa.Engine, pepper: bytes) -> None:
    clock = Clock()
    store = ApiKeyStore(engine, pepper, clock=clock)
    _, key = store.create("bob", ["predictor"], expires_in=60)
    assert store.verify(key).subject == "bob"
    clock.t += 61
    with pytest.raises(AuthenticationError, match="expired"):
        store.verify(key)
    assert store.list()[0].status(clock.t) == "expired"


def test_rotation_keeps_old_key_only_for_the_overlap(engine: sa.Engine, pepper: bytes) -> None:
    clock = Clock()
    store = ApiKeyStore(engine, pepper, clock=clock)
    old_id, old = store.create("svc", ["predictor"], tenant="t1", scopes=["predict"], expires_in=86400)
    new = store.rotate(old_id, overlap_seconds=3600)
    assert store.verify(new).subject == "svc" and store.verify(new).tenant == "t1"
    clock.t += 3599
    assert store.verify(old).subject == "svc"  # still inside the overlap
    clock.t += 2
    with pytest.raises(AuthenticationError, match="rotated"):
        store.verify(old)
    assert store.verify(new).scopes == ("predict",)
    infos = {k.key_id: k for k in store.list()}
    assert infos[old_id].replaced_by == new.split("_")[1] and infos[new.split("_")[1]].rotated_from == old_id
    # the successor inherits the lifetime, not the remaining time
    assert infos[new.split("_")[1]].expires_at == pytest.approx(clock.t - 3601 + 86400)
    with pytest.raises(InputError, match="only an active key"):
        store.rotate(old_id)


def test_revocation_is_immediate_in_process_even_when_cached(store: ApiKeyStore) -> None:
    key_id, key = store.create("carol", ["admin"])
    store.verify(key)  # now cached
    store.revoke(key_id)
    with pytest.raises(AuthenticationError, match="revoked"):
        store.verify(key)
    with pytest.raises(InputError):
        store.revoke("0" * 16)


def test_revocation_reaches_another_replica_through_redis(
    engine: sa.Engine, pepper: bytes, redis_url: str, redis_prefix: str
) -> None:
    channel = redis_prefix + "revoked"
    a = ApiKeyStore(engine, pepper, cache_ttl=3600, revocations=RevocationFeed(redis_url, channel))
    b = ApiKeyStore(engine, pepper, cache_ttl=3600, revocations=RevocationFeed(redis_url, channel))
    try:
        key_id, key = a.create("dave", ["predictor"])
        assert b.verify(key).subject == "dave"  # cached in b for an hour
        a.revoke(key_id)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                b.verify(key)
            except AuthenticationError:
                break
            time.sleep(0.01)
        else:
            pytest.fail("replica b still accepts a revoked key after 3 s")
        late = ApiKeyStore(engine, pepper, cache_ttl=3600, revocations=RevocationFeed(redis_url, channel))
        with pytest.raises(AuthenticationError):
            late.verify(key)
        late.close()
    finally:
        a.close()
        b.close()
        import redis

        redis.Redis.from_url(redis_url).delete(channel)


def test_without_a_feed_other_processes_see_revocation_within_the_cache_ttl(engine: sa.Engine, pepper: bytes) -> None:
    clock = Clock()
    a = ApiKeyStore(engine, pepper, clock=clock)
    b = ApiKeyStore(engine, pepper, cache_ttl=5.0, clock=clock)
    key_id, key = a.create("erin", ["predictor"])
    b.verify(key)
    a.revoke(key_id)
    clock.t += 4.9
    assert b.verify(key).subject == "erin"  # b's cached row is at most cache_ttl old
    clock.t += 0.1
    with pytest.raises(AuthenticationError, match="revoked"):
        b.verify(key)


def test_last_used_is_batched_not_written_per_request(store: ApiKeyStore, engine: sa.Engine) -> None:
    key_id, key = store.create("frank", ["predictor"])
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for _ in range(200):
        store.verify(key)
    assert not [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert store.flush_last_used() == 1
    assert store.list()[0].last_used_at is not None


def test_bad_input_to_create(store: ApiKeyStore) -> None:
    for kwargs in [
        dict(roles=[]),
        dict(roles=["bad role"]),
        dict(roles=["r"], expires_in=0),
        dict(roles=["r"], tenant="a b"),
    ]:
        with pytest.raises(InputError):
            store.create("x", **kwargs)


def test_pepper_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIELD_HOME", str(tmp_path))
    monkeypatch.delenv("MODELSHIELD_KEY_PEPPER_FILE", raising=False)
    first = load_pepper()
    assert load_pepper() == first and len(first) == 32
    assert (tmp_path / "apikey-pepper").stat().st_mode & 0o777 == 0o600
    (tmp_path / "apikey-pepper").chmod(0o644)
    with pytest.raises(KeyringError, match="accessible to others"):
        load_pepper()
    with pytest.raises(KeyringError, match="does not exist"):
        load_pepper(tmp_path / "nope")


def test_a_missing_pepper_file_is_not_replaced_while_keys_need_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pepper file lost (volume not mounted, file deleted): refuse, naming the file to restore, instead of
    creating a new pepper under which every existing key would fail as "invalid API key"."""
    monkeypatch.setenv("MODELSHIELD_HOME", str(tmp_path))
    monkeypatch.delenv("MODELSHIELD_KEY_PEPPER_FILE", raising=False)
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    store = ApiKeyStore.open(url)  # first start: the default pepper file is created
    _, key = store.create("ivan", ["predictor"])
    lost = tmp_path / "apikey-pepper"
    lost.unlink()
    with pytest.raises(KeyringError) as info:
        ApiKeyStore.open(url)
    message = info.value.diagnostics()
    assert f"{lost} is missing" in message and store.pepper_id in message and f"restore {lost}" in message
    assert not lost.exists() and len(message.splitlines()) == 1
    clock = Clock()
    clock.t = 4_000_000_000.0  # once every such key has expired, nothing needs the old pepper any more
    fresh = ApiKeyStore.open(url, clock=clock)
    assert lost.exists() and fresh.pepper_id != store.pepper_id
    with pytest.raises(AuthenticationError, match="another pepper"):
        ApiKeyStore.open(url).verify(key)


def test_replicas_creating_the_pepper_at_once_agree_on_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """First start of several gateways on one volume: one pepper wins, none fails, no temporary file is left."""
    monkeypatch.setenv("MODELSHIELD_HOME", str(tmp_path))
    monkeypatch.delenv("MODELSHIELD_KEY_PEPPER_FILE", raising=False)
    with ThreadPoolExecutor(8) as pool:
        peppers = set(pool.map(lambda _: load_pepper(), range(16)))
    assert len(peppers) == 1 and [p.name for p in tmp_path.iterdir()] == ["apikey-pepper"]


def test_keys_in_postgresql_shared_by_two_replicas(pg_engine: sa.Engine, pepper: bytes) -> None:
    a, b = ApiKeyStore(pg_engine, pepper), ApiKeyStore(pg_engine, pepper, cache_ttl=0)
    key_id, key = a.create("grace", ["model-manager"], tenant="acme")
    assert b.verify(key).roles == ("model-manager",)
    new = b.rotate(key_id, overlap_seconds=0)
    with pytest.raises(AuthenticationError):
        b.verify(key)
    assert a.verify(new).subject == "grace"
    a.revoke(new.split("_")[1])
    with pytest.raises(AuthenticationError, match="revoked"):
        b.verify(new)
    assert [k.status() for k in b.list("grace")] == ["expired", "revoked"]
