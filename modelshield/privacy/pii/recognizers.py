"""PII recognisers for free text: a regular expression, then a check (digits, issuing rules, a gazetteer).

One table serves the CLI's ``pii scan``/``pii mask`` and the gateway's log masking (``serve.masking``),
so a rule fixed here is fixed in both. Recognisers run in table order and an earlier match wins an
overlap: credentials first (they contain digits and dots), then structured numbers, then phones.

Two recognisers need *context*: a bare 9-digit number passes the Dutch 11-proof one time in eleven and
an 11-digit one the German tax-id check about one in twenty, so those are reported only with a keyword
(``bsn``, ``steuer-id`` ...) in the 48 characters before the number or in the column name.
``LOG_RECOGNIZERS`` (the gateway's default) leaves those two and the name gazetteer out: a log line's
request ids and capitalised words would trip them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from modelshield.privacy.pii.checksums import (
    de_tax_id_valid,
    es_dni_valid,
    iban_valid,
    luhn_valid,
    nl_bsn_valid,
    uk_nino_valid,
    us_ssn_valid,
)

CONTEXT_WINDOW = 48


@dataclass(frozen=True)
class Finding:
    """One piece of PII in a text: where, what kind, which recogniser."""

    start: int
    end: int
    entity: str
    recognizer: str
    text: str


@dataclass(frozen=True)
class Recognizer:
    """A regex whose matches count when ``validate`` accepts them and, if ``context`` is set, a keyword is near."""

    name: str
    entity: str
    pattern: re.Pattern[str]
    replacement: str
    validate: Callable[[str], bool] | None = None
    context: tuple[str, ...] = ()

    def find(self, text: str, hint: str = "") -> list[tuple[re.Match[str], Finding]]:
        """Every accepted match in ``text``; ``hint`` (a column name) counts as context."""
        out = []
        for m in self.pattern.finditer(text):
            if self.validate is not None and not self.validate(m.group(0)):
                continue
            if self.context and not self._has_context(text[max(0, m.start() - CONTEXT_WINDOW) : m.start()], hint):
                continue
            out.append((m, Finding(m.start(), m.end(), self.entity, self.name, m.group(0))))
        return out

    def _has_context(self, before: str, hint: str) -> bool:
        around = f"{hint} {before}".lower()
        return any(word in around for word in self.context)


def recognizer(
    name: str,
    entity: str,
    regex: str,
    replacement: str,
    validate: Callable[[str], bool] | None = None,
    *,
    flags: int = 0,
    context: Sequence[str] = (),
) -> Recognizer:
    """A ``Recognizer`` from a regex string."""
    return Recognizer(name, entity, re.compile(regex, flags), replacement, validate, tuple(context))


def _load_names(resource: str) -> frozenset[str]:
    text = resources.files("modelshield.privacy.pii").joinpath("data", resource).read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


@functools.cache
def gazetteer() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, surnames) shipped with the package (``privacy/pii/data``)."""
    return _load_names("given_names.txt"), _load_names("surnames.txt")


_NAME_WORD = r"[A-Z][a-z]+(?:['-][A-Z][a-z]+)?"
_TITLES = ("Mr", "Mrs", "Ms", "Miss", "Dr", "Prof")


def _person() -> Recognizer:
    """Names from the gazetteer, compiled into the regex (a validator would see "Contact Mary Smith" as one
    candidate and lose "Mary Smith"): a title and a known surname, or a known given name, an optional middle
    name and a known surname."""
    given, surnames = gazetteer()

    def alternation(names: frozenset[str]) -> str:
        return "|".join(re.escape(n) for n in sorted(names, key=lambda n: (-len(n), n)))

    g, s = alternation(given), alternation(surnames)
    titles = "|".join(_TITLES)
    regex = rf"\b(?:(?:{titles})\.? (?:(?:{g}) )?(?:{s})|(?:{g})(?: {_NAME_WORD})? (?:{s}))\b"
    return recognizer("person", "PERSON", regex, "[PERSON]")


