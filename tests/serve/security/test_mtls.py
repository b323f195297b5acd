"""Mutual TLS over real handshakes: no certificate, a foreign CA or old TLS never reach the app."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from security_tls_server import identity_app

from modelshield.serve.auth import Authenticator
from modelshield.serve.errors import AuthenticationError
from modelshield.serve.mtls import MtlsConfig, MtlsH11Protocol, TestPki, make_test_pki, server_ssl_context

if TYPE_CHECKING:
    from conftest import ServeAsgi

CONFIG = MtlsConfig(
    role_map={"URI:spiffe://acme/ns/prod/sa/*": ["predictor"], "CN=ops-*": ["admin"]},
    tenant_map={"URI:spiffe://acme/*": "acme"},
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(
        tmp_path_factory.mktemp("pki"),
        clients={
            "svc-a": ["spiffe://acme/ns/prod/sa/svc-a"],
            "ops-bob": ["bob@acme.com"],
            "stranger": ["stranger.example"],
        },
    )


@pytest.fixture(scope="module")
def server(pki: TestPki, serve_asgi: ServeAsgi) -> Iterator[tuple[int, list[str]]]:
    """The identity app over TLS that requires a client certificate from the test CA."""
    calls: list[str] = []
    app = identity_app(Authenticator(mtls=CONFIG), calls)
    ctx = server_ssl_context(pki.server_cert, pki.server_key, pki.ca_cert, require_client_cert=True)
    tls = {"http": MtlsH11Protocol, "ssl_context_factory": lambda _cfg, _default: ctx}
    with serve_asgi(app, log_level="critical", **tls) as port:
        yield port, calls


def client_context(pki: TestPki, name: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    if name is not None:
        cert, key = pki.clients[name]
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def test_client_certificate_identity_reaches_the_app(server: tuple[int, list[str]], pki: TestPki) -> None:
    port, _ = server
    with httpx.Client(verify=client_context(pki, "svc-a")) as client:
        body = client.get(f"https://localhost:{port}/whoami").json()
    assert body == {
        "subject": "spiffe://acme/ns/prod/sa/svc-a",
        "method": "mtls",
        "roles": ["predictor"],
        "tenant": "acme",
    }
    with httpx.Client(verify=client_context(pki, "ops-bob")) as client:
        body = client.get(f"https://localhost:{port}/whoami").json()
    assert body["subject"] == "ops-bob" and body["roles"] == ["admin"] and body["tenant"] is None


def test_unmapped_certificate_is_refused(server: tuple[int, list[str]], pki: TestPki) -> None:
    port, _ = server
    with httpx.Client(verify=client_context(pki, "stranger")) as client:
        response = client.get(f"https://localhost:{port}/whoami")
    assert response.status_code == 401 and "not mapped" in response.json()["error"]


def test_no_client_certificate_never_reaches_the_app(server: tuple[int, list[str]], pki: TestPki) -> None:
    port, calls = server
    before = len(calls)
    with pytest.raises((httpx.HTTPError, ssl.SSLError)), httpx.Client(verify=client_context(pki, None)) as client:
        client.get(f"https://localhost:{port}/no-cert")
    assert len(calls) == before


def test_certificate_from_another_ca_is_refused(server: tuple[int, list[str]], pki: TestPki, tmp_path: Path) -> None:
    port, calls = server
    rogue = make_test_pki(tmp_path / "rogue", clients={"svc-a": ["spiffe://acme/ns/prod/sa/svc-a"]})
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(*(str(p) for p in rogue.clients["svc-a"]))
    before = len(calls)
    with pytest.raises((httpx.HTTPError, ssl.SSLError)), httpx.Client(verify=ctx) as client:
        client.get(f"https://localhost:{port}/rogue")
    assert len(calls) == before


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_below_1_2_is_refused(server: tuple[int, list[str]], pki: TestPki) -> None:
    port, _ = server
    ctx = server_ssl_context(pki.server_cert, pki.server_key, pki.ca_cert)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2 and ctx.verify_mode == ssl.CERT_REQUIRED
    ctx = client_context(pki, "svc-a")
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, pytest.raises(ssl.SSLError):
        ctx.wrap_socket(raw, server_hostname="localhost")


def test_tls_1_2_with_client_certificate_works(server: tuple[int, list[str]], pki: TestPki) -> None:
    port, _ = server
    ctx = client_context(pki, "svc-a")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() == "TLSv1.2"
        tls.sendall(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := tls.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200") and b"svc-a" in reply


def test_identity_from_pem_chain_and_missing_cert() -> None:
    """Servers that follow the ASGI TLS extension hand over only PEM; that works too."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        pki = make_test_pki(d, clients={"x": ["spiffe://acme/ns/prod/sa/x"]})
        pem = pki.clients["x"][0].read_text()
    ident = CONFIG.identity({"client_cert_chain": [pem]})
    assert ident.subject == "spiffe://acme/ns/prod/sa/x" and ident.roles == ("predictor",)
    with pytest.raises(AuthenticationError, match="required"):
        Authenticator(mtls=CONFIG).authenticate({}, None)
