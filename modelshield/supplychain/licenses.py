"""Licence policy: every installed package's licence, and the model's, as SPDX ids checked against allow/review/deny.

A package's licence is read, in this order, from its ``License-Expression`` (PEP 639), a short ``License`` field
that reads as an SPDX expression or a known licence name, its ``License ::`` trove classifiers (several
classifiers mean a choice: joined with OR), the first line of a ``License`` field holding the full text, and
last the licence files the metadata declares (``License-File``), when their texts name one licence. A bare "BSD"
is read as BSD-3-Clause unless those files hold the 2- or 4-clause text.
Legacy names are normalised to SPDX ids (``Apache Software License`` is ``Apache-2.0``, ``GPLv3+`` is
``GPL-3.0-or-later``). Expressions are evaluated as SPDX defines them: ``A OR B`` lets the user pick, so it gets
the better verdict; ``A AND B`` binds to both, so the worse; ``A WITH exception`` only grants more, so it is
judged as itself when the policy names it, else as ``A``.

Policy patterns are SPDX ids or globs (``GPL-*``), matched case-insensitively; when several lists match, the
strictest wins (deny, then review, then allow). A licence no list matches, or none found at all, is *unknown*.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name

from modelshield.core.errors import FormatError, MissingFileError
from modelshield.integrity.provenance import load_lock
from modelshield.supplychain.distributions import installed_distributions, metadata_field

Status = Literal["allowed", "review", "unknown", "denied"]
STATUSES: tuple[Status, ...] = ("allowed", "review", "unknown", "denied")

DEFAULT_POLICY = """\
# modelshield licence policy. Patterns are SPDX ids or globs, case-insensitive; the strictest list that
# matches wins (deny > review > allow). Anything no list matches, and a package with no licence, is
# "unknown": it fails by default (unknown = "deny"); set unknown = "review" to only flag it.
unknown = "deny"

# Permissive licences, and weak copyleft that imposes nothing on code importing an unmodified library.
allow = [
  "MIT", "MIT-0", "MIT-CMU", "BSD-2-Clause", "BSD-3-Clause", "0BSD", "ISC", "Apache-2.0", "PSF-2.0",
  "Python-2.0", "CNRI-Python", "Zlib", "BSL-1.0", "Unlicense", "CC0-1.0", "CC-BY-4.0", "HPND", "NCSA",
  "UPL-1.0", "BlueOak-1.0.0", "Unicode-3.0", "Unicode-DFS-2016", "X11", "MPL-2.0", "LGPL-*",
]

# Strong and network copyleft, share-alike and other terms a person should read before shipping.
review = [
  "GPL-*", "AGPL-*", "EUPL-*", "OSL-*", "EPL-*", "CDDL-*", "CC-BY-SA-*", "Artistic-*",
  "LicenseRef-Public-Domain", "LicenseRef-Proprietary",
]

# Terms that forbid common uses: non-commercial, no-derivatives, source-available with service limits.
deny = ["SSPL-1.0", "BUSL-1.1", "Elastic-2.0", "CC-BY-NC-*", "CC-BY-ND-*", "Commons-Clause"]

# [overrides] sets the licence of a package whose metadata is wrong or missing:  some-package = "MIT"
# [exceptions] accepts one package's verdict after a review:  psycopg = "LGPL, unmodified; reviewed by legal"
"""

# SPDX ids seen on PyPI, so any capitalisation normalises to the canonical spelling.
SPDX_IDS = {
    i.lower(): i
    for i in """
