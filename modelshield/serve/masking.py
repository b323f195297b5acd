"""Mask secrets and personal data before anything is logged; structured JSON logs, one object per line.

Two kinds of rules, both configurable:

- field names (``password``, ``token``, ``authorization``, ``api_key``, ``secret``, ...): the whole
  value is replaced, whatever it holds, in dictionaries at any depth;
- patterns in free text: ``msk_`` API keys, JWTs, bearer credentials, e-mail addresses, payment
  card numbers (only when the Luhn check passes, so order ids stay readable), IBANs (only when the
  ISO 7064 mod-97 check passes), US social security numbers, UK national insurance numbers and
  phone numbers.

``JsonLogFormatter`` applies the masker to the message, the ``extra`` fields and the traceback, so
a secret passed to a logger by mistake still never reaches the log.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from modelshield.core.errors import InputError

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


def luhn_valid(text: str) -> bool:
    """Payment card check digit (ISO/IEC 7812); 13-19 digits."""
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """IBAN check digits (ISO 13616, mod 97 == 1)."""
    s = text.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


@dataclass(frozen=True)
class PatternRule:
    """A regular expression whose matches are replaced (only those that pass ``validate``, when given)."""

    name: str
    pattern: re.Pattern[str]
    replacement: str
    validate: Callable[[str], bool] | None = None

    def apply(self, text: str) -> str:
        if self.validate is None:
            return self.pattern.sub(self.replacement, text)
        validate = self.validate
        return self.pattern.sub(lambda m: self.replacement if validate(m.group(0)) else m.group(0), text)


def _rule(
    name: str, regex: str, replacement: str, validate: Callable[[str], bool] | None = None, flags: int = 0
) -> PatternRule:
    return PatternRule(name, re.compile(regex, flags), replacement, validate)


# Order matters: credentials first (they contain digits and dots), then structured numbers, then phones.
DEFAULT_PATTERNS: tuple[PatternRule, ...] = (
    _rule("api_key", r"\bmsk_[A-Za-z0-9]+_[A-Za-z0-9]+", "[API_KEY]"),
    _rule("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", "[JWT]"),
    _rule("bearer", r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", r"\1 [REDACTED]", flags=re.IGNORECASE),
    _rule("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[EMAIL]"),
    _rule("iban", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", "[IBAN]", iban_valid),
    _rule("card", r"(?<![\d.])\d(?:[ -]?\d){12,18}(?![\d.])", "[CARD]", luhn_valid),
    _rule("us_ssn", r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b", "[SSN]"),
    _rule("uk_nino", r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", "[NATIONAL_ID]"),
    _rule(
        "phone",
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4}(?![\w])",
        "[PHONE]",
    ),
    _rule("e164", r"(?<![\w+])\+\d{8,15}\b", "[PHONE]"),
)


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_")


class Masker:
    """Replace sensitive fields and patterns in strings, dicts and lists (recursively, bounded depth)."""

    def __init__(
        self, fields: Iterable[str] = DEFAULT_FIELDS, patterns: Iterable[PatternRule] = DEFAULT_PATTERNS
    ) -> None:
        self.fields = frozenset(_normalise(f) for f in fields)
        self.patterns = tuple(patterns)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Masker:
        """Build from a config table: ``extra_fields``, ``extra_patterns`` (name -> regex), ``disable`` (rule names)."""
        unknown = set(config) - {"extra_fields", "extra_patterns", "disable"}
        if unknown:
            raise InputError(f"masking config: unknown keys {sorted(unknown)}")
        disabled = set(config.get("disable", ()))
        known = {r.name for r in DEFAULT_PATTERNS}
        if disabled - known:
            raise InputError(f"masking config: no built-in rules named {sorted(disabled - known)}")
        patterns = [r for r in DEFAULT_PATTERNS if r.name not in disabled]
        for name, regex in dict(config.get("extra_patterns", {})).items():
            try:
                patterns.append(_rule(str(name), str(regex), f"[{str(name).upper()}]"))
            except re.error as exc:
                raise InputError(f"masking config: pattern {name!r} is not a valid regex ({exc})") from None
        return cls(DEFAULT_FIELDS | set(config.get("extra_fields", ())), patterns)

    def sensitive_field(self, name: str) -> bool:
        """True for field names whose values are always replaced."""
        key = _normalise(name)
        return key in self.fields or key.endswith(_SENSITIVE_SUFFIXES)

    def mask_text(self, text: str) -> str:
        """Apply every pattern rule to one string."""
        for rule in self.patterns:
            text = rule.apply(text)
        return text

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


_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, any ``extra`` fields; all masked."""

    def __init__(self, masker: Masker | None = None, static_fields: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.masker = masker or Masker()
        self.static_fields = dict(static_fields or {})

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self.static_fields,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(self.masker.mask(payload), ensure_ascii=False, separators=(",", ":"), default=str)


def configure_json_logging(
    level: int | str = logging.INFO, masker: Masker | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record (root logger) through one masked JSON handler; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLogFormatter(masker))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, JsonLogFormatter)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
