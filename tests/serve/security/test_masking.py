"""Log masking: secrets and PII are replaced in fields, free text, extras and tracebacks; look-alikes survive."""

from __future__ import annotations

import io
import json
import logging

import pytest

from modelshield.core.errors import InputError
from modelshield.serve.masking import JsonLogFormatter, Masker, configure_json_logging, iban_valid, luhn_valid

KEY = "msk_0123456789abcdef_" + "a" * 52
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("contact alice.smith+ml@example.co.uk now", "contact [EMAIL] now"),
        ("card 4111 1111 1111 1111 exp", "card [CARD] exp"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("order 4111111111111112", "order 4111111111111112"),  # fails Luhn: not a card
        ("ssn 123-45-6789.", "ssn [SSN]."),
        ("ssn 000-12-3456", "ssn 000-12-3456"),  # never issued
        ("nino AB 12 34 56 C", "nino [NATIONAL_ID]"),
        ("iban GB82 WEST 1234 5698 7654 32 ok", "iban [IBAN] ok"),
        ("call +1 415-555-0123 or (020) 7946 0958", "call [PHONE] or [PHONE]"),
        ("call +447700900123", "call [PHONE]"),
        (f"key {KEY} leaked", "key [API_KEY] leaked"),
        (f"Authorization: Bearer {JWT}", "Authorization: Bearer [JWT]"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED]"),
        (
            "model digits v3 accuracy 0.973 at 2026-01-05 12:30:01",
            "model digits v3 accuracy 0.973 at 2026-01-05 12:30:01",
        ),
    ],
)
def test_patterns(text: str, masked: str) -> None:
    assert Masker().mask_text(text) == masked


def test_checksums() -> None:
    assert "[IBAN]" not in Masker().mask_text("iban GB00 WEST 1234 5698 7654 32")  # bad check digits
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112") and not luhn_valid("1234")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE88 3704 0044 0532 0130 00")


def test_fields_are_masked_recursively() -> None:
    body = {
        "user": {"email": "bob@acme.com", "Password": "hunter2", "prefs": [{"api-key": "abc"}, {"note": KEY}]},
        "headers": {"Authorization": "Bearer xyz", "X-Request-Id": "r1"},
        "db_password": "p",
        "n": 3,
        "inputs": [[0.1, 0.2]],
        "raw": b"\x00\x01",
    }
    out = Masker().mask(body)
    assert out["user"]["email"] == "[EMAIL]" and out["user"]["Password"] == "[REDACTED]"
    assert out["user"]["prefs"] == [{"api-key": "[REDACTED]"}, {"note": "[API_KEY]"}]
    assert out["headers"] == {"Authorization": "[REDACTED]", "X-Request-Id": "r1"}
    assert out["db_password"] == "[REDACTED]" and out["n"] == 3 and out["inputs"] == [[0.1, 0.2]]
    assert out["raw"] == "[2 bytes]" and body["user"]["Password"] == "hunter2"  # the original is untouched
    deep: dict = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]
    assert "[TOO_DEEP]" in json.dumps(Masker().mask(deep))


def test_config_adds_fields_and_patterns_and_disables_rules() -> None:
    masker = Masker.from_config(
        {"extra_fields": ["patient_id"], "extra_patterns": {"mrn": r"\bMRN-\d{6}\b"}, "disable": ["phone"]}
    )
    out = masker.mask({"patient_id": "p-1", "note": "MRN-123456 call 415-555-0123"})
    assert out == {"patient_id": "[REDACTED]", "note": "[MRN] call 415-555-0123"}
    for bad in [{"extra_patterns": {"x": "("}}, {"disable": ["nope"]}, {"fields": []}]:
        with pytest.raises(InputError):
            Masker.from_config(bad)


def test_a_secret_never_reaches_the_log_output() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("modelshield.test.masking")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter(static_fields={"service": "gateway"}))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "auth failed for %s with key %s",
            "carol@example.org",
            KEY,
            extra={
                "headers": {"authorization": f"Bearer {JWT}"},
                "token": "t0p",
                "card": "5555555555554444",
                "model": "digits",
            },
        )
        try:
            raise ValueError(f"bad credential {KEY}")
        except ValueError:
            logger.exception("request failed\nsecond line")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    for secret in [KEY, JWT, "t0p", "carol@example.org", "5555555555554444"]:
        assert secret not in text
    lines = text.splitlines()
    assert len(lines) == 2  # one JSON object per line, even with newlines and tracebacks
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["service"] == "gateway" and first["model"] == "digits"
    assert first["message"] == "auth failed for [EMAIL] with key [API_KEY]" and first["token"] == "[REDACTED]"
    assert first["headers"] == {"authorization": "[REDACTED]"} and first["card"] == "[CARD]"
    assert "ValueError: bad credential [API_KEY]" in second["exception"]


def test_configure_json_logging_installs_one_handler() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        configure_json_logging(logging.INFO, stream=stream)
        handler = configure_json_logging(logging.INFO, stream=stream)
        assert sum(isinstance(h.formatter, JsonLogFormatter) for h in root.handlers) == 1
        logging.getLogger("modelshield.x").info("password=%s", "bob@acme.com")
        assert json.loads(stream.getvalue())["message"] == "password=[EMAIL]"
    finally:
        root.removeHandler(handler)
        root.handlers[:] = before
        root.setLevel(level)