0BSD AFL-3.0 AGPL-1.0-only AGPL-3.0-only AGPL-3.0-or-later Apache-1.1 Apache-2.0 APSL-2.0 Artistic-1.0
Artistic-2.0 BlueOak-1.0.0 BSD-1-Clause BSD-2-Clause BSD-3-Clause BSD-3-Clause-Clear BSD-4-Clause BSL-1.0
BUSL-1.1 CC-BY-3.0 CC-BY-4.0 CC-BY-NC-4.0 CC-BY-NC-ND-4.0 CC-BY-NC-SA-4.0 CC-BY-ND-4.0 CC-BY-SA-3.0
CC-BY-SA-4.0 CC0-1.0 CDDL-1.0 CDDL-1.1 CNRI-Python ECL-2.0 EPL-1.0 EPL-2.0 EUPL-1.1 EUPL-1.2 Elastic-2.0
GPL-1.0-only GPL-1.0-or-later GPL-2.0-only GPL-2.0-or-later GPL-3.0-only GPL-3.0-or-later HPND ISC
LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1-only LGPL-2.1-or-later LGPL-3.0-only LGPL-3.0-or-later MIT MIT-0
MIT-CMU MPL-1.1 MPL-2.0 MPL-2.0-no-copyleft-exception MS-PL NCSA OFL-1.1 OpenSSL OSL-3.0 PostgreSQL PSF-2.0
Python-2.0 SSPL-1.0 Unicode-3.0 Unicode-DFS-2016 Unlicense UPL-1.0 W3C WTFPL X11 Zlib ZPL-2.1
LLVM-exception Classpath-exception-2.0 GCC-exception-3.1 Autoconf-exception-3.0
""".split()
}

# Deprecated SPDX ids, free-text names and trove classifier tails (lower case) -> SPDX ids.
ALIASES = {
    "gpl-2.0": "GPL-2.0-only",
    "gpl-2.0+": "GPL-2.0-or-later",
    "gpl-3.0": "GPL-3.0-only",
    "gpl-3.0+": "GPL-3.0-or-later",
    "lgpl-2.1": "LGPL-2.1-only",
    "lgpl-2.1+": "LGPL-2.1-or-later",
    "lgpl-3.0": "LGPL-3.0-only",
    "lgpl-3.0+": "LGPL-3.0-or-later",
    "agpl-3.0": "AGPL-3.0-only",
    "mit license": "MIT",
    "the mit license": "MIT",
    "mit licence": "MIT",
    "expat": "MIT",
    "mit no attribution license (mit-0)": "MIT-0",
    "bsd": "BSD-3-Clause",
    "bsd license": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause",
    "modified bsd license": "BSD-3-Clause",
    "revised bsd license": "BSD-3-Clause",
    "3-clause bsd license": "BSD-3-Clause",
    "bsd 3-clause license": "BSD-3-Clause",
    "bsd 3-clause": "BSD-3-Clause",
    "bsd-3": "BSD-3-Clause",
    "bsd 2-clause license": "BSD-2-Clause",
    "2-clause bsd": "BSD-2-Clause",
    "2-clause bsd license": "BSD-2-Clause",
    "3-clause bsd": "BSD-3-Clause",
    "simplified bsd": "BSD-2-Clause",
    "freebsd": "BSD-2-Clause",
    "apache": "Apache-2.0",
    "apache 2.0": "Apache-2.0",
    "apache 2": "Apache-2.0",
    "apache-2": "Apache-2.0",
    "apache license": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache license version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "asl 2.0": "Apache-2.0",
    "isc license": "ISC",
    "iscl": "ISC",
    "isc license (iscl)": "ISC",
    "psf": "PSF-2.0",
    "psfl": "PSF-2.0",
    "psf license": "PSF-2.0",
    "python software foundation license": "PSF-2.0",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "mpl 2.0": "MPL-2.0",
    "mozilla public license 2.0": "MPL-2.0",
    "mozilla public license 1.1 (mpl 1.1)": "MPL-1.1",
    "gnu general public license (gpl)": "GPL-1.0-or-later",
    "gpl": "GPL-1.0-or-later",
    "gnu general public license v2 (gplv2)": "GPL-2.0-only",
    "gplv2": "GPL-2.0-only",
    "gnu general public license v2 or later (gplv2+)": "GPL-2.0-or-later",
    "gplv2+": "GPL-2.0-or-later",
    "gnu general public license v3 (gplv3)": "GPL-3.0-only",
    "gplv3": "GPL-3.0-only",
    "gnu general public license v3 or later (gplv3+)": "GPL-3.0-or-later",
    "gplv3+": "GPL-3.0-or-later",
    "gnu affero general public license v3": "AGPL-3.0-only",
    "agplv3": "AGPL-3.0-only",
    "gnu affero general public license v3 or later (agplv3+)": "AGPL-3.0-or-later",
    "gnu lesser general public license v2 (lgplv2)": "LGPL-2.0-only",
    "gnu lesser general public license v2 or later (lgplv2+)": "LGPL-2.0-or-later",
    "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0-only",
    "lgplv3": "LGPL-3.0-only",
    "gnu lesser general public license v3 or later (lgplv3+)": "LGPL-3.0-or-later",
    "gnu library or lesser general public license (lgpl)": "LGPL-2.0-or-later",
    "lgpl": "LGPL-2.0-or-later",
    "the unlicense (unlicense)": "Unlicense",
    "the unlicense": "Unlicense",
    "boost software license 1.0 (bsl-1.0)": "BSL-1.0",
    "zlib/libpng license": "Zlib",
    "eclipse public license 1.0 (epl-1.0)": "EPL-1.0",
    "eclipse public license 2.0 (epl-2.0)": "EPL-2.0",
    "european union public licence 1.2 (eupl 1.2)": "EUPL-1.2",
    "academic free license (afl)": "AFL-3.0",
    "historical permission notice and disclaimer (hpnd)": "HPND",
    "universal permissive license (upl)": "UPL-1.0",
    "cc0 1.0 universal (cc0 1.0) public domain dedication": "CC0-1.0",
    "cc0": "CC0-1.0",
    "artistic license": "Artistic-2.0",
    "zope public license": "ZPL-2.1",
    "postgresql license": "PostgreSQL",
    "public domain": "LicenseRef-Public-Domain",
    "other/proprietary license": "LicenseRef-Proprietary",
}
_CLASSIFIER_PREFIX = re.compile(r"License :: (?:OSI Approved :: )?")
_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def normalise_id(token: str) -> str:
    """One licence name or id in its SPDX spelling; an unrecognised one comes back unchanged."""
    text = token.strip()
    low = text.lower()
    if known := ALIASES.get(low) or SPDX_IDS.get(low):
        return known
    if low.endswith("+") and low[:-1] in SPDX_IDS:
        return SPDX_IDS[low[:-1]] + "-or-later"
    return text


def recognised(licence_id: str) -> bool:
    base = licence_id.split(" WITH ")[0]
    return base in SPDX_IDS.values() or base.startswith("LicenseRef-")


Node = tuple[str, Any]


class _Parser:
    """SPDX expression grammar: ``or := and (OR and)*``, ``and := with (AND with)*``, ``with := id [WITH id] | (or)``."""

    def __init__(self, text: str) -> None:
        self.tokens = _TOKEN.findall(text)
        self.text = text
        self.pos = 0

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        if (token := self._peek()) is None:
            raise FormatError(f"licence expression {self.text!r} ends too early")
        self.pos += 1
        return token

    def parse(self) -> Node:
        node = self._or()
        if self._peek() is not None:
            raise FormatError(f"licence expression {self.text!r}: unexpected {self._peek()!r}")
        return node

    def _chain(self, op: str, operand: Callable[[], Node]) -> Node:
        """``operand (op operand)*``: one precedence level of the grammar."""
        terms = [operand()]
        while (self._peek() or "").upper() == op:
            self._take()
            terms.append(operand())
        return terms[0] if len(terms) == 1 else (op.lower(), terms)

    def _or(self) -> Node:
        return self._chain("OR", self._and)

    def _and(self) -> Node:
        return self._chain("AND", self._with)

    def _with(self) -> Node:
        token = self._take()
        if token == "(":
            node = self._or()
            if self._take() != ")":
                raise FormatError(f"licence expression {self.text!r}: missing ')'")
            return node
        if token == ")" or token.upper() in ("AND", "OR", "WITH"):
            raise FormatError(f"licence expression {self.text!r}: expected a licence id, got {token!r}")
        licence = normalise_id(token)
        if (self._peek() or "").upper() == "WITH":
            self._take()
            licence = f"{licence} WITH {normalise_id(self._take())}"
        return ("id", licence)


def parse_expression(text: str) -> Node:
    """An SPDX expression as a tree of ``("id", str)``, ``("and", [...])`` and ``("or", [...])``."""
    if not text.strip():
        raise FormatError("empty licence expression")
    return _Parser(text).parse()


def render(node: Node, top: bool = True) -> str:
    """The tree back as an expression in SPDX spelling, parenthesised where precedence needs it."""
    kind, value = node
    if kind == "id":
        return value
    text = f" {kind.upper()} ".join(render(n, False) for n in value)
    return text if top else f"({text})"  # AND binds tighter than OR, but nobody should have to remember that


def licence_ids(node: Node) -> list[str]:
    """Every licence id in an expression tree, exceptions included with their licence."""
    kind, value = node
    return [value] if kind == "id" else [leaf for n in value for leaf in licence_ids(n)]


def _as_expression(text: str) -> Node | None:
    """A short one-line ``License`` value that reads as a licence name or an expression of known ids."""
    text = text.strip()
    if not text or "\n" in text or len(text) > 100:
        return None
    if (alias := ALIASES.get(text.lower())) is not None:
        return ("id", alias)
    try:
        node = parse_expression(text)
    except FormatError:
        return None
    return node if all(recognised(leaf) for leaf in licence_ids(node)) else None


# Licence texts told apart by phrases only they carry; the BSD family by the clauses after its common opening.
_TEXTS = (
    ("MIT", ("permission is hereby granted, free of charge, to any person obtaining a copy",)),
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",)),
)
_BSD_OPENING = "redistribution and use in source and binary forms"
_PLAIN_BSD = {"bsd", "bsd license"}  # says BSD without saying which


def _licence_files(dist: metadata.Distribution) -> list[tuple[str, str]]:
    """(name, lower-cased text) of the licence files the metadata declares (PEP 639 ``License-File``), read
    from ``.dist-info/licenses/`` or, as older wheels store them, the ``.dist-info`` folder itself."""
    found = []
    for name in dist.metadata.get_all("License-File") or []:
        text = dist.read_text(f"licenses/{name}") or dist.read_text(name)
        if text:
            found.append((name, " ".join(text.lower().split())))
    return found


def _bsd_in(text: str) -> str | None:
    """Which BSD licence a text holds: the 4-clause one has the advertising clause, the 3-clause one the
    no-endorsement clause, both before the disclaimer that ends every variant."""
    start = text.find(_BSD_OPENING)
    if start < 0:
        return None
    end = text.find("this software is provided", start)
    clauses = text[start:end] if end > 0 else text[start:]
    if "advertising materials" in clauses:
        return "BSD-4-Clause"
    return "BSD-3-Clause" if "endorse or promote" in clauses else "BSD-2-Clause"


def _licence_in(text: str) -> str | None:
    if bsd := _bsd_in(text):
        return bsd
    return next((spdx for spdx, phrases in _TEXTS if all(p in text for p in phrases)), None)


def _which_bsd(node: Node, dist: metadata.Distribution) -> Node:
    """A bare "BSD" is read as BSD-3-Clause unless the package's licence files hold another BSD text."""
    variants = {bsd for _, text in _licence_files(dist) if (bsd := _bsd_in(text))}
    return _replace(node, "BSD-3-Clause", variants.pop()) if len(variants) == 1 else node


