"""Who is calling: one ``Identity`` from an API key, a JWT bearer token or a client certificate.

The ``Authenticator`` tries the credentials a request carries in a fixed order — client certificate
(when mTLS is configured), then ``X-API-Key`` / ``Authorization: Bearer msk_...``, then
``Authorization: Bearer <JWT>`` — and fails closed: a request that presents a bad credential is
refused even if another one would have passed, so a broken token can never fall through to a weaker
method. A credential header sent twice is refused too. With mTLS configured as required, a request without
a verified client certificate is refused before anything else is looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelshield.serve.errors import AuthenticationError
from modelshield.serve.headers import header_values
from modelshield.serve.identity import Identity

if TYPE_CHECKING:
    from modelshield.serve.apikeys import ApiKeyStore
    from modelshield.serve.jwt_auth import JwtVerifier
    from modelshield.serve.mtls import MtlsConfig


def _credential_header(headers: Mapping[str, str], name: str) -> str | None:
    """A credential header's value; sent twice it is refused, whatever the copies hold (proxies and frameworks
    disagree on which copy counts, so the one checked upstream need not be the one that would be used here)."""
    values = header_values(headers, name)
    if len(values) > 1:
        raise AuthenticationError(f"send one {name} header, not {len(values)}")
    return values[0] if values else None


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header; other schemes are refused, not ignored."""
    value = _credential_header(headers, "Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
    return token.strip()


class Authenticator:
    """Combine the configured methods into one ``authenticate(headers, peer_cert) -> Identity``."""

    def __init__(
        self,
        *,
        api_keys: ApiKeyStore | None = None,
        jwt: JwtVerifier | None = None,
        mtls: MtlsConfig | None = None,
    ) -> None:
        if api_keys is None and jwt is None and mtls is None:
            raise ValueError("an Authenticator needs at least one of api_keys, jwt or mtls")
        self.api_keys = api_keys
        self.jwt = jwt
        self.mtls = mtls

    def authenticate(self, headers: Mapping[str, str], peer_cert: Mapping[str, Any] | None = None) -> Identity:
        """Identify the caller or raise ``AuthenticationError`` (401).

        ``peer_cert`` is the verified client certificate of the TLS connection (see ``mtls.peer_cert_from_scope``).
        """
        cert_identity = None
        if self.mtls is not None:
            if peer_cert is None:
                if self.mtls.required:
                    raise AuthenticationError("a client certificate is required")
            else:
                cert_identity = self.mtls.identity(peer_cert)
        api_key = _credential_header(headers, "X-API-Key")
        token = bearer_token(headers)
        if api_key is not None and token is not None:
            raise AuthenticationError("send one credential: X-API-Key or Authorization, not both")
        credential = api_key if api_key is not None else token
        if credential is None:
            if cert_identity is not None:
                return cert_identity
            raise AuthenticationError("no credentials: send 'Authorization: Bearer <token>' or 'X-API-Key: <key>'")
        identity = self._verify_credential(credential.strip(), from_api_key_header=api_key is not None)
        if cert_identity is not None and self.mtls is not None and self.mtls.bind_subject:
            if cert_identity.subject != identity.subject:
                raise AuthenticationError("the token's subject does not match the client certificate")
        return identity

    def _verify_credential(self, credential: str, *, from_api_key_header: bool) -> Identity:
        from modelshield.serve.apikeys import looks_like_api_key  # here: a JWT-only gateway never loads the key store

        if looks_like_api_key(credential):
            if self.api_keys is None:
                raise AuthenticationError("API keys are not accepted by this server")
            return self.api_keys.verify(credential)
        if from_api_key_header:
            raise AuthenticationError("invalid API key")
        if self.jwt is None:
            raise AuthenticationError("bearer tokens are not accepted by this server")
        return self.jwt.verify(credential)
