"""Run an untrusted vendor model in an isolated process: no network, a read-only view, limits, a pipe.

    from modelshield.supplychain.sandbox import Sandbox

    with Sandbox(vendor="vendor/", entry="acme.model:build", input_shape=(64,)) as box:
        labels = box.model.predict(x)      # box.model is a black-box modelshield Model

See docs/sandbox.md for what each isolation layer guarantees and what it does not.
"""

from typing import Any

from modelshield.supplychain.sandbox.errors import (
    SandboxCrashError,
    SandboxError,
    SandboxLimitError,
    SandboxReplyError,
    SandboxTimeoutError,
    SandboxUnavailableError,
    VendorCodeError,
)
from modelshield.supplychain.sandbox.isolation import Layer, Limits

__all__ = [
    "Layer",
    "Limits",
    "Sandbox",
    "SandboxCrashError",
    "SandboxError",
    "SandboxLimitError",
    "SandboxReplyError",
    "SandboxTimeoutError",
    "SandboxUnavailableError",
    "SandboxedModel",
    "VendorCodeError",
]


def __getattr__(name: str) -> Any:
    """Import the client (and torch with it) only when asked: the worker must start without torch."""
    if name in ("Sandbox", "SandboxedModel"):
        from modelshield.supplychain.sandbox import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
