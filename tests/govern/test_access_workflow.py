"""Data-access requests on a real pipeline run (digits, loaded with `govern load`): the approval workflow with
separation of duties and expiry, the casbin check a training script calls before reading, and the alert a denial
delivers to a real webhook on loopback."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from modelshield.cli.audit import existing_log
from modelshield.govern.access import AccessDenied, AccessStore, authorize_access, require_access
from modelshield.govern.consent import ConsentStore
from modelshield.govern.erasure import file_digest
from modelshield.govern.lineage import read_events
from modelshield.govern.scopes import now_utc
from modelshield.monitor.alerts.loopback import WebhookReceiver
from modelshield.monitor.alerts.signals import read_records, record_signal

if TYPE_CHECKING:
    from conftest import PipelineRun, RunMain

INCOMING = "*/data/incoming.csv"


@pytest.fixture
def governed(pipeline_run: PipelineRun, run_main: RunMain) -> PipelineRun:
    """The run's lineage loaded, and consent for its incoming data: training and evaluation, for a year."""
    code, _, err = run_main("govern", "load", str(pipeline_run.run), "--db", pipeline_run.db)
    assert code == 0, err
    code, out, err = run_main(
        "govern", "consent", "grant", INCOMING, "-p", "training", "-p", "evaluation", "--basis", "consent",
        "--expires", "365d", "--by", "dpo", "--db", pipeline_run.db,
    )  # fmt: skip
    assert code == 0, err
    assert out.count("granted #") == 2
    return pipeline_run


def _request(run: PipelineRun, run_main: RunMain, *extra: str) -> int:
    code, out, err = run_main(
        "govern", "access", "request", "--requester", "alice", "-d", INCOMING, "-p", "training",
        "-c", "p0", "-c", "p1", "-c", "label", "--justification", "retrain digits v2", "--db", run.db, "--json",
        *(extra or ("--expires", "30d")),
    )  # fmt: skip
    assert code == 0, err
    return int(json.loads(out)["id"])


def test_approved_request_allows_the_scoped_access_and_nothing_beyond(governed: PipelineRun, run_main: RunMain) -> None:
    db, data = governed.db, str(governed.system / "data/incoming.csv")
    rid = _request(governed, run_main)
    code, out, err = run_main("govern", "access", "check", "alice", data, "-p", "training", "--db", db)
    assert code == 1 and f"request {rid} is pending" in out

    code, _, err = run_main("govern", "access", "approve", str(rid), "--by", "alice", "--db", db)
    assert code == 2 and "separation of duties" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_main("govern", "access", "approve", str(rid), "--by", "bob", "--db", db)
    assert code == 0 and "approved by bob" in out, err
    code, _, err = run_main("govern", "access", "deny", str(rid), "--by", "carol", "--db", db)
    assert code == 2 and "is approved" in err

    code, out, _ = run_main("govern", "access", "check", "alice", data, "-p", "training", "-c", "p0", "-c", "label", "--db", db, "--json")  # fmt: skip
    decision = json.loads(out)
    assert code == 0 and decision["decision"] == "allow" and decision["request_id"] == rid
    assert decision["rule"].startswith(f"alice, {INCOMING}, training") and decision["rule"].endswith(f"request:{rid}")
    # the same bytes under another name are the same data set (matched by digest through lineage)
    copy = governed.system / "elsewhere.csv"
    shutil.copy(data, copy)
    assert authorize_access("alice", copy, "training", columns=["p0"], db=db).allowed
    # and a data set named as lineage names it (no file at hand) is decided on its recorded digest
    (name,) = {i["name"] for e in read_events(governed.run) for i in e.get("inputs", []) if i["name"].endswith("/incoming.csv")}  # fmt: skip
    assert authorize_access("alice", name, "training", columns=["p0"], db=db).target.digest == file_digest(copy)
    # beyond the scope: another column, another purpose, another person
    assert authorize_access("alice", data, "training", columns=["p5"], db=db).kind == "columns"
    denied = authorize_access("alice", data, "evaluation", db=db)
    assert not denied.allowed and denied.kind == "no-request"
    assert authorize_access("mallory", data, "training", db=db).kind == "no-request"

    code, out, _ = run_main("govern", "access", "revoke", str(rid), "--by", "bob", "--db", db)
    assert code == 0 and "revoked by bob" in out
    assert authorize_access("alice", data, "training", columns=["p0"], db=db).kind == "revoked"

    audit = existing_log(db)
    try:
        records = [e for _, _, e in read_records(audit) if str(e.get("action", "")).startswith("govern.access.")]
    finally:
        audit.dispose()
    transitions = [(e["action"], e["actor"]["subject"]) for e in records if e["action"] != "govern.access.check"]
    assert transitions == [
        ("govern.access.request", "alice"),
        ("govern.access.approve", "bob"),
        ("govern.access.revoke", "bob"),
    ]
    checks = [e["decision"] for e in records if e["action"] == "govern.access.check"]
    assert checks == ["deny", "allow", "allow", "allow", "deny", "deny", "deny", "deny"]
    assert all(e.get("time") and e.get("request_id") == rid for e in records if e["action"] != "govern.access.check")


