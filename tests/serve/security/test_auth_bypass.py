"""Auth-bypass suite at the library level: every attempt must end in 401 (authn) or 403 (policy), none in access."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from test_jwt_auth import AUD, ISS, b64, claims, hs256_with_public_key, write_jwks

from modelshield.serve.apikeys import ApiKeyStore
from modelshield.serve.auth import Authenticator
from modelshield.serve.errors import AuthenticationError, AuthorizationError
from modelshield.serve.identity import Identity
from modelshield.serve.jwt_auth import JwtVerifier
from modelshield.serve.mtls import MtlsConfig
from modelshield.serve.policy import PolicyEngine

MODEL = {"model": "digits", "sensitivity": "internal", "tenant": "acme"}


class Clock:
    t = 1_900_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def gate(tmp_path: Path, engine: sa.Engine, pepper: bytes) -> dict[str, Any]:
    clock = Clock()
    keys = {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
    write_jwks(tmp_path / "jwks.json", keys)
    store = ApiKeyStore(engine, pepper, clock=clock)
    auth = Authenticator(api_keys=store, jwt=JwtVerifier(tmp_path / "jwks.json", issuer=ISS, audience=AUD, leeway=0))
    return {"auth": auth, "store": store, "keys": keys, "clock": clock, "policy": PolicyEngine.from_files()}


def access(
    gate: dict[str, Any], headers: dict[str, str], peer_cert: Any = None, auth: Authenticator | None = None
) -> Identity:
    """What a gateway does per request: authenticate, then authorise predict on the acme model."""
    ident = (auth or gate["auth"]).authenticate(headers, peer_cert)
    decision = gate["policy"].decide(ident, "predict", MODEL, {"hour": "12"})
    if not decision.allowed:
        raise AuthorizationError(decision.reason)
    return ident


def test_bypass_attempts_all_fail(gate: dict[str, Any]) -> None:
    store, keys, clock = gate["store"], gate["keys"], gate["clock"]
    _, good_key = store.create("alice", ["predictor"], tenant="acme", attributes={"clearance": "internal"})
    good_jwt = jwt.encode(claims(), keys["rsa"], algorithm="RS256", headers={"kid": "rsa"})
    assert access(gate, {"X-API-Key": good_key}).subject == "alice"  # the controls: real credentials pass
    assert access(gate, {"Authorization": f"Bearer {good_jwt}"}).subject == "alice"

    revoked_id, revoked = store.create("bob", ["predictor"], tenant="acme")
    store.revoke(revoked_id)
    rotated_id, rotated = store.create("carol", ["predictor"], tenant="acme")
    store.rotate(rotated_id, overlap_seconds=60)
    _, other_tenant = store.create("mallory", ["predictor"], tenant="globex")
    _, auditor_only = store.create("eve", ["auditor"], tenant="acme")
    _, scoped = store.create("svc", ["predictor"], tenant="acme", scopes=["predict:other-model"])
    confused = hs256_with_public_key(keys["rsa"], "rsa", claims())
    none_alg = f"{b64(json.dumps({'alg': 'none', 'kid': 'rsa'}).encode())}.{b64(json.dumps(claims()).encode())}."
    tampered_key = good_key[:-2] + ("aa" if not good_key.endswith("aa") else "bb")
    forged_admin = good_jwt.split(".")
    forged_admin[1] = b64(json.dumps(claims(roles=["admin"])).encode())

    attempts: dict[str, Callable[[], Identity]] = {
        "missing credentials": lambda: access(gate, {}),
        "empty bearer": lambda: access(gate, {"Authorization": "Bearer "}),
        "basic auth scheme": lambda: access(gate, {"Authorization": "Basic YWxpY2U6cGFzcw=="}),
        "expired jwt": lambda: access(
            gate,
            {
                "Authorization": "Bearer "
                + jwt.encode(claims(exp=1_000_000_000), keys["rsa"], algorithm="RS256", headers={"kid": "rsa"})
            },
        ),
        "wrong audience": lambda: access(
            gate,
            {
                "Authorization": "Bearer "
                + jwt.encode(claims(aud="another-api"), keys["rsa"], algorithm="RS256", headers={"kid": "rsa"})
            },
        ),
        "wrong issuer": lambda: access(
            gate,
            {
                "Authorization": "Bearer "
                + jwt.encode(claims(iss="https://evil"), keys["rsa"], algorithm="RS256", headers={"kid": "rsa"})
            },
        ),
        "alg none": lambda: access(gate, {"Authorization": f"Bearer {none_alg}"}),
        "HS256 with the RSA public key": lambda: access(gate, {"Authorization": f"Bearer {confused}"}),
        "re-signed payload (admin roles)": lambda: access(gate, {"Authorization": "Bearer " + ".".join(forged_admin)}),
        "revoked key": lambda: access(gate, {"X-API-Key": revoked}),
        "tampered key": lambda: access(gate, {"X-API-Key": tampered_key}),
        "key in bearer, tampered": lambda: access(gate, {"Authorization": f"Bearer {tampered_key}"}),
        "garbage key header": lambda: access(gate, {"X-API-Key": "letmein"}),
        "two credentials": lambda: access(gate, {"X-API-Key": tampered_key, "Authorization": f"Bearer {good_jwt}"}),
        "wrong tenant": lambda: access(gate, {"X-API-Key": other_tenant}),
        "role without predict": lambda: access(gate, {"X-API-Key": auditor_only}),
        "scope for another model": lambda: access(gate, {"X-API-Key": scoped}),
        "no client certificate": lambda: access(
            gate, {"X-API-Key": good_key}, auth=Authenticator(api_keys=store, mtls=MtlsConfig({"CN=*": ["predictor"]}))
        ),
    }
    clock.t += 61  # the rotated key's overlap window has ended
    attempts["rotated-out key after overlap"] = lambda: access(gate, {"X-API-Key": rotated})
    bypasses = []
    for name, attempt in attempts.items():
        try:
            attempt()
            bypasses.append(name)
        except (AuthenticationError, AuthorizationError) as exc:
            assert exc.status in (401, 403)
    assert bypasses == []
