"""Canonical JSON (RFC 8785, JCS) for audit events, so the bytes that are hashed are the same on every machine.

Keys sorted by their UTF-16 code units, no insignificant whitespace, strings escaped as ECMAScript's
``JSON.stringify`` does (only ``"``, ``\\`` and control characters), numbers in ECMAScript's shortest
round-trip form (``1.0`` -> ``1``, ``1e21`` -> ``1e+21``), UTF-8 out. Values JCS cannot represent
exactly are refused rather than silently changed: NaN/Infinity, integers beyond 2**53, non-string keys,
lone surrogates.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from modelshield.core.errors import InputError

MAX_EVENT_BYTES = 64 * 1024
MAX_DEPTH = 32
_MAX_SAFE_INT = 2**53 - 1
# Raw request data must never reach the audit log; the gateway records input_digest instead.
RAW_INPUT_KEYS = frozenset({"input", "inputs", "body", "request_body"})


def _number(value: float) -> str:
    """ECMAScript Number::toString of a finite double (RFC 8785 section 3.2.2.3)."""
    if value == 0:
        return "0"
    digits, _, exp = repr(abs(value)).partition("e")
    mantissa = digits.replace(".", "")
    point = digits.index(".") if "." in digits else len(digits)
    exponent = int(exp or 0) + point  # value = 0.<mantissa> * 10**exponent
    stripped = mantissa.lstrip("0")
    exponent -= len(mantissa) - len(stripped)
    mantissa = stripped.rstrip("0")
    k, n = len(mantissa), exponent
    sign = "-" if value < 0 else ""
    if k <= n <= 21:
        return sign + mantissa + "0" * (n - k)
    if 0 < n <= 21:
        return sign + mantissa[:n] + "." + mantissa[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + mantissa
    e = n - 1
    body = mantissa if k == 1 else mantissa[0] + "." + mantissa[1:]
    return f"{sign}{body}e{'+' if e > 0 else '-'}{abs(e)}"


def _encode(value: Any, depth: int, out: list[str]) -> None:
    if depth > MAX_DEPTH:
        raise InputError(f"audit event is nested deeper than {MAX_DEPTH} levels")
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise InputError(f"audit event integer {value} is outside ±2**53; pass it as a string")
        out.append(str(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InputError("audit event contains NaN or Infinity, which JSON cannot represent")
        out.append(_number(value))
    elif isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise InputError("audit event keys must be strings")
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(value[key], depth + 1, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, depth + 1, out)
        out.append("]")
    else:
        raise InputError(
            f"audit event contains a {type(value).__name__}, which is not JSON (use str, number, "
            "bool, null, list or object)"
        )


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value."""
    out: list[str] = []
    _encode(value, 0, out)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("audit event contains a lone surrogate, which is not valid Unicode") from None


def canonical_event(event: Mapping[str, Any], max_bytes: int = MAX_EVENT_BYTES) -> bytes:
    """Validate an audit event (an object, no raw inputs, at most ``max_bytes``) and return its canonical bytes."""
    if not isinstance(event, Mapping):
        raise InputError(f"an audit event must be a JSON object, got {type(event).__name__}")
    if raw := sorted(RAW_INPUT_KEYS & set(event)):
        raise InputError(
            f"audit event has raw-input field {raw[0]!r}; record input_digest (sha256 of the body) instead"
        )
    data = canonical_json(event)
    if len(data) > max_bytes:
        raise InputError(f"audit event is {len(data)} bytes canonicalised, over the {max_bytes}-byte cap")
    return data
