"""Sandboxed vendor code cannot reach the network: every layer alone, and all together."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelshield.supplychain.sandbox import Sandbox, SandboxUnavailableError, VendorCodeError


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP socket the test listens on at 127.0.0.1; sandboxed code must never reach it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        s.settimeout(0.2)
        yield s


def assert_no_connection(listener: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        listener.accept()


@pytest.mark.parametrize(
    ("disable", "reason"),
    [
        ((), "Operation not permitted"),  # all layers: seccomp refuses to create the socket itself (EPERM)
        (("seccomp", "landlock"), "Network is unreachable"),  # the network namespace alone
        (("seccomp", "namespaces"), None),  # Landlock alone is not network isolation: refused to start
    ],
)
def test_vendor_cannot_connect_to_a_listening_socket(
    vendor: Path, listener: socket.socket, disable: tuple[str, ...], reason: str | None
) -> None:
    port = listener.getsockname()[1]
    box = Sandbox(vendor=vendor, entry="acme.models:connect", factory_kwargs={"port": port}, disable=disable)
    if reason is None:
        with pytest.raises(SandboxUnavailableError, match="no network isolation"):
            box.start()
    else:
        with pytest.raises(VendorCodeError, match=reason):
            box.start()
    assert_no_connection(listener)


def test_a_socket_bound_inside_is_not_reachable_from_outside(vendor: Path) -> None:
    with socket.socket() as probe:  # a free port number
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Without seccomp the vendor may bind and listen, but only inside its own empty network namespace.
    with Sandbox(
        vendor=vendor, entry="acme.models:listen", factory_kwargs={"port": port}, disable=("seccomp", "landlock")
    ) as box:
        assert box.info is not None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_allow_network_opt_out_is_reported_loudly(
    vendor: Path, listener: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    port = listener.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="modelshield.sandbox"):
        with Sandbox(
            vendor=vendor, entry="acme.models:connect", factory_kwargs={"port": port}, allow_network=True
        ) as box:
            layers = {layer.name: layer for layer in box.layers}
            assert not layers["network namespace"].active
            assert "NETWORK ALLOWED" in layers["network namespace"].detail
            listener.accept()[0].close()  # the opt-out really lets it through
    assert "HAS NETWORK ACCESS" in caplog.text
