"""Auth-bypass attempts against real gateways over real sockets: API keys + JWT on one, mutual TLS on another.

Every attempt must be refused (401/403/404/400/413 or a failed TLS handshake) and none may reach the model;
the count of attempts and bypasses is asserted so a report can say "N attempts, 0 bypasses".
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import secrets
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from modelshield.core.datasets import sklearn_dataset
from modelshield.core.storage import open_engine
from modelshield.serve.apikeys import ApiKeyStore
from modelshield.serve.mtls import MtlsH11Protocol, make_test_pki, server_ssl_context
from tests.serve.server.conftest import ARCH, make_state, running, secure_config

ISS, AUD = "https://idp.example", "modelshield-gateway"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "jay",
        "iss": ISS,
        "aud": AUD,
        "iat": now,
        "exp": now + 300,
        "roles": ["predictor"],
        "clearance": "internal",
        **over,
    }


@pytest.fixture(scope="module")
def body() -> dict[str, Any]:
    return {"inputs": sklearn_dataset("digits", "test", seed=0).x[:1].numpy().tolist()}


@pytest.fixture(scope="module")
def jwt_gateway(weights: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """API keys and RS256 JWTs from a JWKS file; yields the client, the keys and the RSA private key."""
    root = tmp_path_factory.mktemp("bypass")
    state = make_state(root, {"alice": ["predictor"]})
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    (root / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    store = ApiKeyStore.open(state.db_url, pepper_file=state.pepper)
    revoked = store.create("mallory", ["predictor"], attributes={"clearance": "internal"})
    store.revoke(revoked.key_id)
    store.close()
    an_hour_ago = ApiKeyStore.open(state.db_url, pepper_file=state.pepper, clock=lambda: time.time() - 3600)
    expiring = an_hour_ago.create("eve", ["predictor"], expires_in=60, attributes={"clearance": "internal"})
    an_hour_ago.close()
    other_pepper = ApiKeyStore(open_engine(state.db_url), secrets.token_bytes(32))  # e.g. a CLI with the wrong file
    foreign = other_pepper.create("fay", ["predictor"], attributes={"clearance": "internal"})
    other_pepper.close()
    path, digest = weights
    config = secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        auth={"jwks_file": str(root / "jwks.json"), "issuer": ISS, "audience": AUD},
    )
    with running(config) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield (
            client,
            {
                "good": state.keys["alice"],
                "revoked": revoked.plaintext,
                "expired": expiring.plaintext,
                "foreign": foreign.plaintext,
            },
            rsa_key,
        )


def _predict(client: httpx.Client, headers: dict[str, str], body: Any, path: str = "/v1/models/demo/predict") -> int:
    if isinstance(body, bytes):
        return client.post(path, content=body, headers={"Content-Type": "application/json", **headers}).status_code
    return client.post(path, json=body, headers=headers).status_code


def test_auth_bypass_attempts_over_sockets_all_fail(jwt_gateway, body):
    client, keys, rsa_key = jwt_gateway
    good_jwt = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    assert (
        _predict(client, {"Authorization": f"Bearer {keys['good']}"}, body) == 200
    )  # the controls let a real caller in
    assert _predict(client, {"Authorization": f"Bearer {good_jwt}"}, body) == 200
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header_none = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
    alg_none = f"{header_none}.{_b64(json.dumps(_claims()).encode())}."
    signing_input = (
        _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
        + "."
        + _b64(json.dumps(_claims()).encode())
    )
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()  # HMAC keyed with the public key
    hs_confusion = f"{signing_input}.{_b64(mac)}"
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bearer = {
        "missing": None,
        "bearer with no token": "-",
        "garbage": "not-a-token",
        "forged api key": keys["good"][:-4] + "AAAA",
        "revoked api key": keys["revoked"],
        "expired api key": keys["expired"],
        "expired jwt": jwt.encode(
            _claims(exp=int(time.time()) - 60), rsa_key, algorithm="RS256", headers={"kid": "k1"}
        ),
        "wrong audience": jwt.encode(_claims(aud="someone-else"), rsa_key, algorithm="RS256", headers={"kid": "k1"}),
        "wrong issuer": jwt.encode(
            _claims(iss="https://evil.example"), rsa_key, algorithm="RS256", headers={"kid": "k1"}
        ),
        "alg none": alg_none,
        "HS256 signed with the RSA public key": hs_confusion,
        "signed by another key": jwt.encode(_claims(), other_key, algorithm="RS256", headers={"kid": "k1"}),
        "no roles claim": jwt.encode(
            {k: v for k, v in _claims().items() if k != "roles"}, rsa_key, algorithm="RS256", headers={"kid": "k1"}
        ),
        "tampered payload": good_jwt.split(".")[0]
        + "."
        + _b64(json.dumps(_claims(roles=["admin"])).encode())
        + "."
        + good_jwt.split(".")[2],
    }
    outcomes: dict[str, int] = {}
    for name, token in bearer.items():
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        outcomes[name] = _predict(client, headers, body)
    good = {"Authorization": f"Bearer {keys['good']}"}
    for name in ("..%2F..%2Fetc%2Fpasswd", "demo%2F..%2Fdemo", "%2e%2e", "DEMO", "demo%00", "demo;x"):
        outcomes[f"model name {name}"] = _predict(client, good, body, f"/v1/models/{name}/predict")
    outcomes["oversized body"] = _predict(client, good, b'{"inputs": [' + b"0," * 40_000 + b"0]}")
    outcomes["deeply nested body"] = _predict(client, good, b'{"inputs": ' + b"[" * 10_000 + b"]" * 10_000 + b"}")
    outcomes["admin route as predictor"] = client.get("/v1/admin/audit/verify", headers=good).status_code
    bypasses = {name: status for name, status in outcomes.items() if status < 400}
    assert len(outcomes) == 23 and not bypasses, bypasses
    assert {n: s for n, s in outcomes.items() if n in bearer and s != 401} == {"no roles claim": 403}  # authz refuses
    assert outcomes["oversized body"] == 413 and outcomes["deeply nested body"] == 400


def test_request_edges_over_sockets_are_refused_before_the_model(jwt_gateway, body):
    """Repeated headers, bodies that are not plain JSON, repeated keys, and a trailing slash: each refused with
    its own status and a message that says what to send instead; none reaches the model."""
    client, keys, _ = jwt_gateway
    good, other = f"Bearer {keys['good']}", f"Bearer {keys['revoked']}"
    payload = json.dumps(body).encode()
    inputs = json.dumps(body["inputs"]).encode()
    json_type = ("Content-Type", "application/json")

    def post(
        headers: list[tuple[str, str]], content: bytes = payload, path: str = "/v1/models/demo/predict"
    ) -> httpx.Response:
        return client.post(path, content=content, headers=headers)

    assert post([("Authorization", good), json_type]).status_code == 200
    assert post([("Authorization", good), ("Content-Type", "application/json; charset=UTF-8")]).status_code == 200
    assert post([("Authorization", good), json_type], path="/v1/models/demo/%70redict").status_code == 200  # decoded
    wrong_pepper = post([("Authorization", f"Bearer {keys['foreign']}"), json_type])
    assert wrong_pepper.status_code == 401 and "issued under another pepper" in wrong_pepper.json()["error"]
    cases = {
        "Authorization twice, same key": (
            [("Authorization", good), ("Authorization", good), json_type],
            payload,
            401,
            "send one Authorization header, not 2",
        ),
        "Authorization twice, good first": (
            [("Authorization", good), ("Authorization", other), json_type],
            payload,
            401,
            "send one Authorization header",
        ),
        "Authorization twice, good last": (
            [("Authorization", other), ("Authorization", good), json_type],
            payload,
            401,
            "send one Authorization header",
        ),
        "X-API-Key twice": (
            [("X-API-Key", keys["good"]), ("X-API-Key", keys["good"]), json_type],
            payload,
            401,
            "send one X-API-Key header",
        ),
        "no Content-Type": ([("Authorization", good)], payload, 415, "no Content-Type: send application/json"),
        "text/plain": (
            [("Authorization", good), ("Content-Type", "text/plain")],
            payload,
            415,
            "Content-Type 'text/plain' is not accepted",
        ),
        "form": (
            [("Authorization", good), ("Content-Type", "application/x-www-form-urlencoded")],
            payload,
            415,
            "send application/json",
        ),
        "UTF-16": (
            [("Authorization", good), ("Content-Type", "application/json; charset=utf-16")],
            payload.decode().encode("utf-16"),
            415,
            "JSON is sent as UTF-8",
        ),
        "Content-Type twice": (
            [("Authorization", good), json_type, json_type],
            payload,
            400,
            "send the content-type header once",
        ),
        "gzip": (
            [("Authorization", good), json_type, ("Content-Encoding", "gzip")],
            gzip.compress(payload),
            415,
            "Content-Encoding 'gzip' is not accepted: send the JSON body uncompressed",
        ),
        "deflate, br": (
            [("Authorization", good), json_type, ("Content-Encoding", "deflate, br")],
            payload,
            415,
            "Content-Encoding",
        ),
        "repeated key": (
            [("Authorization", good), json_type],
            b'{"inputs": [], "inputs": ' + inputs + b"}",
            400,
            "JSON body repeats an object key",
        ),
        "X-Purpose twice": (
            [("Authorization", good), json_type, ("X-Purpose", "inference"), ("X-Purpose", "evaluation")],
            payload,
            400,
            "send the x-purpose header once",
        ),
    }
    for name, (headers, content, status, message) in cases.items():
        r = post(headers, content)
        assert (r.status_code, message in r.json()["error"], "predictions" in r.json()) == (status, True, False), (
            name,
            r.status_code,
            r.text,
        )
    for path in ("/v1/models/demo/predict/", "/v1/models/demo/predict//", "/v1/models/"):
        r = post([("Authorization", good), json_type], path=path)
        assert r.status_code == 404 and "location" not in r.headers and not r.is_redirect, (path, r.headers)
    declared = client.get("/openapi.json").json()["paths"]["/v1/models/demo/predict"]["post"]["responses"]
    assert {"400", "401", "413", "415", "422"} <= set(declared) and "application/json" in declared["415"]["content"]


def _raw_post(url: str, headers: list[str], payload: bytes) -> tuple[str, bytes]:
    """One hand-written request on a fresh connection: the status line, and whatever the server sent before closing."""
    host, port = url.removeprefix("http://").split(":")
    head = "".join(f"{h}\r\n" for h in ["POST /v1/models/demo/predict HTTP/1.1", "Host: gateway", *headers])
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + payload)
        received = b""
        while chunk := sock.recv(65536):  # the server closes the connection: it keeps nothing after the answer
            received += chunk
    return received.split(b"\r\n", 1)[0].decode(), received


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_length_declared_twice_or_a_compressed_transfer_coding_is_refused(weights, tmp_path, body, http):
    """Content-Length with Transfer-Encoding (request smuggling's shape) is 400 and the connection closes, on both
    HTTP parsers uvicorn runs here; a gzip transfer coding is refused too (415 from the gateway under httptools,
    which would pass the body through still compressed)."""
    state = make_state(tmp_path, {"alice": ["predictor"]})
    path, digest = weights
    config = secure_config(state, {"demo": {"path": str(path), "digest": digest, **ARCH}})
    payload = json.dumps(body).encode()
    chunked = f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n"
    common = [f"Authorization: Bearer {state.keys['alice']}", "Content-Type: application/json"]
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"  # what a proxy using the other length forwards
    with running(config, uvicorn_options={"http": http}) as url:
        ok, _ = _raw_post(url, [*common, f"Content-Length: {len(payload)}", "Connection: close"], payload)
        both, answer = _raw_post(
            url, [*common, "Transfer-Encoding: chunked", f"Content-Length: {len(chunked)}"], chunked + smuggled
        )
        gzipped, _ = _raw_post(url, [*common, "Transfer-Encoding: gzip, chunked", "Connection: close"], chunked)
    assert ok == "HTTP/1.1 200 OK"
    assert both == "HTTP/1.1 400 Bad Request" and answer.count(b"HTTP/1.1 ") == 1  # the smuggled request is not run
    # h11 refuses a transfer coding it does not implement itself (400); httptools would pass it through to us
    assert gzipped.startswith({"h11": "HTTP/1.1 400", "httptools": "HTTP/1.1 415"}[http]), gzipped


def test_mtls_gateway_refuses_clients_without_a_certificate(weights, tmp_path, body):
    pki = make_test_pki(tmp_path / "pki", clients={"svc-a": ["spiffe://acme/svc-a"], "stranger": []})
    state = make_state(tmp_path / "state", {})
    path, digest = weights
    config = secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        server={"tls_cert_file": str(pki.server_cert), "tls_key_file": str(pki.server_key)},
        auth={
            "api_keys": False,
            "mtls_ca_file": str(pki.ca_cert),
            "mtls_role_map": {"URI:spiffe://acme/svc-a": ["predictor"]},
            "mtls_attributes_map": {"URI:spiffe://acme/*": {"clearance": "internal"}},
        },
    )
    options = {
        "http": MtlsH11Protocol,
        "ssl_context_factory": lambda _c, _d: server_ssl_context(pki.server_cert, pki.server_key, pki.ca_cert),
    }
    with running(config, uvicorn_options=options) as url:

        def status(cert: tuple[Path, Path] | None) -> int | str:
            ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
            if cert is not None:
                ctx.load_cert_chain(str(cert[0]), str(cert[1]))
            try:
                with httpx.Client(base_url=url, verify=ctx, timeout=10) as client:
                    return client.post("/v1/models/demo/predict", json=body).status_code
            except (httpx.TransportError, ssl.SSLError) as exc:
                return f"refused: {type(exc).__name__}"

        allowed = status(pki.clients["svc-a"])
        no_cert = status(None)
        unmapped = status(pki.clients["stranger"])
    assert allowed == 200
    assert isinstance(no_cert, str) and no_cert.startswith("refused")  # the TLS handshake itself fails
    assert unmapped in (401, 403)
