"""The rule library as data: each rule is a declarative condition over elements or flows, never code.

A condition is a small matcher (no ``eval()``, no expressions): every key present must hold, so a condition is
an AND of simple tests, and OR is two rules. An element matcher tests the kind, typed attributes (equality), the
classification (at least a level), the trust boundary (shares one with an element of some kind) and the flows in
and out of it; a flow matcher tests its own attributes, whether it crosses a boundary, and its two ends. The
library is checked when loaded: attributes must exist on the kinds named, values must have the attribute's type,
and ATLAS ids must be in the vendored release.

The classic rules follow STRIDE-per-element and per-interaction (Shostack, *Threat Modeling: Designing for
Security*, Wiley 2014, ch. 3): external entities face spoofing and repudiation, processes all six categories,
data flows and stores tampering, disclosure and denial of service (stores repudiation too, when they hold logs).
The ML rules follow the ATLAS techniques they cite.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelshield.core.errors import InputError, MissingFileError, validation_line
from modelshield.core.files import load_yaml
from modelshield.core.severity import Severity
from modelshield.threat.atlas import load_atlas
from modelshield.threat.evidence import EvidenceKind
from modelshield.threat.system import KINDS, Classification, Flow, System, kind_attributes

RULES_RESOURCE = ("modelshield.threat", "data/rules.yaml")
STRIDE = (
    "spoofing",
    "tampering",
    "repudiation",
    "information_disclosure",
    "denial_of_service",
    "elevation_of_privilege",
)
OWASP_ML_2023 = tuple(f"ML{i:02d}" for i in range(1, 11))

Kind = Literal[
    "actor",
    "labelling_vendor",
    "third_party_model",
    "process",
    "training_job",
    "inference_endpoint",
    "data_store",
    "feature_store",
    "model_registry",
]
Stride = Literal[
    "spoofing", "tampering", "repudiation", "information_disclosure", "denial_of_service", "elevation_of_privilege"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ElementMatch(_Strict):
    """Holds for an element when every test given holds."""

    kind: list[Kind] | None = None
    attributes: dict[str, bool | str] = Field(default_factory=dict)
    classification_at_least: Classification | None = None
    sensitivity_at_least: Classification | None = None  # the element's or any of its features' classification
    shares_boundary_with: list[Kind] | None = None
    incoming: FlowMatch | None = None
    outgoing: FlowMatch | None = None

    def matches(self, system: System, element_id: str) -> bool:
        element = system.element(element_id)
        if self.kind is not None and element.kind not in self.kind:
            return False
        for name, want in self.attributes.items():
            if getattr(element, name, _MISSING) != want:
                return False
        if self.classification_at_least and element.classification.rank < self.classification_at_least.rank:
            return False
        if self.sensitivity_at_least and element.sensitivity.rank < self.sensitivity_at_least.rank:
            return False
        if self.shares_boundary_with is not None:
            home = system.boundary_of(element_id)
            peers = (e for e in system.elements if e.id != element_id and e.kind in self.shares_boundary_with)
            if home is None or not any(system.boundary_of(e.id) == home for e in peers):
                return False
        if self.incoming and not any(
            self.incoming.matches(system, f) for f in system.flows if f.destination == element_id
        ):
            return False
        return not self.outgoing or any(
            self.outgoing.matches(system, f) for f in system.flows if f.source == element_id
        )

    def check(self, where: str) -> None:
        """Refuse attributes no named kind has, or values of the wrong type."""
        kinds: list[str] = list(self.kind) if self.kind else list(KINDS)
        for name, want in self.attributes.items():
            defaults = [kind_attributes(k)[name] for k in kinds if name in kind_attributes(k)]
            if not defaults:
                raise InputError(f"{where}: no element kind among {kinds} has an attribute {name!r}")
            if isinstance(defaults[0], bool) != isinstance(want, bool):
                raise InputError(f"{where}: attribute {name!r} takes a {type(defaults[0]).__name__}, not {want!r}")
        for sub, flow in (("incoming", self.incoming), ("outgoing", self.outgoing)):
            if flow is not None:
                flow.check(f"{where}.{sub}")


class FlowMatch(_Strict):
    """Holds for a flow when every test given holds."""

    crosses_boundary: bool | None = None
    authenticated: bool | None = None
    encrypted: bool | None = None
    classification_at_least: Classification | None = None
    protocol: list[str] | None = None
    source: ElementMatch | None = None
    destination: ElementMatch | None = None

    def matches(self, system: System, flow: Flow) -> bool:
        for name in ("authenticated", "encrypted"):
            want = getattr(self, name)
            if want is not None and getattr(flow, name) != want:
                return False
        if self.crosses_boundary is not None and system.crosses_boundary(flow) != self.crosses_boundary:
            return False
        if self.classification_at_least and flow.classification.rank < self.classification_at_least.rank:
            return False
        if self.protocol is not None and flow.protocol.lower() not in {p.lower() for p in self.protocol}:
            return False
        if self.source and not self.source.matches(system, flow.source):
            return False
        return not self.destination or self.destination.matches(system, flow.destination)

    def check(self, where: str) -> None:
        for end in ("source", "destination"):
            match = getattr(self, end)
            if match is not None:
                match.check(f"{where}.{end}")


_MISSING = object()
ElementMatch.model_rebuild()


class Mitigation(_Strict):
    """What to do about a threat: an ATLAS mitigation, the modelshield control that implements it, and how."""

    atlas: str | None = None
    control: str | None = None
    action: str


class SeverityCase(_Strict):
    """A severity that replaces the rule's own when its condition also holds (first match wins): how bad model
    inversion is depends on what the endpoint returns and how sensitive the features are."""

    when: dict[str, Any]
    severity: Severity
    because: str


class Rule(_Strict):
    """One threat: when it applies (``applies_to`` + ``when``), what it is, how bad, what mitigates it, and which
    kinds of evidence (``modelshield.threat.evidence``) test the mitigation."""

    id: str = Field(pattern=r"^[A-Z][A-Z0-9-]+$")
    title: str
    description: str
    applies_to: Literal["element", "flow"]
    stride: list[Stride] = Field(min_length=1)
    atlas: list[str] = Field(default_factory=list)
    owasp: list[str] = Field(default_factory=list)
    severity: Severity
    when: dict[str, Any]
    severity_when: list[SeverityCase] = Field(default_factory=list)
    mitigations: list[Mitigation] = Field(min_length=1)
    evidence: list[EvidenceKind] = Field(default_factory=list)

    @field_validator("owasp")
    @classmethod
    def _owasp(cls, v: list[str]) -> list[str]:
        unknown = [x for x in v if x not in OWASP_ML_2023]
        if unknown:
            raise ValueError(f"{unknown} are not OWASP ML Top 10 (2023) ids ML01..ML10")
        return v

    def _match(self, when: dict[str, Any]) -> ElementMatch | FlowMatch:
        model = ElementMatch if self.applies_to == "element" else FlowMatch
        return model.model_validate(when)

    @functools.cached_property
    def condition(self) -> ElementMatch | FlowMatch:
        return self._match(self.when)

    @functools.cached_property
    def severity_conditions(self) -> list[tuple[ElementMatch | FlowMatch, SeverityCase]]:
        return [(self._match(case.when), case) for case in self.severity_when]

    def severity_for(self, system: System, target: str) -> tuple[Severity, str]:
        """The severity of this rule's finding on ``target`` and why, when a ``severity_when`` case decided it."""
        for cond, case in self.severity_conditions:
            if _holds(cond, system, target):
                return case.severity, case.because
        return self.severity, ""

    def targets(self, system: System) -> list[str]:
        """The ids of the elements or flows this rule holds for, in the system's order."""
        ids = [e.id for e in system.elements] if self.applies_to == "element" else [f.id for f in system.flows]
        return [t for t in ids if _holds(self.condition, system, t)]


