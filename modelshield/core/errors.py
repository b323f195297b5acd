"""One exception hierarchy for the whole library.

The CLI turns any ``ModelShieldError`` into one line on stderr and exit code 2::

    ModelShieldError
    ├── InputError            bad data, shapes, labels, NaN, parameter values
    ├── FormatError           unknown or unsupported file format
    │   └── UnsafeFormatError pickle-based or otherwise unsafe to load
    ├── MissingFileError      a path that does not exist
    ├── CapabilityError       asked a black-box model for gradients, etc.
    ├── DependencyError       an optional dependency is not installed
    ├── RemoteModelError      a remote model endpoint failed or answered badly
    ├── IntegrityError        an encrypted file failed authentication (tampered or wrong key)
    └── KeyringError          a key-encryption key is missing, malformed or stored unsafely
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class ModelShieldError(Exception):
    """Base of every error modelshield raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint or self.hint

    def diagnostics(self) -> str:
        """One line for a person: what went wrong and what to do next."""
        msg = str(self)
        return f"{msg} ({self.hint})" if self.hint else msg


def error_cause(e: BaseException) -> str:
    """The error's own words on one line: TorchScript wraps them in a multi-line trace whose last line is the cause."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[-1] if lines else type(e).__name__


def validation_line(exc: ValidationError, place: str | None = None) -> str:
    """The first problem of a pydantic ``ValidationError`` as one line, ``where: message (and N more)``.

    Users of a YAML or TOML file need the field they wrote, not pydantic's multi-line report; ``place`` replaces
    the dotted location where a caller can name it better (list items by id, union tags dropped)."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) if place is None else place
    message = str(err["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


class InputError(ModelShieldError):
    """The data or a parameter is not what the operation needs."""


class FormatError(ModelShieldError):
    """A file's format is unknown or not supported."""


class UnsafeFormatError(FormatError):
    """A file would execute code when loaded (pickle and friends)."""


class MissingFileError(ModelShieldError):
    """A path that was given does not exist."""


class CapabilityError(ModelShieldError):
    """The model cannot do what was asked (e.g. gradients from a black box)."""


class DependencyError(ModelShieldError):
    """An optional dependency needed for this operation is not installed."""


class RemoteModelError(ModelShieldError):
    """A model behind an HTTP endpoint failed or answered with something unusable."""


class IntegrityError(ModelShieldError):
    """Something that must be intact is not: a ciphertext, a signed model, a lock entry, an audit chain, a served version."""

    hint = "restore it from a trusted copy; if it should be intact, check that the key or public key is the right one"


class KeyringError(ModelShieldError):
    """A key-encryption key is missing, malformed or stored unsafely."""
