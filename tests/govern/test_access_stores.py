"""The consent, access and DPA records on both stores (a SQLite file and the real local PostgreSQL): the same
workflow, decisions and audit trail; two approvers racing on one request get one approval."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from modelshield.audit.log import AuditLog
from modelshield.core.errors import InputError
from modelshield.core.storage import open_engine
from modelshield.govern.access import AccessStore, check_access
from modelshield.govern.consent import ConsentStore
from modelshield.govern.dpa import DpaStore
from modelshield.govern.erasure import file_digest
from modelshield.govern.scopes import now_utc
from modelshield.monitor.alerts.signals import read_records
from tests.audit.stores import db_url, pg_database  # noqa: F401 - fixtures: a fresh store of each kind


def test_the_workflow_on_each_store(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    data = tmp_path / "breast_cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(data, index=False)
    digest = file_digest(data)
    now = now_utc()
    engine = open_engine(db_url)
    audit = AuditLog(engine)
    try:
        ConsentStore(engine, audit).grant(digest, ["training"], "contract", expires=now + timedelta(days=90), by="dpo")
        DpaStore(engine, audit).add("wdbc-uci", [digest], ["training"], terms="CC BY 4.0", by="legal")
        store = AccessStore(engine, audit)
        rid = store.request(
            "alice", [digest], ["training"], expires=now + timedelta(days=1), justification="baseline"
        ).id
        outcomes: list[str] = []

        def approve(who: str) -> None:
            try:
                store.approve(rid, by=who)
                outcomes.append(who)
            except InputError as e:
                outcomes.append(str(e))

        racers = [threading.Thread(target=approve, args=(w,)) for w in ("bob", "carol")]
        for t in racers:
            t.start()
        for t in racers:
            t.join()
        assert sum(o in ("bob", "carol") for o in outcomes) == 1, outcomes
        assert any("only a pending request can be approved" in o for o in outcomes)
        result = check_access(engine, "alice", data, "training", columns=["mean radius", "target"], audit=audit)
        assert result.decision.allowed and result.decision.request_id == rid
        assert not check_access(engine, "alice", data, "analytics", audit=audit).decision.allowed
        actions = [e["action"] for _, _, e in read_records(engine)]
        assert actions == [
            "govern.consent.grant",
            "govern.dpa.add",
            "govern.access.request",
            "govern.access.approve",
            "govern.access.check",
            "govern.access.check",
        ]
    finally:
        audit.close()
    with pytest.raises(InputError, match="no DPA 9"), DpaStore.open(db_url) as dpas:
        dpas.get(9)
    assert pd.read_csv(data).shape == (569, 31)
