"""Consent scopes: granted per data set and purpose with a legal basis and an expiry, withdrawn, listed, audited."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

from modelshield.cli.audit import existing_log
from modelshield.govern.consent import ConsentStore
from modelshield.govern.scopes import now_utc
from modelshield.monitor.alerts.signals import read_records

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import RunMain


def test_scopes_expire_and_withdraw_and_every_change_is_audited(run_main: RunMain, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gov.db'}"
    code, out, err = run_main(
        "govern", "consent", "grant", "sha256:" + "ab" * 32, "-p", "analytics", "--basis", "legitimate_interests",
        "--expires", "2030-01-01", "--note", "LIA 2026-04", "--by", "dpo", "--db", db, "--json",
    )  # fmt: skip
    assert code == 0, err
    (scope,) = json.loads(out)
    assert scope["expires_at"] == "2030-01-01T00:00:00+00:00" and scope["legal_basis"] == "legitimate_interests"
    now = now_utc()
    with ConsentStore.open(db) as store:
        (short,) = store.grant("*/claims.csv", ["training"], "contract", expires=now + timedelta(days=1), by="dpo")
        assert [s.id for s in store.scopes(active_at=now)] == [scope["id"], short.id]
        assert [s.id for s in store.scopes(active_at=now + timedelta(days=2))] == [scope["id"]]
        assert short.state(now + timedelta(days=2)) == "expired"
    code, out, err = run_main("govern", "consent", "withdraw", str(scope["id"]), "--by", "dpo", "--db", db)
    assert code == 0 and "withdrawn" in out, err
    code, _, err = run_main("govern", "consent", "withdraw", str(scope["id"]), "--db", db)
    assert code == 2 and "already withdrawn by dpo" in err
    code, out, _ = run_main("govern", "consent", "list", "--db", db)
    assert "[withdrawn]" in out and "*/claims.csv  training  (contract)" in out
    code, out, _ = run_main("govern", "consent", "list", "--active", "--db", db, "--json")
    assert [s["dataset"] for s in json.loads(out)] == ["*/claims.csv"]
    audit = existing_log(db)
    try:
        events = [e for _, _, e in read_records(audit)]
    finally:
        audit.dispose()
    assert [(e["action"], e["actor"]["subject"]) for e in events] == [
        ("govern.consent.grant", "dpo"),
        ("govern.consent.grant", "dpo"),
        ("govern.consent.withdraw", "dpo"),
    ]


def test_a_consent_needs_a_legal_basis_and_a_future_expiry(run_main: RunMain, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gov.db'}"
    code, _, err = run_main("govern", "consent", "grant", "x.csv", "-p", "training", "--basis", "because", "--db", db)
    assert code == 2 and "GDPR Art. 6(1)" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_main("govern", "consent", "grant", "x.csv", "-p", "training", "--basis", "consent", "--expires", "2020-01-01", "--db", db)  # fmt: skip
    assert code == 2 and "before it is granted" in err