def _replace(node: Node, old: str, new: str) -> Node:
    kind, value = node
    if kind == "id":
        return ("id", new) if value == old else node
    return (kind, [_replace(n, old, new) for n in value])


def detect_licence(dist: metadata.Distribution) -> tuple[str, str]:
    """(SPDX expression, where it came from) for an installed distribution; ``("", "none")`` when nothing says."""
    if expression := metadata_field(dist, "License-Expression"):
        try:
            return render(parse_expression(expression)), "License-Expression"
        except FormatError:
            return expression, "License-Expression (not SPDX)"
    found, plain_bsd = [], False
    for classifier in dist.metadata.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            tail = _CLASSIFIER_PREFIX.sub("", classifier).strip()
            plain_bsd |= tail.lower() in _PLAIN_BSD
            if (spdx := ALIASES.get(tail.lower())) and spdx not in found:
                found.append(spdx)
    choice: Node = ("or", [("id", f) for f in found]) if len(found) > 1 else ("id", found[0] if found else "")
    text = metadata_field(dist, "License")
    if (node := _as_expression(text)) is not None:
        if node[0] == "id" and node[1] in found and len(found) > 1:  # "MIT License", classifiers MIT and Apache:
            return render(choice), "classifier"  # the field names one of the licences on offer
        return render(_which_bsd(node, dist) if text.lower() in _PLAIN_BSD else node), "License"
    if found:
        return render(_which_bsd(choice, dist) if plain_bsd else choice), "classifier"
    first = text.splitlines()[0].strip().rstrip(".") if text else ""
    if (node := _as_expression(first)) is not None:
        return render(node), "License (first line of the text)"
    from_files = {(name, spdx) for name, body in _licence_files(dist) if (spdx := _licence_in(body))}
    if len({spdx for _, spdx in from_files}) == 1:  # several licences and no metadata saying how they combine
        name, spdx = sorted(from_files)[0]
        return spdx, f"license file {name}"
    return "", "none"


