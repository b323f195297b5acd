"""Mutual TLS: a server context that demands a client certificate, and identities from certificates.

Wiring into uvicorn (0.54 has no TLS extension in the ASGI scope of its own)::

    ctx = server_ssl_context("server.pem", "server.key", client_ca="ca.pem")
    config = uvicorn.Config(app, host=..., port=..., http=MtlsH11Protocol,
                            ssl_context_factory=lambda _cfg, _default: ctx)

``MtlsH11Protocol`` puts the verified peer certificate of each connection into
``scope["extensions"]["tls"]`` (the ASGI TLS extension's keys, plus ``client_cert_dict``: Python's
``getpeercert()`` form), and ``peer_cert_from_scope(scope)`` (or ``request.scope`` in FastAPI) reads
it back for ``Authenticator.authenticate(headers, peer_cert)``.

Identity: the subject is the first SAN URI (SPIFFE ids), else the subject CN, else the first SAN DNS
name or e-mail. Roles come from ``role_map``: glob patterns over the certificate's names, written
``CN=alice``, ``URI:spiffe://acme/ns/prod/*``, ``DNS:*.svc.cluster.local`` or ``email:*@acme.com``.
A certificate that maps to no role is refused (deny by default).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import ipaddress
import ssl
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from modelshield.core.errors import InputError
from modelshield.integrity.keys import atomic_output
from modelshield.serve.deadlines import HeaderDeadline
from modelshield.serve.errors import AuthenticationError
from modelshield.serve.identity import Identity

_SAN_PREFIX = {"URI": "URI", "DNS": "DNS", "email": "email", "IP Address": "IP"}


def server_ssl_context(
    certfile: str | Path,
    keyfile: str | Path,
    client_ca: str | Path | None,
    *,
    require_client_cert: bool = True,
) -> ssl.SSLContext:
    """TLS ≥ 1.2 server context; with ``client_ca``, client certificates are verified against it (required by default)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!MD5:!DSS")
    try:
        ctx.load_cert_chain(str(certfile), str(keyfile))
        if client_ca is not None:
            ctx.load_verify_locations(cafile=str(client_ca))
    except (OSError, ssl.SSLError) as exc:
        raise InputError(f"cannot load the TLS certificate, key or client CA: {exc}") from None
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx


def _names_from_dict(cert: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(CN, ["URI:...", "DNS:...", ...]) from Python's ``getpeercert()`` dictionary."""
    cn = None
    for rdn in cert.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                cn = value
    sans = [f"{_SAN_PREFIX[kind]}:{value}" for kind, value in cert.get("subjectAltName", ()) if kind in _SAN_PREFIX]
    return cn, sans


def _names_from_pem(pem: str) -> tuple[str | None, list[str]]:
    """The same names from a PEM certificate (the ASGI TLS extension's ``client_cert_chain[0]``)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(pem.encode())
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return cn, []
    names = [f"URI:{v}" for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    names += [f"DNS:{v}" for v in san.get_values_for_type(x509.DNSName)]
    names += [f"email:{v}" for v in san.get_values_for_type(x509.RFC822Name)]
    names += [f"IP:{v}" for v in san.get_values_for_type(x509.IPAddress)]
    return cn, names


@dataclass(frozen=True)
class MtlsConfig:
    """How client certificates become identities.

    ``role_map``: pattern -> roles; ``tenant_map``: pattern -> tenant (first match wins);
    ``required``: refuse requests without a verified client certificate; ``bind_subject``: when a
    request also carries a token, its subject must equal the certificate's.
    """

    role_map: Mapping[str, Sequence[str]]
    tenant_map: Mapping[str, str] = field(default_factory=dict)
    attributes_map: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    required: bool = True
    bind_subject: bool = False

    def identity(self, peer_cert: Mapping[str, Any]) -> Identity:
        """The identity of a verified client certificate (``getpeercert()`` dict or ASGI TLS extension)."""
        if "client_cert_dict" in peer_cert and peer_cert["client_cert_dict"]:
            cn, sans = _names_from_dict(peer_cert["client_cert_dict"])
        elif peer_cert.get("client_cert_chain"):
            cn, sans = _names_from_pem(peer_cert["client_cert_chain"][0])
        elif "subject" in peer_cert:
            cn, sans = _names_from_dict(peer_cert)
        else:
            raise AuthenticationError("a client certificate is required")
        names = ([f"CN={cn}"] if cn else []) + sans
        uris = [n[4:] for n in sans if n.startswith("URI:")]
        others = [n.split(":", 1)[1] for n in sans if not n.startswith("URI:")]
        subject = uris[0] if uris else cn or (others[0] if others else None)
        if not subject:
            raise AuthenticationError("the client certificate names no subject")
        roles: list[str] = []
        for pattern, mapped in self.role_map.items():
            if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                roles += [r for r in mapped if r not in roles]
        if not roles:
            raise AuthenticationError("the client certificate is not mapped to any role")
        tenant = next((t for p, t in self.tenant_map.items() if any(fnmatch.fnmatchcase(n, p) for n in names)), None)
        attributes: dict[str, str] = {}
        for pattern, attrs in self.attributes_map.items():
            if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                attributes.update(attrs)
        return Identity(subject=subject, method="mtls", roles=tuple(roles), tenant=tenant, attributes=attributes)


def peer_cert_from_scope(scope: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The verified client certificate of the request's connection, or None (no TLS or no certificate)."""
    tls = scope.get("extensions", {}).get("tls")
    if not tls or not (tls.get("client_cert_chain") or tls.get("client_cert_dict")):
        return None
    return tls


def _tls_extension(ssl_object: ssl.SSLObject | None) -> dict[str, Any] | None:
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_dict": ssl_object.getpeercert() or None,
        "client_cert_error": None,
        "tls_version": ssl_object.version(),
        "cipher_suite": cipher[0] if cipher else None,
    }


