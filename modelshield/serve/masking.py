"""Structured JSON logs, one object per line, masked before anything is written.

The masking itself (field names such as ``password`` or ``authorization``; recognisers for ``msk_`` API
keys, JWTs, bearer credentials, e-mail addresses, Luhn-checked card numbers, mod-97-checked IBANs, national
ids and phone numbers) is ``modelshield.privacy.pii.Masker``, the same one ``modelshield pii mask`` runs.

``JsonLogFormatter`` applies the masker to the message, the ``extra`` fields and the traceback, so
a secret passed to a logger by mistake still never reaches the log.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from modelshield.privacy.pii import Masker, iban_valid, luhn_valid

__all__ = ["JsonLogFormatter", "Masker", "configure_json_logging", "iban_valid", "luhn_valid"]

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