def _holds(cond: ElementMatch | FlowMatch, system: System, target: str) -> bool:
    if isinstance(cond, ElementMatch):
        return cond.matches(system, target)
    return cond.matches(system, next(f for f in system.flows if f.id == target))


class RuleLibrary(_Strict):
    """A rules file: the OWASP ML Top 10 names it cites and its rules."""

    owasp: dict[str, str] = Field(default_factory=dict)
    rules: list[Rule]


def _check(library: RuleLibrary, source: str) -> RuleLibrary:
    atlas = load_atlas()
    seen: set[str] = set()
    for rule in library.rules:
        where = f"{source}: rule {rule.id}"
        if rule.id in seen:
            raise InputError(f"{where}: duplicate rule id")
        seen.add(rule.id)
        try:
            condition = rule.condition
        except ValidationError as exc:
            raise InputError(f"{where}: when.{validation_line(exc)}") from None
        condition.check(f"{where}: when")
        for i, case in enumerate(rule.severity_when):
            try:
                rule._match(case.when).check(f"{where}: severity_when[{i}].when")
            except ValidationError as exc:
                raise InputError(f"{where}: severity_when[{i}].when.{validation_line(exc)}") from None
        for tid in rule.atlas:
            if tid not in atlas.techniques:
                raise InputError(f"{where}: {tid!r} is not a technique in ATLAS {atlas.version}")
        for m in rule.mitigations:
            if m.atlas is not None and m.atlas not in atlas.mitigations:
                raise InputError(f"{where}: {m.atlas!r} is not a mitigation in ATLAS {atlas.version}")
    return library


def parse_rules(data: Any, source: str) -> RuleLibrary:
    """A checked rule library from parsed YAML; any problem is one ``InputError`` line."""
    try:
        library = RuleLibrary.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{source}: {validation_line(exc)}") from None
    return _check(library, source)


@functools.cache
def builtin_rules() -> RuleLibrary:
    """The rules shipped with modelshield."""
    package, name = RULES_RESOURCE
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    return parse_rules(yaml.safe_load(text), "built-in rules")


def load_rules(path: Path) -> RuleLibrary:
    """A user's extra rules file (same format as the built-in one)."""
    if not path.is_file():
        raise MissingFileError(f"no rules file at {path}")
    return parse_rules(load_yaml(path), str(path))


__all__ = [
    "OWASP_ML_2023",
    "STRIDE",
    "ElementMatch",
    "FlowMatch",
    "Mitigation",
    "Rule",
    "RuleLibrary",
    "SeverityCase",
    "builtin_rules",
    "load_rules",
    "parse_rules",
]
