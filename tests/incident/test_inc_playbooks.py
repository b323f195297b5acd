"""Playbooks: the shipped five load, a bad file is one line naming the field, a dry run calls nothing."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from modelshield.core.errors import InputError
from modelshield.incident.playbooks import (
    AdminClient,
    Incident,
    PlaybookRunner,
    builtin_playbooks,
    escalation,
    fill,
    load_playbook,
)

if TYPE_CHECKING:
    from conftest import RunMain

GOOD: dict[str, Any] = {
    "name": "custom",
    "title": "Custom",
    "severity": "high",
    "trigger": {"actions": ["security.extraction"]},
    "steps": [{"name": "cut off", "action": "revoke_keys", "params": {"subject": "{subject}"}, "approval": "secops"}],
    "contain": [{"check": "key_refused", "params": {"subject": "{subject}"}}],
}


def test_the_five_shipped_playbooks_load_with_the_tabletop_escalation_matrix() -> None:
    books = builtin_playbooks()
    assert set(books) == {
        "model-theft",
        "adversarial-campaign",
        "poisoning-detected",
        "data-leak",
        "compromised-credentials",
    }
    critical = escalation(books["compromised-credentials"].severity)
    assert critical.within_minutes == 15 and "commander" in critical.notify
    assert any(s.approval == "secops" for s in books["model-theft"].steps)


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"severity": "dire"}, "severity: Input should be"),
        ({"steps": [{"name": "x", "action": "format_disk"}]}, "steps.0.action"),
        ({"steps": [{"name": "x", "action": "tighten_rate_limit", "params": {"subject": "a"}}]}, "needs burst, rps"),
        ({"steps": [{"name": "x", "action": "notify", "params": {"mesage": "hi"}}]}, "takes no mesage"),
        ({"steps": [{"name": "x", "action": "notify", "approval": "ceo"}]}, "'ceo' is not a role"),
        ({"steps": [{"name": "x", "action": "revoke_keys", "params": {"subject": "{user}"}}]}, "{user} is not one of"),
        ({"contain": []}, "contain: List should have at least 1 item"),
        ({"trigger": {"actions": ["x"], "count": 0}}, "trigger.count"),
        ({"extra": 1}, "extra: Extra inputs are not permitted"),
    ],
)
def test_a_bad_playbook_is_one_line_naming_the_field(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as err:
        load_playbook(_write(tmp_path, {**GOOD, **change}))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_checks_files_and_exits_2_on_a_bad_one(run_main: RunMain, tmp_path: Path) -> None:
    code, out, _ = run_main("incident", "playbooks", str(_write(tmp_path, GOOD)))
    assert code == 0 and "revoke_keys: cut off (needs secops approval)" in out
    code, _, err = run_main("incident", "playbooks", str(_write(tmp_path, "name: [unclosed")))
    assert code == 2 and "not valid YAML" in err


def test_fill_takes_the_incident_and_names_what_is_missing() -> None:
    ctx = {"subject": "mallory", "model": "demo", "version": "3", "incident": "inc-1"}
    assert fill({"s": "{subject} on {model}", "v": "{version}", "n": 2}, ctx) == {
        "s": "mallory on demo",
        "v": 3,
        "n": 2,
    }
    with pytest.raises(InputError, match="no subject"):
        fill({"s": "{subject}"}, {**ctx, "subject": None})


class _Counting(ThreadingHTTPServer):
    """An HTTP server that counts every request it gets (and answers 500)."""

    def __init__(self) -> None:
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                server.hits += 1
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _any  # noqa: N815 - http.server's names

            def log_message(self, format: str, *args: Any) -> None:
                return

        super().__init__(("127.0.0.1", 0), Handler)


def test_a_dry_run_calls_nothing_and_says_what_each_step_would(run_main: RunMain) -> None:
    server = _Counting()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = AdminClient(f"http://127.0.0.1:{server.server_address[1]}", "msk_x_y")
        book = builtin_playbooks()["poisoning-detected"]
        incident = Incident("inc-1", book.name, model="demo", version="2")
        report = PlaybookRunner(client).run(book, incident, dry_run=True)
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    assert server.hits == 0
    assert [s.status for s in report.steps] == ["dry-run"] * 4 and report.ok
    assert (
        report.steps[1].call
        == 'POST /v1/admin/models/demo/quarantine {"reason": "poisoning suspected (incident inc-1)"}'
    )
    code, out, _ = run_main("incident", "run", "model-theft", "--dry-run", "--subject", "mallory", "--model", "demo")
    assert code == 0 and 'POST /v1/admin/keys/revoke {"subject": "mallory"}' in out
