"""JWT verification: the algorithm comes from the key, never the token; every bypass in the book is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from modelshield.core.errors import InputError
from modelshield.serve.errors import AuthenticationError
from modelshield.serve.jwt_auth import JwtVerifier

ISS, AUD = "https://idp.example", "modelshield"


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
    }


def write_jwks(path: Path, keys: dict[str, Any]) -> None:
    out = []
    for kid, priv in keys.items():
        pub = priv.public_key()
        algo = {"rsa": RSAAlgorithm, "ec": ECAlgorithm, "ed": OKPAlgorithm}[kid.split("-")[0]]
        jwk = algo.to_jwk(pub, as_dict=True)
        jwk["kid"] = kid
        out.append(jwk)
    path.write_text(json.dumps({"keys": out}))


@pytest.fixture
def verifier(tmp_path: Path, keys: dict[str, Any]) -> JwtVerifier:
    write_jwks(tmp_path / "jwks.json", keys)
    return JwtVerifier(tmp_path / "jwks.json", issuer=ISS, audience=AUD, leeway=5, reload_interval=0)


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "alice",
        "iss": ISS,
        "aud": AUD,
        "exp": now + 300,
        "iat": now,
        "roles": ["predictor"],
        "tenant": "acme",
        "scope": "predict registry.read",
        "clearance": "confidential",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(keys: dict[str, Any], kid: str, alg: str, payload: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(payload, keys[kid.split("-")[0]], algorithm=alg, headers={"kid": kid, **headers})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(("kid", "alg"), [("rsa", "RS256"), ("ec", "ES256"), ("ed", "EdDSA")])
def test_valid_tokens_give_an_identity(verifier: JwtVerifier, keys: dict[str, Any], kid: str, alg: str) -> None:
    ident = verifier.verify(sign(keys, kid, alg, claims()))
    assert (ident.subject, ident.method, ident.roles, ident.tenant) == ("alice", "jwt", ("predictor",), "acme")
    assert ident.scopes == ("predict", "registry.read") and ident.attributes["clearance"] == "confidential"


def test_alg_none_is_refused(verifier: JwtVerifier) -> None:
    header = b64(json.dumps({"alg": "none", "kid": "rsa", "typ": "JWT"}).encode())
    token = f"{header}.{b64(json.dumps(claims()).encode())}."
    with pytest.raises(AuthenticationError, match="not accepted"):
        verifier.verify(token)


def hs256_with_public_key(private_key: Any, kid: str, payload: dict[str, Any]) -> str:
    """An algorithm-confusion token: HS256 over ``payload`` with the (public) key's PEM as the HMAC secret."""
    pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{b64(json.dumps(payload).encode())}"
    return signing_input + "." + b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())


def test_hs256_with_the_public_key_as_secret_is_refused(verifier: JwtVerifier, keys: dict[str, Any]) -> None:
    """Algorithm confusion: an attacker signs HS256 with the (public) RSA key's PEM as the HMAC secret."""
    token = hs256_with_public_key(keys["rsa"], "rsa", claims())
    with pytest.raises(AuthenticationError, match="not accepted"):
        verifier.verify(token)


def test_algorithm_must_match_the_key(verifier: JwtVerifier, keys: dict[str, Any]) -> None:
    # signed with the EC key but claiming the RSA key's kid
    token = jwt.encode(claims(), keys["ec"], algorithm="ES256", headers={"kid": "rsa"})
    with pytest.raises(AuthenticationError, match="does not match"):
        verifier.verify(token)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": -60}, "expired"),
        ({"nbf": +60}, "not valid yet"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"aud": "someone-else"}, "audience"),
        ({"exp": None}, "'exp'"),
        ({"aud": None}, "'aud'"),
        ({"sub": None}, "'sub'"),
    ],
)
def test_bad_claims_are_refused(
    verifier: JwtVerifier, keys: dict[str, Any], overrides: dict[str, Any], message: str
) -> None:
    # times are offsets from now, resolved when the test runs: claims built at collection time go stale on a long run
    now = int(time.time())
    resolved = {k: now + v if k in {"exp", "nbf"} and isinstance(v, int) else v for k, v in overrides.items()}
    with pytest.raises(AuthenticationError, match=message):
        verifier.verify(sign(keys, "rsa", "RS256", claims(**resolved)))


def test_leeway_tolerates_small_clock_skew(verifier: JwtVerifier, keys: dict[str, Any]) -> None:
    assert verifier.verify(sign(keys, "ec", "ES256", claims(exp=int(time.time()) - 2))).subject == "alice"


def test_missing_unknown_kid_forged_and_tampered(verifier: JwtVerifier, keys: dict[str, Any]) -> None:
    no_kid = jwt.encode(claims(), keys["rsa"], algorithm="RS256")
    with pytest.raises(AuthenticationError, match="kid"):
        verifier.verify(no_kid)
    with pytest.raises(AuthenticationError, match="unknown key"):
        verifier.verify(jwt.encode(claims(), keys["rsa"], algorithm="RS256", headers={"kid": "other"}))
    forged = jwt.encode(
        claims(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
        headers={"kid": "rsa"},
    )
    with pytest.raises(AuthenticationError, match="invalid"):
        verifier.verify(forged)
    good = sign(keys, "ed", "EdDSA", claims())
    head, body, sig = good.split(".")
    evil_body = b64(json.dumps(claims(roles=["admin"])).encode())
    with pytest.raises(AuthenticationError, match="invalid"):
        verifier.verify(f"{head}.{evil_body}.{sig}")
    for garbage in ["", "abc", "a.b.c", "x" * 10000]:
        with pytest.raises(AuthenticationError):
            verifier.verify(garbage)


def test_jwks_reload_on_change_and_broken_file_keeps_keys(
    tmp_path: Path, keys: dict[str, Any], verifier: JwtVerifier
) -> None:
    new = {"rsa-2": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
    token = jwt.encode(claims(), new["rsa-2"], algorithm="RS256", headers={"kid": "rsa-2"})
    with pytest.raises(AuthenticationError):
        verifier.verify(token)
    path = tmp_path / "jwks.json"
    write_jwks(path, {**keys, **new})
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert verifier.verify(token).subject == "alice"
    path.write_text("{not json")
    assert verifier.verify(token).subject == "alice"  # last good keys kept


def test_unacceptable_jwks_are_refused(tmp_path: Path, keys: dict[str, Any]) -> None:
    path = tmp_path / "jwks.json"
    cases = [
        {"keys": [{"kty": "oct", "kid": "h", "k": b64(b"secret" * 6)}]},
        {"keys": [{**RSAAlgorithm.to_jwk(keys["rsa"].public_key(), as_dict=True), "kid": "r", "alg": "HS256"}]},
        {"keys": [{**RSAAlgorithm.to_jwk(keys["rsa"], as_dict=True), "kid": "r"}]},  # private key published
        {
            "keys": [
                {
                    **RSAAlgorithm.to_jwk(
                        rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(), as_dict=True
                    ),
                    "kid": "small",
                }
            ]
        },
        {"keys": []},
    ]
    for doc in cases:
        path.write_text(json.dumps(doc))
        with pytest.raises(InputError):
            JwtVerifier(path, issuer=ISS, audience=AUD)