def test_expiry_ends_an_access_and_an_expired_request_cannot_be_approved(governed: PipelineRun) -> None:
    data = governed.system / "data/incoming.csv"
    now = now_utc()
    with AccessStore.open(governed.db) as store:
        late = store.request("alice", [INCOMING], ["training"], expires=now + timedelta(hours=1), justification="x")
        with pytest.raises(Exception, match="is expired"):
            store.approve(late.id, by="bob", now=now + timedelta(hours=2))
        ok = store.request("alice", [INCOMING], ["training"], expires=now + timedelta(days=1), justification="y")
        store.approve(ok.id, by="bob", now=now)
        store.deny(store.request("alice", [INCOMING], ["evaluation"], expires=now + timedelta(days=1), justification="z").id, by="bob")  # fmt: skip
        with pytest.raises(Exception, match="is denied"):
            store.approve(3, by="carol")
    assert authorize_access("alice", data, "training", db=governed.db, now=now + timedelta(hours=1)).allowed
    after = authorize_access("alice", data, "training", db=governed.db, now=now + timedelta(days=2))
    assert not after.allowed and after.kind == "expired" and f"request {ok.id} is expired" in after.reason


def test_consent_decides_before_any_approval(governed: PipelineRun) -> None:
    """Deny overrides allow: an approved request does not reach past consent, and a withdrawal ends it at once."""
    data = governed.system / "data/incoming.csv"
    with AccessStore.open(governed.db) as store:
        rid = store.request("alice", [INCOMING], ["training", "marketing"], expires=now_utc() + timedelta(days=3), justification="campaign").id  # fmt: skip
        store.approve(rid, by="bob")
    marketing = authorize_access("alice", data, "marketing", db=governed.db)
    assert not marketing.allowed and marketing.kind == "consent" and marketing.rule[-1] == f"consent:{INCOMING}"
    assert "active purposes: evaluation, training" in marketing.reason
    with ConsentStore.open(governed.db) as consent:
        (training,) = [s for s in consent.scopes(active_at=now_utc()) if s.purpose == "training"]
        consent.withdraw(training.id, by="dpo")
    assert authorize_access("alice", data, "training", db=governed.db).kind == "consent"
    # a data set nobody recorded consent for is never allowed
    reference = authorize_access("alice", governed.system / "data/reference.csv", "training", db=governed.db)
    assert reference.kind == "no-consent" and reference.rule[-1] == "no-consent"


def test_a_training_script_is_stopped_and_the_denial_alerts_a_webhook(
    governed: PipelineRun, run_main: RunMain, tmp_path: Path
) -> None:
    hook = WebhookReceiver()
    rules = tmp_path / "alerts.yaml"
    rules.write_text(yaml.safe_dump({
        "version": 1,
        "routes": {"privacy": {"type": "webhook", "url": hook.url}},
        "escalation": {"high": [{"route": "privacy"}]},
        "rules": [{
            "name": "access-beyond-scope", "kind": "threshold", "signal": "govern.access.check",
            "where": {"decision": "deny"}, "value": 1, "op": ">=", "severity": "high", "group_by": ["subject"],
            "summary": "{subject} was refused {dataset} for {purpose} ({kind})",
        }],
    }))  # fmt: skip
    data = str(governed.system / "data/incoming.csv")
    try:
        with pytest.raises(AccessDenied, match="may not use .* for training: no approved access request"):
            require_access("alice", data, "training", db=governed.db)  # what a training script calls first
        code, out, _ = run_main("govern", "access", "check", "alice", data, "-p", "analytics", "--alerts", str(rules), "--db", governed.db)  # fmt: skip
        assert code == 1 and "alert fired → privacy: delivered" in out
        (got,) = hook.wait(1)
    finally:
        hook.close()
    body = json.loads(got["body"])
    assert body["action"] == "alert.fired" and body["alert"]["rule"] == "access-beyond-scope"
    assert (
        body["alert"]["summary"].startswith("alice was refused") and "analytics (consent)" in body["alert"]["summary"]
    )
    audit = existing_log(governed.db)
    try:
        records = list(read_records(audit))
    finally:
        audit.dispose()
    assert [e["action"] for _, _, e in records[-2:]] == ["govern.access.check", "alert.fired"]
    # `monitor alerts run`, following the audit log instead, reads the check as the same signal the rule matches
    _, at_us, check = records[-2]
    followed = record_signal(check, at_us)
    assert followed is not None and followed.name == "govern.access.check"
    assert {k: followed.labels[k] for k in ("decision", "subject")} == {"decision": "deny", "subject": "alice"}


def test_bad_input_is_one_line_and_exit_2(governed: PipelineRun, run_main: RunMain) -> None:
    db = governed.db
    for args, words in [
        (
            (
                "access",
                "request",
                "--requester",
                "a",
                "-d",
                INCOMING,
                "-p",
                "training",
                "--expires",
                "soon",
                "--justification",
                "x",
            ),
            "--expires",
        ),  # fmt: skip
        (
            (
                "access",
                "request",
                "--requester",
                "a",
                "-d",
                "has space",
                "-p",
                "training",
                "--expires",
                "1d",
                "--justification",
                "x",
            ),
            "without spaces",
        ),  # fmt: skip
        (
            (
                "access",
                "request",
                "--requester",
                "a",
                "-d",
                INCOMING,
                "-p",
                "Training!",
                "--expires",
                "1d",
                "--justification",
                "x",
            ),
            "purpose",
        ),  # fmt: skip
        (("access", "approve", "99", "--by", "bob"), "no access request 99"),
        (
            (
                "access",
                "request",
                "--requester",
                "*",
                "-d",
                INCOMING,
                "-p",
                "training",
                "--expires",
                "1d",
                "--justification",
                "x",
            ),
            "no '*'",
        ),  # fmt: skip
        (("access", "check", "alice", str(governed.system / "data"), "-p", "training"), "is a folder"),
        (("consent", "withdraw", "42"), "no consent scope 42"),
        (("access", "check", "alice", "data/typo.csv", "-p", "training"), "neither a file nor a data set"),
    ]:
        code, _, err = run_main("govern", *args, "--db", db)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, (args, err)