class MtlsH11Protocol(HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol, extended to hand each connection's verified client certificate to the app (and
    with the header deadline of ``modelshield.serve.deadlines``)."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        tls = _tls_extension(transport.get_extra_info("ssl_object"))
        if tls is None:
            return
        inner: Callable[..., Awaitable[None]] = self.app

        async def app_with_tls(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = tls
            await inner(scope, receive, send)

        self.app = app_with_tls


# -- a throw-away PKI for tests and the demo --------------------------------------------------------


@dataclass(frozen=True)
class TestPki:
    """Paths of a generated CA, a server certificate and client certificates (name -> (cert, key))."""

    __test__ = False  # not a pytest test class

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    clients: Mapping[str, tuple[Path, Path]]


def _write_key(path: Path, key: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    with atomic_output(path, mode=0o600) as f:  # private from the first byte, never half written
        encoding, private_format = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
        f.write(key.private_bytes(encoding, private_format, serialization.NoEncryption()))


def _issue(
    subject_cn: str, issuer: Any, issuer_key: Any, key: Any, sans: Sequence[Any], *, ca: bool, server: bool, days: int
) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _san(name: str) -> Any:
    """``spiffe://...`` → URI, ``a@b`` → e-mail, an IP address → IP, anything else → DNS."""
    from cryptography import x509

    if "://" in name:
        return x509.UniformResourceIdentifier(name)
    if "@" in name:
        return x509.RFC822Name(name)
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_test_pki(
    directory: str | Path,
    *,
    server_names: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    clients: Mapping[str, Sequence[str]] | None = None,
    days: int = 30,
) -> TestPki:
    """Create a CA (EC P-256), a server certificate for ``server_names`` and one client cert per entry.

    ``clients`` maps a client's CN to its SANs (URIs, e-mails, DNS names). Keys are written 0600.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("modelshield test CA", None, ca_key, ca_key, [], ca=True, server=False, days=days)
    paths = {
        "ca_cert": out / "ca.pem",
        "ca_key": out / "ca.key",
        "server_cert": out / "server.pem",
        "server_key": out / "server.key",
    }
    paths["ca_cert"].write_bytes(ca_cert.public_bytes(pem))
    _write_key(paths["ca_key"], ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue(
        server_names[0],
        ca_cert.subject,
        ca_key,
        server_key,
        [_san(n) for n in server_names],
        ca=False,
        server=True,
        days=days,
    )
    paths["server_cert"].write_bytes(server.public_bytes(pem))
    _write_key(paths["server_key"], server_key)
    issued: dict[str, tuple[Path, Path]] = {}
    for cn, sans in (clients or {"client": []}).items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(cn, ca_cert.subject, ca_key, key, [_san(n) for n in sans], ca=False, server=False, days=days)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cn)
        cert_path, key_path = out / f"client-{safe}.pem", out / f"client-{safe}.key"
        cert_path.write_bytes(cert.public_bytes(pem))
        _write_key(key_path, key)
        issued[cn] = (cert_path, key_path)
    return TestPki(clients=issued, **paths)