@dataclass(frozen=True)
class LicencePolicy:
    """Allow / review / deny patterns, what unknown means, per-package licence overrides and accepted exceptions."""

    allow: tuple[str, ...] = ()
    review: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    unknown: Literal["deny", "review"] = "deny"
    overrides: dict[str, str] = field(default_factory=dict)
    exceptions: dict[str, str] = field(default_factory=dict)

    def verdict(self, licence_id: str) -> Status:
        """Strictest list matching the id (with its exception first, then without); ``unknown`` if none does."""
        lists: tuple[tuple[Status, tuple[str, ...]], ...] = (
            ("denied", self.deny),
            ("review", self.review),
            ("allowed", self.allow),
        )
        if " WITH " in licence_id:  # only patterns that name an exception speak for "X WITH Y" itself
            for status, patterns in lists:
                if any(" with " in p.lower() and fnmatchcase(licence_id.lower(), p.lower()) for p in patterns):
                    return status
            licence_id = licence_id.split(" WITH ")[0]
        for status, patterns in lists:
            if any(fnmatchcase(licence_id.lower(), p.lower()) for p in patterns):
                return status
        return "unknown"

    def evaluate(self, node: Node) -> tuple[Status, str]:
        """(status, deciding id): OR takes the best option, AND the worst part."""
        kind, value = node
        if kind == "id":
            return self.verdict(value), value
        results = [self.evaluate(n) for n in value]
        rank = lambda r: STATUSES.index(r[0])  # noqa: E731
        return min(results, key=rank) if kind == "or" else max(results, key=rank)


