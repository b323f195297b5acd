"""A labelled PII corpus generated with Faker, and span-level precision/recall, to measure any recogniser set.

Sentences from templates carry real-looking values (Faker's names, e-mails, phones, check-digit-valid cards,
IBANs, BSNs, DNIs, NIEs; valid German tax ids and UK NINOs drawn here), each labelled with its span, and
look-alikes that must *not* be reported: order numbers with a wrong Luhn digit, IBANs with wrong check
digits, SSNs with area 000/666, bare 9-digit ids without context. A prediction is a true positive when it
overlaps a gold span of the same entity (the usual rule in Presidio's evaluator).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from modelshield.core.errors import DependencyError
from modelshield.privacy.pii.checksums import de_tax_id_valid
from modelshield.privacy.pii.recognizers import Finding


@dataclass(frozen=True)
class Sample:
    """One sentence and its gold spans (start, end, entity)."""

    text: str
    spans: tuple[tuple[int, int, str], ...]


@dataclass(frozen=True)
class Scores:
    """Per-entity counts and the rates they give."""

    tp: Counter[str]
    fp: Counter[str]
    fn: Counter[str]

    def precision(self, entity: str | None = None) -> float:
        tp, fp = (self.tp[entity], self.fp[entity]) if entity else (sum(self.tp.values()), sum(self.fp.values()))
        return tp / (tp + fp) if tp + fp else float("nan")

    def recall(self, entity: str | None = None) -> float:
        tp, fn = (self.tp[entity], self.fn[entity]) if entity else (sum(self.tp.values()), sum(self.fn.values()))
        return tp / (tp + fn) if tp + fn else float("nan")


def _de_tax_id(rng: random.Random) -> str:
    while True:
        digits = rng.sample("0123456789", 9)
        if digits[0] == "0":
            continue
        body = digits + [rng.choice(digits[1:])]
        rng.shuffle(body)
        if body[0] == "0":
            continue
        for check in "0123456789":
            tin = "".join(body) + check
            if de_tax_id_valid(tin):
                return tin


def _uk_nino(rng: random.Random) -> str:
    first, second = rng.choice("ABCEGHJKLMNPRSTWXYZ"), rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
        first = "A"
    d = f"{rng.randrange(10**6):06d}"
    return f"{first}{second} {d[:2]} {d[2:4]} {d[4:]} {rng.choice('ABCD')}"


def _break_luhn(card: str) -> str:
    last = int(card[-1])
    return card[:-1] + str((last + 1) % 10)


def labelled_corpus(n: int = 1000, seed: int = 0) -> list[Sample]:
    """``n`` sentences, each with one or two pieces of PII or a look-alike, deterministic for a seed."""
    try:
        from faker import Faker
    except ImportError:
        raise DependencyError("the labelled corpus is generated with Faker", hint="pip install faker") from None
    rng = random.Random(seed)
    fakers = {loc: Faker(loc) for loc in ("en_US", "nl_NL", "es_ES", "de_DE", "en_GB")}
    for i, f in enumerate(fakers.values()):
        f.seed_instance(seed * 10 + i)
    us, nl, es = fakers["en_US"], fakers["nl_NL"], fakers["es_ES"]

    def pick_locale() -> Faker:
        return fakers[rng.choice(list(fakers))]

    Gen = Callable[[], tuple[str, str | None]]
    makers: list[tuple[str, Gen]] = [
        ("Please email {} about the renewal.", lambda: (pick_locale().email(), "EMAIL")),
        ("Call me back on {} tomorrow.", lambda: (us.phone_number(), "PHONE")),
        ("Card on file: {}.", lambda: (us.credit_card_number(card_type="visa16"), "CREDIT_CARD")),
        ("Refund to card {} was approved.", lambda: (us.credit_card_number(card_type="mastercard"), "CREDIT_CARD")),
        ("Wire the deposit to {} before Friday.", lambda: (pick_locale().iban(), "IBAN")),
        ("Her SSN is {} per the form.", lambda: (us.ssn(), "NATIONAL_ID")),
        ("BSN: {} (verified).", lambda: (nl.ssn(), "NATIONAL_ID")),
        ("DNI {} presented at the desk.", lambda: (es.nif(), "NATIONAL_ID")),
        ("NIE {} for the contract.", lambda: (es.nie(), "NATIONAL_ID")),
        ("Steuer-IdNr {} liegt vor.", lambda: (_de_tax_id(rng), "NATIONAL_ID")),
        ("NI number {} on the payslip.", lambda: (_uk_nino(rng), "NATIONAL_ID")),
        ("The ticket was opened by {} yesterday.", lambda: (us.name(), "PERSON")),
        # look-alikes: no label
        ("Order {} has shipped.", lambda: (_break_luhn(us.credit_card_number(card_type="visa16")), None)),
        ("Tracking number {} is in transit.", lambda: (str(rng.randrange(10**8, 10**9)), None)),
        (
            "Reference {} closed.",
            lambda: (f"{rng.choice(['000', '666'])}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}", None),
        ),
        ("Invoice {} is overdue.", lambda: (f"INV-{rng.randrange(10**6, 10**7)}", None)),
        (
            "Build {} passed on {} nodes.",
            lambda: (f"{rng.randrange(1, 9)}.{rng.randrange(0, 30)}.{rng.randrange(0, 200)}", None),
        ),
    ]
    samples = []
    for _ in range(n):
        template, make = makers[rng.randrange(len(makers))]
        value, entity = make()
        parts = template.split("{}")
        text = parts[0] + value + "{}".join(parts[1:]).replace("{}", str(rng.randrange(2, 64)))
        spans = ((len(parts[0]), len(parts[0]) + len(value), entity),) if entity else ()
        samples.append(Sample(text, spans))
    return samples


def score(
    samples: Iterable[Sample], detect: Callable[[str], Sequence[Finding]], entities: Iterable[str] | None = None
) -> Scores:
    """Span-overlap precision and recall of ``detect`` on ``samples`` (only ``entities``, when given)."""
    wanted = set(entities) if entities is not None else None
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for s in samples:
        gold = [g for g in s.spans if wanted is None or g[2] in wanted]
        found = [f for f in detect(s.text) if wanted is None or f.entity in wanted]
        hit = set()
        for f in found:
            match = next((i for i, g in enumerate(gold) if g[2] == f.entity and f.start < g[1] and g[0] < f.end), None)
            if match is None:
                fp[f.entity] += 1
            elif match not in hit:
                hit.add(match)
                tp[f.entity] += 1
        for i, g in enumerate(gold):
            if i not in hit:
                fn[g[2]] += 1
    return Scores(tp, fp, fn)
