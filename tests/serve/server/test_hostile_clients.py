"""The gateway as a hostile or broken client meets it (found by schemathesis and by hand against
``modelshield serve --demo``): every answer is a 4xx with one JSON line, never a 500, a hang or a wrong status."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest

from modelshield.serve.admin import PinBody, QuarantineBody, RevokeBody, parse_body
from modelshield.serve.deadlines import HeaderDeadline, http_protocol
from modelshield.serve.errors import RequestValidationError
from tests.serve.server.conftest import ARCH, make_state, running, secure_config

SAMPLE = [[[0.0] * 8] * 8]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def gateway(weights: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Any:
    path, digest = weights
    state = make_state(tmp_path_factory.mktemp("hostile"), {"admin": ["admin"], "alice": ["predictor"]})
    config = secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        validation={"body_timeout_seconds": 1.0},
    )
    # the protocol ``modelshield serve`` runs
    with running(config, {"http": http_protocol()}) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, state, url


def _is_one_json_error(r: httpx.Response) -> bool:
    body = r.json()
    return set(body) == {"error", "request_id"} and "\n" not in body["error"] and "Traceback" not in r.text


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 1000 + b"]" * 1000,  # nested past Python's recursion limit: was a 500 (RecursionError)
        b'{"subject":"x","rps":1,"burst":1,"subject":"nobody"}',  # which "subject" is meant? parsers disagree
        b'{"subject":"x","rps":NaN,"burst":1}',
        b'{"subject":"x","rps":1,"burst":1',
        b'{"subject":"\xff"}',
    ],
)
def test_admin_write_bodies_that_are_not_plain_json_are_400(gateway, raw):
    client, state, _ = gateway
    r = client.post("/v1/admin/limits", content=raw, headers=bearer(state.keys["admin"]))
    assert r.status_code == 400, r.text
    assert _is_one_json_error(r)


def _send_and_stall(url: str, head: bytes, wait: float) -> tuple[bytes, float]:
    """Send ``head`` (headers and part of a body), send nothing more, and read what comes back."""
    parts = urlsplit(url)
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=wait) as sock:
        sock.sendall(head)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except TimeoutError:
            pass
    return got, time.monotonic() - started


@pytest.mark.parametrize("path", ["/v1/models/demo/predict", "/v1/admin/limits"])
def test_a_body_that_stops_arriving_gets_408_instead_of_holding_the_request(gateway, path):
    _, state, url = gateway
    key = state.keys["admin"]
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    ).encode() + b'{"inputs": [[[0.'
    got, took = _send_and_stall(url, head, wait=15)
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert took < 5 and b"\r\nconnection: close\r\n" in got.lower()  # closed with the answer, not by a timer
    assert b'"error"' in got and key.encode() not in got


def test_too_long_integers_are_refused_without_python_advice(gateway):
    client, state, _ = gateway
    body = '{"inputs": [[[' + "9" * 5000 + "]]]}"
    r = client.post("/v1/models/demo/predict", content=body, headers=bearer(state.keys["alice"]))
    assert r.status_code == 400 and _is_one_json_error(r)
    assert "sys." not in r.text and "set_int_max_str_digits" not in r.text


def test_405_lists_every_method_the_path_answers(gateway):
    client, _, _ = gateway
    r = client.request("OPTIONS", "/v1/admin/session")
    assert r.status_code == 405 and _is_one_json_error(r)
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"POST", "DELETE"}


def test_openapi_describes_the_admin_bodies_and_guard_abstentions(gateway):
    client, _, _ = gateway
    spec = client.get("/openapi.json").json()
    for path in (
        "/v1/admin/keys/revoke",
        "/v1/admin/keys/rotate",
        "/v1/admin/models/{name}/pin",
        "/v1/admin/models/{name}/quarantine",
        "/v1/admin/limits",
        "/v1/admin/guard",
        "/v1/admin/incident/notes",
    ):
        op = spec["paths"][path]["post"]
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert body.get("properties") or body.get("$ref"), path
        assert {"400", "401", "403", "408", "415", "422"} <= set(op["responses"]), path
    predict = spec["paths"]["/v1/models/demo/predict"]["post"]
    assert "408" in predict["responses"]
    ok = predict["responses"]["200"]["content"]["application/json"]["schema"]
    # the guard's abstain fallback answers label -1 and no probabilities for a flagged input
    assert "null" in json.dumps(ok["properties"]["probabilities"]["items"])


@pytest.mark.parametrize("model", [PinBody, QuarantineBody])
def test_admin_version_numbers_stay_database_integers(model):
    # 10**30 reached the registry's SQLite query and came back as a 500 (OverflowError)
    with pytest.raises(RequestValidationError) as caught:
        parse_body(b'{"version": %d}' % 10**30, model)
    assert caught.value.status == 422 and "version" in str(caught.value)
    assert parse_body(b'{"version": 3}', model).version == 3


def test_whole_numbers_written_as_floats_are_versions():
    # JSON Schema's "integer" takes 586.0 (Python's json.dumps writes a float version so); 586.5 is no version
    assert parse_body(b'{"version": 586.0}', PinBody).version == 586
    assert '"minimum": 1' in json.dumps(PinBody.model_json_schema())  # the bounds stay in the published schema
    with pytest.raises(RequestValidationError):
        parse_body(b'{"version": 586.5}', QuarantineBody)


def test_the_revoke_schema_says_exactly_one_of_key_id_and_subject():
    # the gateway answers 422 to {} and to both; the published schema let a client think they were fine
    check = jsonschema.Draft202012Validator(RevokeBody.model_json_schema())
    for body, valid in (
        ({}, False),
        ({"key_id": "a"}, True),
        ({"subject": "b"}, True),
        ({"key_id": None}, False),
        ({"key_id": "a", "subject": "b"}, False),
    ):
        assert check.is_valid(body) is valid, body


def test_rotating_a_key_that_does_not_exist_is_404_like_revoking_it(gateway):
    client, state, _ = gateway
    for path in ("/v1/admin/keys/rotate", "/v1/admin/keys/revoke"):
        r = client.post(path, json={"key_id": "0000000000000000"}, headers=bearer(state.keys["admin"]))
        assert r.status_code == 404 and _is_one_json_error(r), (path, r.text)


def test_switching_the_guard_where_no_model_has_one_is_404(gateway):
    client, state, _ = gateway
    r = client.post("/v1/admin/guard", json={"mode": "normal"}, headers=bearer(state.keys["admin"]))
    assert r.status_code == 404 and _is_one_json_error(r), r.text


def test_a_near_zero_rate_limit_override_answers_429_with_a_finite_retry_after(gateway):
    # schemathesis set rps 5e-324 (the schema's only bound is > 0): the wait before a token is 1e323 s or more
    client, state, _ = gateway
    override = {"subject": "alice", "rps": 5e-324, "burst": 1, "expires_in": 60}
    r = client.post("/v1/admin/limits", json=override, headers=bearer(state.keys["admin"]))
    assert r.status_code == 200, r.text
    try:
        codes = []
        for _ in range(3):
            r = client.post("/v1/models/demo/predict", json={"inputs": [SAMPLE]}, headers=bearer(state.keys["alice"]))
            codes.append(r.status_code)
        assert codes[-1] == 429 and _is_one_json_error(r), (codes, r.text)
        assert 1 <= int(r.headers["retry-after"]) <= 86400 and "inf" not in r.text
    finally:
        lift = {**override, "rps": 10_000, "burst": 100_000, "expires_in": 1}
        client.post("/v1/admin/limits", json=lift, headers=bearer(state.keys["admin"]))


@pytest.mark.parametrize(
    "detail",
    [
        b'{"n": 9007199254740992}',  # 2**53: the audit log's canonical JSON cannot carry it exactly
        b'{"deep": [{"n": -9007199254740993}]}',
        b'{"s": "\\ud800"}',  # a lone surrogate: no UTF-8 spelling
        b'{"\\udc00": 1}',
    ],
)
def test_incident_notes_the_audit_log_cannot_hold_are_422_not_503(gateway, detail):
    client, state, _ = gateway
    body = b'{"incident":"i1","playbook":"p","step":"s","action":"a","status":"started","detail":' + detail + b"}"
    r = client.post("/v1/admin/incident/notes", content=body, headers=bearer(state.keys["admin"]))
    assert r.status_code == 422 and _is_one_json_error(r), r.text
    assert r.json()["error"].startswith("detail: ") and "Value error" not in r.text
    ok = client.post(
        "/v1/admin/incident/notes",
        content=body.replace(detail, b'{"n": 9007199254740991, "s": "\\u00e9"}'),
        headers=bearer(state.keys["admin"]),
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_head_as_get(gateway, path):
    # RFC 9110 §9.3.2: a server answers HEAD wherever it answers GET; load balancers probe with it
    client, _, _ = gateway
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code == 200 and head.content == b""


@pytest.mark.parametrize("sent", [b"POST /v1/models/demo/predict HTTP/1.1\r\nHost: x\r\nContent-", b"GET /hea"])
def test_headers_that_stop_arriving_lose_the_connection(gateway, sent, monkeypatch):
    # slowloris: uvicorn's keep-alive timer stops at the first byte, so part of a request line held a connection
    # (and a file descriptor) for as long as the client liked
    _, _, url = gateway
    monkeypatch.setattr(HeaderDeadline, "header_timeout", 1.0)
    got, took = _send_and_stall(url, sent, wait=20)
    assert took < 10, (got, took)