def _string_table(doc: dict[str, Any], key: str, where: str) -> dict[str, str]:
    table = doc.get(key, {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise FormatError(f"{where}: [{key}] must map package names to strings")
    return {canonicalize_name(k): v for k, v in table.items()}


def parse_policy(text: str, where: str = "licence policy") -> LicencePolicy:
    """A policy from TOML text; unknown keys and wrong types are refused, so a typo cannot loosen it."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"{where} is not valid TOML ({exc})") from None
    if unknown_keys := sorted(set(doc) - {"allow", "review", "deny", "unknown", "overrides", "exceptions"}):
        raise FormatError(f"{where}: unknown keys {', '.join(unknown_keys)}")
    lists = {}
    for key in ("allow", "review", "deny"):
        value = doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise FormatError(f"{where}: '{key}' must be a list of SPDX ids or patterns")
        lists[key] = tuple(normalise_id(v) for v in value)
    if doc.get("unknown", "deny") not in ("deny", "review"):
        raise FormatError(f'{where}: \'unknown\' must be "deny" or "review"')
    overrides = _string_table(doc, "overrides", where)
    for expression in overrides.values():
        parse_expression(expression)
    return LicencePolicy(
        **lists,
        unknown=doc.get("unknown", "deny"),
        overrides=overrides,
        exceptions=_string_table(doc, "exceptions", where),
    )


def load_policy(path: Path | str | None = None) -> LicencePolicy:
    """The policy in ``path``, or the default one above."""
    if path is None:
        return parse_policy(DEFAULT_POLICY, "default licence policy")
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(
            f"licence policy {p} does not exist", hint="start from: modelshield deps licenses --show-policy"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"licence policy {p} is not UTF-8 text") from None
    return parse_policy(text, f"licence policy {p}")


@dataclass(frozen=True)
class LicenceResult:
    """One package's or artifact's licence and the policy's verdict on it."""

    name: str
    version: str
    kind: str
    licence: str
    source: str
    status: Status
    reason: str
    accepted: str = ""

    def fails(self, policy: LicencePolicy, fail_on: str) -> bool:
        """Denied fails; unknown fails when the policy says so; review fails only with ``fail_on="review"``."""
        if self.accepted:
            return False
        status = policy.unknown.replace("deny", "denied") if self.status == "unknown" else self.status
        return status == "denied" or (fail_on == "review" and status == "review")


@dataclass
class LicenceReport:
    policy: LicencePolicy
    results: list[LicenceResult]

    def failing(self, fail_on: str = "deny") -> list[LicenceResult]:
        return [r for r in self.results if r.fails(self.policy, fail_on)]

    def to_dict(self, fail_on: str = "deny") -> dict[str, Any]:
        return {"passed": not self.failing(fail_on), "fail_on": fail_on, "results": [asdict(r) for r in self.results]}


def judge(name: str, version: str, kind: str, licence: str, source: str, policy: LicencePolicy) -> LicenceResult:
    """The verdict on one licence expression (empty: no licence found)."""
    key = canonicalize_name(name)
    if key in policy.overrides:
        licence, source = policy.overrides[key], "policy override"
    accepted = policy.exceptions.get(key, "")
    if not licence:
        return LicenceResult(name, version, kind, "", source, "unknown", "no licence found", accepted)
    try:
        node = parse_expression(licence)
    except FormatError:
        return LicenceResult(name, version, kind, licence, source, "unknown", "not an SPDX expression", accepted)
    status, deciding = policy.evaluate(node)
    reason = f"{deciding} is not in the policy" if status == "unknown" else f"{deciding} is {status}"
    return LicenceResult(name, version, kind, render(node), source, status, reason, accepted)


def check_licences(
    policy: LicencePolicy,
    *,
    lock: Path | str | None = None,
    model_licences: Sequence[tuple[str, str]] = (),
    environment: bool = True,
) -> LicenceReport:
    """Judge the installed packages, the artifacts of a provenance lock, and licences given for models by hand."""
    results = []
    if environment:
        for key, dist in sorted(installed_distributions().items()):
            licence, source = detect_licence(dist)
            results.append(judge(metadata_field(dist, "Name") or key, dist.version, "library", licence, source, policy))
    if lock is not None:
        for name, artifact in load_lock(lock).items():
            results.append(
                judge(name, artifact.digest[:19], artifact.kind, artifact.licence, "provenance lock", policy)
            )
    for name, licence in model_licences:
        results.append(judge(name, "", "model", licence, "--model-license", policy))
    return LicenceReport(policy, results)
