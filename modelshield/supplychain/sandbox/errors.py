"""What can go wrong with a sandboxed model, each as one line for a person::

SandboxError                  (a ModelShieldError: the CLI prints it and exits 2)
├── SandboxUnavailableError   the isolation the sandbox needs is missing on this machine
├── SandboxTimeoutError       no answer within the wall-clock limit; the process was killed
├── SandboxLimitError         memory, CPU or file-size limit reached; the process was stopped
├── SandboxCrashError         the process died, or sent something that is not a valid frame
├── SandboxReplyError         predictions of the wrong shape or dtype, or NaN/Inf
└── VendorCodeError           the vendor's code raised an exception (the sandbox stays up)
"""

from __future__ import annotations

from modelshield.core.errors import ModelShieldError


class SandboxError(ModelShieldError):
    """Base of the sandbox's errors."""


class SandboxUnavailableError(SandboxError):
    """A required isolation layer cannot be applied here."""

    hint = "run on Linux with user namespaces, Landlock or seccomp enabled (see docs/sandbox.md)"


class SandboxTimeoutError(SandboxError):
    """The sandboxed model did not answer in time and was killed."""


class SandboxLimitError(SandboxError):
    """The sandboxed model hit a resource limit and was stopped."""


class SandboxCrashError(SandboxError):
    """The sandboxed process died or broke the protocol."""


class SandboxReplyError(SandboxError):
    """The sandboxed model answered with unusable predictions."""


class VendorCodeError(SandboxError):
    """The vendor's code raised an exception inside the sandbox."""
