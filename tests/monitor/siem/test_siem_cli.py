"""`modelshield siem`: records a real gateway wrote, exported as OCSF to a file, rsyslog and an HTTP collector,
validated line by line; the spool commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from modelshield.core.datasets import sklearn_dataset
from modelshield.monitor.siem import validate_event
from modelshield.monitor.siem.validate import errors
from tests.serve.server.conftest import ARCH, make_state, running, secure_config

if TYPE_CHECKING:
    from conftest import Collector, Rsyslog

    from tests.conftest import RunMain


@pytest.fixture(scope="module")
def gateway_db(weights: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """An audit log written by the real gateway: allowed, denied and malformed predict requests."""
    path, digest = weights
    state = make_state(tmp_path_factory.mktemp("gw"), {"alice": ["predictor"], "eve": ["auditor"]})
    config = secure_config(state, {"demo": {"path": str(path), "digest": digest, **ARCH}})
    x = sklearn_dataset("digits", "test", seed=0).x[:4].numpy()
    with running(config) as url, httpx.Client(base_url=url, timeout=30) as client:
        for key, body in [
            (state.keys["alice"], {"inputs": x.tolist()}),
            (state.keys["eve"], {"inputs": x[:1].tolist()}),  # 403: not a predictor
            (state.keys["alice"], {"inputs": np.zeros((1, 3)).tolist()}),  # 4xx: wrong shape
            (None, {"inputs": x[:1].tolist()}),  # 401
        ]:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            client.post("/v1/models/demo/predict", json=body, headers=headers)
    return state.db_url, digest


def test_export_gateway_records_to_a_file_validates(
    gateway_db: tuple[str, str], run_main: RunMain, tmp_path: Path
) -> None:
    url, digest = gateway_db
    out = tmp_path / "siem.jsonl"
    code, stdout, stderr = run_main("siem", "export", "--audit-db", url, "--to", str(out))
    assert code == 0, stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    predictions = [e for e in events if e["api"]["operation"] == "predict"]
    assert len(predictions) == 4 and f"next --since {events[-1]['metadata']['sequence']}" in stdout
    for event in events:
        assert errors(validate_event(event)) == [], event
    assert {e["status_code"] for e in predictions} >= {"200", "401", "403"}
    assert predictions[0]["ai_model"] == {
        "name": "demo",
        "version": predictions[0]["ai_model"]["version"],
        "uid": digest,
        "ai_provider": "Internal",
    }
    assert all(e["metadata"]["profiles"] == ["ai_operation"] for e in predictions)
    code, _, stderr = run_main("siem", "validate", str(out))
    assert code == 0 and f"{len(events)} of {len(events)} events valid OCSF" in stderr


def test_validate_names_the_line_and_attribute(tmp_path: Path, gateway_db: tuple[str, str], run_main: RunMain) -> None:
    out = tmp_path / "siem.jsonl"
    assert run_main("siem", "export", "--audit-db", gateway_db[0], "--to", str(out))[0] == 0
    lines = out.read_text().splitlines()
    second: dict[str, Any] = next(json.loads(x) for x in lines if '"ai_model"' in x)
    second["ai_model"].pop("ai_provider")
    out.write_text("\n".join([lines[0], json.dumps(second), "{not json", *lines[1:]]) + "\n")
    code, stdout, _ = run_main("siem", "validate", str(out))
    assert code == 1
    assert f"{out}:2: error: ai_model.ai_provider: required attribute missing from ai_model" in stdout
    assert f"{out}:3: not JSON" in stdout


def test_export_to_rsyslog_over_tcp_and_resume(
    gateway_db: tuple[str, str], rsyslog: Rsyslog, run_main: RunMain
) -> None:
    rsyslog.reset("tcp")
    dest = f"syslog+tcp://127.0.0.1:{rsyslog.ports['tcp']}"
    code, stdout, stderr = run_main("siem", "export", "--audit-db", gateway_db[0], "--to", dest, "--since", "2")
    assert code == 0, stderr
    n = int(stdout.split()[1])
    lines = rsyslog.lines("tcp", n)
    assert len(lines) == n and [json.loads(x.split("|", 4)[4])["metadata"]["sequence"] for x in lines][0] == 3


def test_export_to_a_collector_that_is_down_spools_then_flushes(
    gateway_db: tuple[str, str],
    collector: Collector,
    run_main: RunMain,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spool = tmp_path / "spool.db"
    monkeypatch.setenv("SIEM_TOKEN", "s3cret-token")
    collector.down()
    args = ["--audit-db", gateway_db[0], "--to", collector.url, "--spool", str(spool), "--token-env", "SIEM_TOKEN"]
    code, _, stderr = run_main("siem", "export", *args, "--wait", "0.5")
    assert code == 1 and "still spooled" in stderr and "s3cret" not in stderr
    code, stdout, _ = run_main("siem", "spool", "status", "--spool", str(spool))
    pending = int(stdout.split(": ")[1].split()[0])
    assert code == 0 and pending > 0
    collector.up()
    code, stdout, _ = run_main("siem", "spool", "flush", "--to", collector.url, "--spool", str(spool))
    assert code == 0 and stdout.startswith(f"delivered {pending}; 0 left")
    assert [e["metadata"]["sequence"] for e in collector.received] == list(range(1, pending + 1))
    assert run_main("siem", "spool", "status", "--spool", str(tmp_path / "none.db"))[0] == 2
    audit_file = gateway_db[0].removeprefix("sqlite:///")  # someone else's database is never taken for a spool
    code, _, err = run_main("siem", "spool", "status", "--spool", audit_file)
    assert code == 2 and "is not a SIEM spool" in err


def test_export_with_state_ships_only_what_is_new(tmp_path: Path, run_main: RunMain) -> None:
    from modelshield.audit import AuditLog

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    out, state = tmp_path / "siem.jsonl", tmp_path / "siem.state"
    with AuditLog.open(url) as log:
        for i in range(3):
            log.append({"action": "predict", "model": "digits", "request_id": f"r{i}", "client_ip": "10.0.0.1"})
    args = ["siem", "export", "--audit-db", url, "--to", str(out), "--state", str(state)]
    code, stdout, err = run_main(*args)
    assert stdout.startswith("shipped 3 records (seq 1..3)"), (code, err)
    assert run_main(*args)[1].startswith("shipped 0 records")
    with AuditLog.open(url) as log:
        log.append({"action": "predict", "model": "digits", "request_id": "r3", "client_ip": "10.0.0.1"})
    assert run_main(*args)[1].startswith("shipped 1 records (seq 4..4)")
    assert [json.loads(x)["metadata"]["sequence"] for x in out.read_text().splitlines()] == [1, 2, 3, 4]
    state.write_text("garbage")
    code, _, err = run_main(*args)
    assert code == 2 and "not an export state file" in err
