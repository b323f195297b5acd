"""Config, validation and routing on their own: the checks the gateway relies on before any socket is involved."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from modelshield.core.errors import InputError
from modelshield.serve.config import load_config, parse_config
from modelshield.serve.errors import RequestValidationError
from modelshield.serve.routing import Router, bucket
from modelshield.serve.validation import (
    InputSignature,
    batch_from_body,
    batch_from_payload,
    declared_length_ok,
    json_depth_ok,
    parse_json,
    read_capped,
)

SIG = InputSignature(input_shape=(1, 2, 2), bounds=(0.0, 1.0), num_classes=3)
DIGEST = "ab" * 32


def test_config_is_secure_by_default_and_switches_off_only_explicitly(tmp_path):
    cfg = parse_config({"models": {"demo": {"version": 1}}})
    assert cfg.auth.api_keys and not cfg.auth.insecure_disabled
    assert not cfg.audit.insecure_disabled and not cfg.rate_limits.insecure_disabled
    assert not cfg.rate_limits.fail_open
    off = parse_config(
        {"models": {"demo": {"version": 1}}, "auth": {"insecure_disabled": True}, "audit": {"insecure_disabled": True}}
    )
    assert {"auth.insecure_disabled", "audit.insecure_disabled"} <= set(off.insecure_settings())
    with pytest.raises(InputError, match="no authentication method"):
        parse_config({"models": {"demo": {"version": 1}}, "auth": {"api_keys": False}})


def test_audit_durability_fsync_by_default_process_on_request(tmp_path):
    import sqlalchemy as sa

    from modelshield.audit import AuditLog

    cfg = parse_config({"models": {"demo": {"version": 1}}})
    assert cfg.audit.durability == "fsync" and cfg.rate_limits.extraction_signal
    relaxed = parse_config({"models": {"demo": {"version": 1}}, "audit": {"durability": "process"}})
    assert any(s.startswith("audit.durability=process") for s in relaxed.insecure_settings())
    with pytest.raises(InputError, match="durability"):
        parse_config({"models": {"demo": {"version": 1}}, "audit": {"durability": "none"}})
    for durability, pragma in (("fsync", 2), ("process", 1)):  # SQLite: FULL = 2, NORMAL = 1
        log = AuditLog.open(f"sqlite:///{tmp_path / durability}.db", durability=durability)  # type: ignore[arg-type]
        try:
            with log.engine.connect() as conn:
                assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == pragma
            assert log.append({"action": "test", "decision": "allow"}) == 1
        finally:
            log.close()


def test_json_booleans_are_not_numbers():
    ok = json.dumps({"inputs": [[[[0.0, 1.0], [0.5, 0.25]]]]}).encode()
    assert batch_from_body(ok, SIG, max_batch=4, max_depth=8).shape == (1, 1, 2, 2)
    with pytest.raises(RequestValidationError, match="true/false") as err:
        batch_from_body(ok.replace(b"0.5", b"false"), SIG, max_batch=4, max_depth=8)
    assert err.value.status == 422


def test_config_refuses_traversal_names_unpinned_files_and_unknown_keys(tmp_path):
    with pytest.raises(InputError, match="model name"):
        parse_config({"models": {"../etc": {"version": 1}}})
    with pytest.raises(InputError, match="needs digest"):
        parse_config({"models": {"m": {"path": "m.safetensors"}}})
    with pytest.raises(InputError, match="Extra inputs"):
        parse_config({"models": {"m": {"version": 1}}, "auth": {"api_key": True}})
    toml = tmp_path / "serve.toml"
    toml.write_text(
        f'[models.m]\npath = "w.safetensors"\ndigest = "{DIGEST}"\n[models.m.canary]\nversion = 2\npercent = 10\n'
    )
    cfg = load_config(toml)
    assert cfg.models["m"].path == tmp_path / "w.safetensors"
    assert cfg.models["m"].canary is not None and cfg.models["m"].canary.percent == 10
    toml.write_text("[models.m\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_config(toml)


def test_env_urls_are_honoured(monkeypatch):
    monkeypatch.setenv("MODELSHIELD_DB_URL", "sqlite:////tmp/x.db")
    monkeypatch.setenv("MODELSHIELD_REDIS_URL", "redis://127.0.0.1:6379/0")
    cfg = parse_config({"models": {"demo": {"version": 1}}})
    assert cfg.database_url() == "sqlite:////tmp/x.db" and cfg.redis_url() == "redis://127.0.0.1:6379/0"


def _status(fn, *args) -> int:
    with pytest.raises(RequestValidationError) as info:
        fn(*args)
    return info.value.status


def test_validation_statuses():
    ok = [[[[0.0, 0.5], [1.0, 0.25]]]]
    x = batch_from_payload({"inputs": ok}, SIG, 4)
    assert x.dtype == np.float32 and x.shape == (1, 1, 2, 2)
    assert _status(batch_from_payload, {"inputs": ok * 5}, SIG, 4) == 413
    assert _status(batch_from_payload, {"inputs": [[[0.0, 0.5]]]}, SIG, 4) == 422  # shape
    assert _status(batch_from_payload, {"inputs": [[[[0.0, 2.0], [0, 0]]]]}, SIG, 4) == 422  # bounds
    assert _status(batch_from_payload, {"inputs": [[[["a", 0.0], [0, 0]]]]}, SIG, 4) == 422  # dtype
    assert _status(batch_from_payload, {"inputs": [[[[0.0], [0, 0]]]]}, SIG, 4) == 422  # ragged
    assert _status(batch_from_payload, {"inputs": ok, "extra": 1}, SIG, 4) == 422
    assert _status(batch_from_payload, {"inputs": [[[[1e39, 0.0], [0, 0]]]]}, SIG, 4) == 422  # inf in float32
    assert _status(parse_json, b'{"inputs": [[[[NaN, 0], [0, 0]]]]}', 8) == 400
    assert _status(parse_json, b"{not json", 8) == 400
    assert _status(declared_length_ok, "5000", 1000) == 413


def test_depth_limit_reads_raw_bytes_and_ignores_brackets_in_strings():
    json_depth_ok(b'{"a": [[["[[[[[[[[[["]]]}', 4)
    assert _status(json_depth_ok, b"[" * 100_000 + b"]" * 100_000, 8) == 400
    assert _status(json_depth_ok, b'{"inputs": ' + b"[" * 9 + b"]" * 9 + b"}", 8) == 400
    json_depth_ok(json.dumps({"inputs": [[[[0.0] * 8] * 8]] * 3}).encode(), 5)


def test_streamed_read_stops_at_the_cap():
    async def chunks(n):
        for _ in range(n):
            yield b"x" * 100

    assert asyncio.run(read_capped(chunks(3), 300)) == b"x" * 300
    with pytest.raises(RequestValidationError) as info:
        asyncio.run(read_capped(chunks(10**6), 1000))
    assert info.value.status == 413


def test_canary_split_is_deterministic_and_proportional():
    router = Router("m", primary="v1", canary="v2", canary_percent=10.0)
    picks = [router.choose(request_id=str(i), subject=f"user{i}") for i in range(20_000)]
    assert 0.09 < picks.count("v2") / len(picks) < 0.11
    assert all(router.choose(request_id="other", subject=f"user{i}") == picks[i] for i in range(200))
    assert 0.0 <= bucket("x", "salt") < 100.0 and bucket("x", "a") != bucket("x", "b")


def test_shadow_compares_in_background_and_never_blocks():
    async def scenario():
        router = Router("m", primary="v1", shadow="v2", max_pending=2)
        gate = asyncio.Event()
        primary = np.array([[0.9, 0.1], [0.2, 0.8]])

        async def slow_shadow():
            await gate.wait()
            return np.array([[0.7, 0.3], [0.6, 0.4]])

        for _ in range(3):
            router.mirror(primary, slow_shadow)  # returns at once; the third is skipped
        assert router.stats.skipped == 1 and router.stats.compared == 0
        gate.set()
        await router.drain()
        return router.stats

    stats = asyncio.run(scenario())
    assert stats.compared == 4 and stats.agreed == 2 and stats.agreement == 0.5
