"""JWT bearer tokens verified against a JWKS file: RS256, ES256 and EdDSA only.

The algorithm is fixed per key by the JWK itself (``kty``/``crv``), never taken from the token: the
token's ``alg`` must equal its key's algorithm or the token is refused. That closes the two classic
holes — ``alg: none`` and algorithm confusion (an ``HS256`` token "signed" with the RSA public key as
the HMAC secret) — because no key ever verifies under ``none`` or an HMAC algorithm, and symmetric
(``oct``) keys are not loaded at all. ``kid`` is required; ``exp``, ``iss``, ``aud`` and ``sub`` are
required claims; ``nbf`` is honoured when present. The JWKS file is re-read when it changes, so keys
can be rotated by replacing the file (a broken file keeps the last good key set and logs an error).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from modelshield.core.errors import InputError
from modelshield.serve.errors import AuthenticationError
from modelshield.serve.identity import Identity

log = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = ("RS256", "ES256", "EdDSA")
MAX_TOKEN_BYTES = 8192
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class _Key:
    kid: str
    algorithm: str
    key: Any


def _algorithm_for(jwk: Mapping[str, Any]) -> str:
    """The one algorithm a JWK may verify, from its key type and curve; refuse everything else."""
    kty, crv, declared = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    if kty == "RSA":
        alg = "RS256"
    elif kty == "EC" and crv == "P-256":
        alg = "ES256"
    elif kty == "OKP" and crv == "Ed25519":
        alg = "EdDSA"
    else:
        raise ValueError(f"key type {kty}/{crv} is not accepted (RSA, EC P-256 or OKP Ed25519 only)")
    if declared is not None and declared != alg:
        raise ValueError(f"declares alg {declared!r}; a {kty} key here verifies {alg} only")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("is not a signing key (use != 'sig')")
    if any(name in jwk for name in ("d", "p", "q", "dp", "dq", "qi")):
        raise ValueError("contains private key material; publish only the public key")
    return alg


def _parse_key(jwk: Mapping[str, Any]) -> _Key:
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("has no 'kid'")
    alg = _algorithm_for(jwk)
    if alg == "RS256":
        rsa_key = RSAAlgorithm.from_jwk(dict(jwk))
        if rsa_key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {rsa_key.key_size} bits; at least {MIN_RSA_BITS} required")
        return _Key(kid, alg, rsa_key)
    loader = ECAlgorithm if alg == "ES256" else OKPAlgorithm
    return _Key(kid, alg, loader.from_jwk(dict(jwk)))


def load_jwks(path: Path) -> dict[str, _Key]:
    """Parse a JWKS file into kid -> key; any unacceptable key makes the whole file invalid (InputError)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"JWKS file {path}: cannot read it as JSON ({exc})") from None
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or not keys:
        raise InputError(f"JWKS file {path}: needs a non-empty 'keys' list")
    out: dict[str, _Key] = {}
    for i, jwk in enumerate(keys):
        if not isinstance(jwk, dict):
            raise InputError(f"JWKS file {path}: key {i} is not an object")
        try:
            parsed = _parse_key(jwk)
        except (ValueError, TypeError, KeyError, jwt.InvalidKeyError) as exc:
            raise InputError(f"JWKS file {path}: key {jwk.get('kid', i)!r} {exc}") from None
        if parsed.kid in out:
            raise InputError(f"JWKS file {path}: kid {parsed.kid!r} appears twice")
        out[parsed.kid] = parsed
    return out


def _claim(payload: Mapping[str, Any], path: str) -> Any:
    """A claim by dotted path (``realm_access.roles`` for Keycloak-style nesting)."""
    value: Any = payload
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _names(value: Any) -> tuple[str, ...]:
    """A claim that holds names: a JSON list, or one space-separated string (as OAuth's ``scope``)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise AuthenticationError("a roles/scopes claim must be a string or a list of strings")


class JwtVerifier:
    """Verify bearer JWTs against a JWKS file and turn the claims into an ``Identity``."""

    def __init__(
        self,
        jwks_path: str | Path,
        *,
        issuer: str,
        audience: str | Sequence[str],
        leeway: float = 30.0,
        roles_claim: str = "roles",
        tenant_claim: str = "tenant",
        scopes_claim: str = "scope",
        attribute_claims: Sequence[str] = ("clearance", "purpose"),
        reload_interval: float = 1.0,
    ) -> None:
        if not issuer or not audience:
            raise InputError("JWT verification needs an issuer and an audience")
        self.jwks_path = Path(jwks_path)
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.roles_claim = roles_claim
        self.tenant_claim = tenant_claim
        self.scopes_claim = scopes_claim
        self.attribute_claims = tuple(attribute_claims)
        self.reload_interval = reload_interval
        self._lock = threading.Lock()
        self._keys = load_jwks(self.jwks_path)
        self._stamp = self._file_stamp()
        self._checked = time.monotonic()

    def _file_stamp(self) -> tuple[int, int, int]:
        st = os.stat(self.jwks_path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.reload_interval:
            return
        with self._lock:
            if now - self._checked < self.reload_interval:
                return
            self._checked = now
            try:
                stamp = self._file_stamp()
                if stamp == self._stamp:
                    return
                self._keys = load_jwks(self.jwks_path)
                self._stamp = stamp
                log.info("reloaded JWKS %s (%d keys)", self.jwks_path, len(self._keys))
            except (OSError, InputError) as exc:
                log.error("JWKS reload failed, keeping the previous keys: %s", exc)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The kids currently trusted."""
        return tuple(self._keys)

    def verify(self, token: str) -> Identity:
        """Check signature, algorithm, issuer, audience and validity window; raise ``AuthenticationError``."""
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationError("bearer token too large")
        self._maybe_reload()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthenticationError("malformed bearer token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALLOWED_ALGORITHMS:
            raise AuthenticationError(f"token algorithm {alg!r} is not accepted")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("token has no key id (kid)")
        key = self._keys.get(kid)
        if key is None:
            raise AuthenticationError("token signed by an unknown key")
        if alg != key.algorithm:
            raise AuthenticationError(f"token algorithm {alg} does not match its key ({key.algorithm})")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"], "verify_signature": True},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationError("token not valid yet") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError("token audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError("token issuer not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise AuthenticationError("invalid bearer token") from None
        return self._identity(claims, kid)

    def _identity(self, claims: Mapping[str, Any], kid: str) -> Identity:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthenticationError("token subject must be a non-empty string")
        tenant = _claim(claims, self.tenant_claim)
        if tenant is not None and not isinstance(tenant, str):
            raise AuthenticationError("token tenant claim must be a string")
        attributes = {"kid": kid, "issuer": str(claims["iss"])}
        for name in self.attribute_claims:
            value = _claim(claims, name)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                attributes[name.rsplit(".", 1)[-1]] = str(value)
        return Identity(
            subject=subject,
            method="jwt",
            roles=_names(_claim(claims, self.roles_claim)),
            tenant=tenant,
            scopes=_names(_claim(claims, self.scopes_claim)),
            attributes=attributes,
        )
