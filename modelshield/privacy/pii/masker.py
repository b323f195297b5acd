"""Mask secrets and personal data in strings, dicts and lists: the one masker of ``pii mask`` and the gateway's logs.

Two kinds of rules, both configurable:

- field names (``password``, ``token``, ``authorization``, ``api_key``, ``secret``, ...): the whole
  value is replaced, whatever it holds, in dictionaries at any depth;
- recognisers in free text (``recognizers.py``): credentials, e-mail addresses, payment cards (Luhn),
  IBANs (mod-97), national ids with their check rules, phone numbers and, when enabled, names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from modelshield.core.errors import InputError
from modelshield.privacy.pii.recognizers import BUILTIN, BY_NAME, LOG_RECOGNIZERS, Recognizer, recognizer, redact

REDACTED = "[REDACTED]"
MAX_DEPTH = 32

DEFAULT_FIELDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "authorization",
        "proxy_authorization",
        "api_key",
        "apikey",
        "x_api_key",
        "private_key",
        "cookie",
        "set_cookie",
        "session",
        "pepper",
        "credentials",
        "ssn",
        "card_number",
    }
)
_SENSITIVE_SUFFIXES = ("_password", "_secret", "_token", "_api_key", "_private_key")


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_")


class Masker:
    """Replace sensitive fields and recognised PII in strings, dicts and lists (recursively, bounded depth).

    The default recognisers are the log set (``LOG_RECOGNIZERS``); pass ``BUILTIN`` for every one."""

    def __init__(
        self, fields: Iterable[str] = DEFAULT_FIELDS, patterns: Iterable[Recognizer] = LOG_RECOGNIZERS
    ) -> None:
        self.fields = frozenset(_normalise(f) for f in fields)
        self.patterns = tuple(patterns)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Masker:
        """Build from a config table: ``extra_fields``, ``extra_patterns`` (name -> regex), ``enable`` (built-in
        rules off by default: nl_bsn, de_tax_id, person), ``disable`` (rule names)."""
        unknown = set(config) - {"extra_fields", "extra_patterns", "disable", "enable"}
        if unknown:
            raise InputError(f"masking config: unknown keys {sorted(unknown)}")
        disabled, enabled = set(config.get("disable", ())), set(config.get("enable", ()))
        if (disabled | enabled) - set(BY_NAME):
            raise InputError(f"masking config: no built-in rules named {sorted((disabled | enabled) - set(BY_NAME))}")
        chosen = {r.name for r in LOG_RECOGNIZERS} | enabled
        patterns = [r for r in BUILTIN if r.name in chosen and r.name not in disabled]
        for name, regex in dict(config.get("extra_patterns", {})).items():
            try:
                patterns.append(recognizer(str(name), str(name).upper(), str(regex), f"[{str(name).upper()}]"))
            except re.error as exc:
                raise InputError(f"masking config: pattern {name!r} is not a valid regex ({exc})") from None
        return cls(DEFAULT_FIELDS | set(config.get("extra_fields", ())), patterns)

    def sensitive_field(self, name: str) -> bool:
        """True for field names whose values are always replaced."""
        key = _normalise(name)
        return key in self.fields or key.endswith(_SENSITIVE_SUFFIXES)

    def mask_text(self, text: str, hint: str = "") -> str:
        """Replace every recognised piece of PII in one string (``hint``: a column name, as context)."""
        return redact(text, self.patterns, hint)

    def mask(self, obj: Any, _depth: int = 0) -> Any:
        """A masked copy of ``obj``; containers nested deeper than 32 levels are cut off."""
        if isinstance(obj, str):
            return self.mask_text(obj)
        if _depth >= MAX_DEPTH:
            return "[TOO_DEEP]"
        if isinstance(obj, Mapping):
            return {
                k: REDACTED if isinstance(k, str) and self.sensitive_field(k) else self.mask(v, _depth + 1)
                for k, v in obj.items()
            }
        if isinstance(obj, list | tuple | set | frozenset):
            return [self.mask(v, _depth + 1) for v in obj]
        if isinstance(obj, bytes | bytearray):
            return f"[{len(obj)} bytes]"
        if obj is None or isinstance(obj, bool | int | float):
            return obj
        return self.mask_text(str(obj))
