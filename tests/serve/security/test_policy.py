"""Casbin RBAC + ABAC policy: role inheritance, clearance, tenant, time, purpose, scopes, deny override, hot reload."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from modelshield.core.errors import InputError
from modelshield.serve.identity import Identity
from modelshield.serve.policy import DEFAULT_MODEL_CONF, DEFAULT_POLICY, PolicyEngine


def who(
    roles: tuple[str, ...], tenant: str | None = "acme", clearance: str = "internal", scopes: tuple[str, ...] = ()
) -> Identity:
    return Identity("u", "api_key", roles, tenant, scopes, {"clearance": clearance})


DIGITS = {"model": "digits", "sensitivity": "internal", "tenant": "acme"}


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine.from_files()


def test_roles_and_inheritance(engine: PolicyEngine) -> None:
    expected = {
        # role: (predict, registry.write, audit.read, keys.admin)
        "predictor": (True, False, False, False),
        "model-manager": (True, True, False, False),
        "auditor": (False, False, True, False),
        "admin": (True, True, True, True),
    }
    for role, answers in expected.items():
        got = tuple(
            engine.decide(who((role,)), act, DIGITS, {"hour": "12"}).allowed
            for act in ("predict", "registry.write", "audit.read", "keys.admin")
        )
        assert got == answers, role
    assert not engine.decide(who(()), "predict", DIGITS).allowed
    assert not engine.decide(who(("no-such-role",)), "predict", DIGITS).allowed


def test_clearance_against_sensitivity(engine: PolicyEngine) -> None:
    for clearance, sensitivity, allowed in [
        ("internal", "public", True),
        ("internal", "internal", True),
        ("internal", "confidential", False),
        ("restricted", "confidential", True),
        ("bogus", "public", False),
        ("restricted", "bogus", False),
    ]:
        d = engine.decide(who(("predictor",), clearance=clearance), "predict", {**DIGITS, "sensitivity": sensitivity})
        assert d.allowed is allowed, (clearance, sensitivity)


def test_tenant_isolation_is_an_overriding_deny(engine: PolicyEngine) -> None:
    d = engine.decide(who(("model-manager",), tenant="globex"), "predict", DIGITS)
    assert not d.allowed and "sameTenant" in d.reason and d.rule[-1] == "deny"
    assert not engine.decide(who(("predictor",), tenant=None), "predict", DIGITS).allowed
    assert engine.decide(
        who(("predictor",), tenant="globex"), "predict", {**DIGITS, "tenant": ""}
    ).allowed  # shared model
    assert engine.decide(who(("admin",), tenant=None, clearance="restricted"), "predict", DIGITS).allowed


def test_time_window_and_purpose(engine: PolicyEngine) -> None:
    restricted = {**DIGITS, "sensitivity": "restricted"}
    boss = who(("predictor",), clearance="restricted")
    assert engine.decide(boss, "predict", restricted, {"hour": "12"}).allowed
    night = engine.decide(boss, "predict", restricted, {"hour": "3"})
    assert not night.allowed and "withinHours" in night.reason
    assert engine.decide(boss, "predict", DIGITS, {"hour": "3"}).allowed  # only restricted models have hours
    assert engine.decide(boss, "predict", DIGITS, {"purpose": "evaluation"}).allowed
    assert not engine.decide(boss, "predict", DIGITS, {"purpose": "marketing"}).allowed
    with pytest.raises(InputError):
        engine.decide(boss, "predict", DIGITS, {"hour": "25"})


def test_scopes_narrow_a_key(engine: PolicyEngine) -> None:
    scoped = who(("model-manager",), scopes=("predict:digits",))
    assert engine.decide(scoped, "predict", DIGITS).allowed
    assert not engine.decide(scoped, "predict", {**DIGITS, "model": "other"}).allowed
    denied = engine.decide(scoped, "registry.write", DIGITS)
    assert not denied.allowed and "scopeAllows" in denied.reason


def test_decision_is_auditable(engine: PolicyEngine) -> None:
    d = engine.decide(who(("predictor",)), "predict", DIGITS)
    fields = d.audit_fields()
    assert fields["decision"] == "allow" and fields["policy_version"] == engine.version and len(engine.version) == 16
    assert fields["rule"].startswith("predictor, *, predict")
    d = engine.decide(who(("auditor",)), "predict", DIGITS)
    assert d.audit_fields()["decision"] == "deny" and "no rule allows predict" in d.reason and d.rule == ()


def test_reload_on_change_and_broken_file_keeps_last_good(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    conf, policy = tmp_path / "model.conf", tmp_path / "policy.csv"
    shutil.copy(DEFAULT_MODEL_CONF, conf)
    shutil.copy(DEFAULT_POLICY, policy)
    engine = PolicyEngine.from_files(conf, policy, check_interval=0)
    v1 = engine.version
    auditor = who(("auditor",))
    assert not engine.decide(auditor, "predict", DIGITS).allowed

    def rewrite(text: str) -> None:
        tmp = policy.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, policy)  # atomic, as editors and config management do
        os.utime(policy, ns=(time.time_ns(), time.time_ns() + 10_000_000))

    rewrite(policy.read_text() + "p, auditor, *, predict, true, allow\n")
    assert engine.decide(auditor, "predict", DIGITS).allowed and engine.version != v1
    v2 = engine.version
    with caplog.at_level(logging.ERROR, logger="modelshield.serve.policy"):
        rewrite(policy.read_text() + "p, auditor, *, predict, clearanceAtLeast(r.sub.clearance,, allow\n")
        d = engine.decide(auditor, "predict", DIGITS)
    assert d.allowed and d.policy_version == v2
    assert any("policy reload failed" in r.message for r in caplog.records)
    rewrite(
        policy.read_text()
        .replace("p, auditor, *, predict, true, allow\n", "")
        .replace("p, auditor, *, predict, clearanceAtLeast(r.sub.clearance,, allow\n", "")
    )
    assert not engine.decide(auditor, "predict", DIGITS).allowed and engine.version == v1


def test_broken_policy_at_start_is_an_input_error(tmp_path: Path) -> None:
    conf, policy = tmp_path / "model.conf", tmp_path / "policy.csv"
    shutil.copy(DEFAULT_MODEL_CONF, conf)
    for text in [
        "p, predictor, *, predict, true, maybe\n",
        "p, predictor, *, predict, nope(, allow\n",
        "p, predictor, *, predict, unknownFunction(r.sub), allow\n",
    ]:
        policy.write_text(text)
        with pytest.raises(InputError):
            PolicyEngine.from_files(conf, policy)
    with pytest.raises(InputError, match="does not exist"):
        PolicyEngine.from_files(conf, tmp_path / "missing.csv")
