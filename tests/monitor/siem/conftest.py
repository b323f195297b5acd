"""Real receivers on loopback: an rsyslog daemon (UDP, TCP, TLS inputs; one file per input) started with a
config the test writes, and an HTTP collector in a thread that can be taken down and brought back."""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

RSYSLOG_MODULES = Path("/usr/lib/x86_64-linux-gnu/rsyslog")


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelshield test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The gateway's demo CNN, untrained: the audit records do not depend on accuracy, and training costs seconds."""
    import torch

    from modelshield.core.loading import save_torch_model
    from modelshield.demo import DigitsCNN
    from modelshield.serve.runtime import file_digest

    torch.manual_seed(0)
    path = save_torch_model(DigitsCNN(), tmp_path_factory.mktemp("model") / "digits.safetensors")
    return path, file_digest(path)


@dataclass
class Rsyslog:
    """A running rsyslogd: ports of its inputs, and what each input wrote (``pri|app|msgid|sd|msg`` lines)."""

    ports: dict[str, int]
    folder: Path
    ca: Path
    tls: bool

    def lines(self, transport: str, n: int, timeout: float = 15.0) -> list[str]:
        """Wait until the ``transport`` input's file holds ``n`` lines; return them."""
        path = self.folder / f"{transport}.log"
        deadline = time.monotonic() + timeout
        while True:
            got = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def reset(self, transport: str) -> None:
        path = self.folder / f"{transport}.log"
        if path.exists():
            path.write_text("")  # omfile appends; rsyslog reopens nothing, so truncating in place is enough


def rsyslog_config(folder: Path, ports: dict[str, int], tls: tuple[Path, Path, Path] | None) -> str:
    """An rsyslog config: one input per transport on 127.0.0.1, each into its own file, RFC 5424 fields split."""
    lines = [
        f'global(workDirectory="{folder}" maxMessageSize="64k"'
        + (
            f' defaultNetstreamDriverCAFile="{tls[0]}" defaultNetstreamDriverCertFile="{tls[1]}"'
            f' defaultNetstreamDriverKeyFile="{tls[2]}"'
            if tls
            else ""
        )
        + ")",
        'module(load="imudp")',
        'module(load="imtcp" maxSessions="200")',
        'template(name="fields" type="string" string="%pri%|%app-name%|%msgid%|%structured-data%|%msg%\\n")',
    ]
    for transport, port in ports.items():
        driver = (
            ' streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon"' if transport == "tls" else ""
        )
        module = "imudp" if transport == "udp" else "imtcp"
        lines.append(
            f'ruleset(name="{transport}") {{ action(type="omfile" file="{folder}/{transport}.log" template="fields") }}'
        )
        lines.append(f'input(type="{module}" address="127.0.0.1" port="{port}" ruleset="{transport}"{driver})')
    return "\n".join(lines) + "\n"


def start_rsyslog(folder: Path) -> tuple[subprocess.Popen[bytes], Rsyslog]:
    """rsyslogd in the foreground on free loopback ports; TLS only when the gtls driver (rsyslog-gnutls) is there."""
    tls_files = make_tls(folder)
    tls = (RSYSLOG_MODULES / "lmnsd_gtls.so").exists()
    ports = {"udp": free_port(socket.SOCK_DGRAM), "tcp": free_port(socket.SOCK_STREAM)}
    if tls:
        ports["tls"] = free_port(socket.SOCK_STREAM)
    conf = folder / "rsyslog.conf"
    conf.write_text(rsyslog_config(folder, ports, tls_files if tls else None))
    proc = subprocess.Popen(
        ["rsyslogd", "-n", "-f", str(conf), "-i", str(folder / "rsyslog.pid")],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "rsyslogd.err").open("wb"),
    )
    deadline = time.monotonic() + 10
    for transport in ("tcp", "tls"):
        while transport in ports:
            try:
                socket.create_connection(("127.0.0.1", ports[transport]), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"rsyslogd did not start: {(folder / 'rsyslogd.err').read_text()}") from None
                time.sleep(0.05)
    return proc, Rsyslog(ports, folder, tls_files[0], tls)


@pytest.fixture(scope="session")
def rsyslog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rsyslog]:
    if shutil.which("rsyslogd") is None:
        pytest.skip("rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls)")
    proc, daemon = start_rsyslog(tmp_path_factory.mktemp("rsyslog"))
    try:
        yield daemon
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Collector:
    """An HTTP collector on a fixed loopback port: records the JSON lines of each 2xx POST, in arrival order.

    ``down()`` takes it off the network (listening socket closed, open connections cut); ``up()`` brings it
    back on the same port. ``status`` is what it answers (set 400 to refuse, 503 to fail)."""

    port: int
    lines: list[bytes] = field(default_factory=list)  # parsed only when read: a collector that just stores
    requests: int = 0
    status: int = 200
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _conns: set[socket.socket] = field(default_factory=set)

    @property
    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(line) for line in self.lines]

    @property
    def is_up(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"

    def up(self) -> None:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real collectors do

            def setup(self) -> None:
                super().setup()
                with collector._lock:
                    collector._conns.add(self.connection)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with collector._lock:
                    if collector._server is None:  # went down mid-request: no answer, as a crashed server
                        self.close_connection = True
                        return
                    collector.requests += 1
                    status = collector.status
                    if status == 200:
                        collector.lines += body.splitlines()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # connections cut by down() are the point, not news

        server = Server(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._server = server

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._conns.clear()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector(free_port(socket.SOCK_STREAM))
    c.up()
    try:
        yield c
    finally:
        c.down()
