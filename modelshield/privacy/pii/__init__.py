"""Offline PII detection and masking: checksum-validated recognisers, a name gazetteer, one masker shared
with the gateway's log masking. See docs/pseudonymization.md."""

from modelshield.privacy.pii.checksums import (
    de_tax_id_valid,
    es_dni_valid,
    iban_valid,
    luhn_valid,
    nl_bsn_valid,
    uk_nino_valid,
    us_ssn_valid,
)
from modelshield.privacy.pii.masker import DEFAULT_FIELDS, REDACTED, Masker
from modelshield.privacy.pii.recognizers import (
    BUILTIN,
    LOG_RECOGNIZERS,
    Finding,
    Recognizer,
    find_pii,
    recognizer,
    redact,
)

__all__ = [
    "BUILTIN",
    "DEFAULT_FIELDS",
    "LOG_RECOGNIZERS",
    "REDACTED",
    "Finding",
    "Masker",
    "Recognizer",
    "de_tax_id_valid",
    "es_dni_valid",
    "find_pii",
    "iban_valid",
    "luhn_valid",
    "nl_bsn_valid",
    "recognizer",
    "redact",
    "uk_nino_valid",
    "us_ssn_valid",
]
