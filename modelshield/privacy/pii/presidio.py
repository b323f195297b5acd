"""Presidio as an optional, pattern-only engine: its predefined regex-and-checksum recognisers, no NLP model.

``presidio-analyzer`` installs from PyPI with spaCy as a dependency, but its ``AnalyzerEngine`` wants a spaCy
language model (``en_core_web_lg``, not on PyPI: downloaded from GitHub at first use). Its pattern
recognisers run without one (``analyze(text, entities, nlp_artifacts=None)``), so this module builds only
those and maps their entity names onto ours. Context words (Presidio's score boost) need the NLP
artefacts and are therefore not applied (its phone recogniser then scores 0.4); findings below ``min_score``
(default 0, Presidio's own default threshold) are dropped. Its e-mail recogniser
would fetch the Public Suffix List over the network; it is pointed at tldextract's bundled snapshot instead.
"""

from __future__ import annotations

import functools
from typing import Any

from modelshield.core.errors import DependencyError
from modelshield.privacy.pii.recognizers import Finding

#: Presidio entity → ours
ENTITIES = {
    "CREDIT_CARD": "CREDIT_CARD",
    "EMAIL_ADDRESS": "EMAIL",
    "IBAN_CODE": "IBAN",
    "US_SSN": "NATIONAL_ID",
    "UK_NINO": "NATIONAL_ID",
    "ES_NIF": "NATIONAL_ID",
    "ES_NIE": "NATIONAL_ID",
    "DE_TAX_ID": "NATIONAL_ID",
    "PHONE_NUMBER": "PHONE",
}
_CLASSES = (
    "CreditCardRecognizer",
    "EmailRecognizer",
    "IbanRecognizer",
    "UsSsnRecognizer",
    "UkNinoRecognizer",
    "EsNifRecognizer",
    "EsNieRecognizer",
    "DeTaxIdRecognizer",
    "PhoneRecognizer",
)


@functools.cache
def _recognizers() -> tuple[Any, ...]:
    try:
        from presidio_analyzer import predefined_recognizers
    except ImportError:
        raise DependencyError(
            "the presidio engine needs presidio-analyzer", hint="pip install presidio-analyzer (no spaCy model needed)"
        ) from None
    import tldextract.tldextract

    # Presidio's e-mail check calls tldextract, which fetches the Public Suffix List over the network at first
    # use; offline, use the snapshot tldextract ships (suffix_list_urls=() is its documented switch for that).
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    return tuple(getattr(predefined_recognizers, name)() for name in _CLASSES if hasattr(predefined_recognizers, name))


def presidio_findings(text: str, min_score: float = 0.0) -> list[Finding]:
    """Findings of Presidio's pattern recognisers in ``text``, non-overlapping (highest score wins), in order."""
    results = []
    for rec in _recognizers():
        for r in rec.analyze(text, rec.supported_entities, None):
            if r.entity_type in ENTITIES and r.score >= min_score:
                results.append((r.score, r.start, r.end, r.entity_type, type(rec).__name__))
    taken: list[Finding] = []
    for _, start, end, entity, name in sorted(results, key=lambda x: (-x[0], x[1])):
        if all(end <= t.start or start >= t.end for t in taken):
            taken.append(Finding(start, end, ENTITIES[entity], f"presidio:{name}", text[start:end]))
    return sorted(taken, key=lambda f: f.start)