# Order matters: credentials first (they contain digits and dots), then structured numbers, then phones.
BUILTIN: tuple[Recognizer, ...] = (
    recognizer("api_key", "CREDENTIAL", r"\bmsk_[A-Za-z0-9]+_[A-Za-z0-9]+", "[API_KEY]"),
    recognizer("jwt", "CREDENTIAL", r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", "[JWT]"),
    recognizer(
        "bearer", "CREDENTIAL", r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", r"\1 [REDACTED]", flags=re.IGNORECASE
    ),
    recognizer("email", "EMAIL", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[EMAIL]"),
    recognizer("iban", "IBAN", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", "[IBAN]", iban_valid),
    recognizer(
        "card",
        "CREDIT_CARD",
        # 13-19 digits, plain or in the groups cards are printed in (4-4-4-4..., Amex 4-6-5); not inside a
        # longer number or a decimal, but a sentence's full stop may follow
        r"(?<!\d)(?<!\d\.)(?:\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5})(?!\d|\.\d)",
        "[CARD]",
        luhn_valid,
    ),
    recognizer("us_ssn", "NATIONAL_ID", r"\b\d{3}-\d{2}-\d{4}\b", "[SSN]", us_ssn_valid),
    recognizer("uk_nino", "NATIONAL_ID", r"\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", "[NATIONAL_ID]", uk_nino_valid),
    recognizer("es_dni", "NATIONAL_ID", r"\b[XYZ]?\d{7,8}-?[A-Z]\b", "[NATIONAL_ID]", es_dni_valid),
    recognizer(
        "nl_bsn",
        "NATIONAL_ID",
        r"(?<![\d.])\d{4}\.?\d{2}\.?\d{3}(?![\d.])",
        "[NATIONAL_ID]",
        nl_bsn_valid,
        context=("bsn", "burgerservice", "sofi"),
    ),
    recognizer(
        "de_tax_id",
        "NATIONAL_ID",
        r"(?<![\d.])\d{2} ?\d{3} ?\d{3} ?\d{3}(?![\d.])",
        "[NATIONAL_ID]",
        de_tax_id_valid,
        context=("steuer", "idnr", "id-nr", "tin", "tax id", "tax_id"),
    ),
    recognizer(
        "phone",
        "PHONE",
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4}"
        r"(?:[ ]?(?:x|ext\.?)[ ]?\d{1,5})?(?![\w])",
        "[PHONE]",
    ),
    recognizer("e164", "PHONE", r"(?<![\w+])\+\d{8,15}\b", "[PHONE]"),
    _person(),
)

BY_NAME: dict[str, Recognizer] = {r.name: r for r in BUILTIN}
#: the gateway's log masking: no context-bound ids, no names (see the module docstring)
LOG_RECOGNIZERS: tuple[Recognizer, ...] = tuple(r for r in BUILTIN if r.name not in {"nl_bsn", "de_tax_id", "person"})


def find_pii(text: str, recognizers: Iterable[Recognizer] = BUILTIN, hint: str = "") -> list[Finding]:
    """Non-overlapping findings in text order; where two overlap the recogniser listed first wins."""
    return [f for _, f in _accepted(text, recognizers, hint)]


def _accepted(text: str, recognizers: Iterable[Recognizer], hint: str) -> list[tuple[re.Match[str], Finding]]:
    taken: list[tuple[re.Match[str], Finding]] = []
    for rec in recognizers:
        for m, f in rec.find(text, hint):
            if all(f.end <= t.start or f.start >= t.end for _, t in taken):
                taken.append((m, f))
    return sorted(taken, key=lambda mf: mf[1].start)


def redact(text: str, recognizers: Iterable[Recognizer] = BUILTIN, hint: str = "") -> str:
    """``text`` with every finding replaced by its recogniser's replacement (``[EMAIL]``, ``[CARD]`` ...)."""
    table = {r.name: r for r in recognizers}
    accepted = _accepted(text, table.values(), hint)
    if not accepted:
        return text
    parts: list[str] = []
    pos = 0
    for m, f in accepted:
        parts.append(text[pos : f.start])
        parts.append(m.expand(table[f.recognizer].replacement))
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)
