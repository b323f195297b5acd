"""The system under review as typed data: elements, data flows and trust boundaries, read from YAML.

Every element kind is its own pydantic class with its own security attributes, and unknown attributes are
refused, so a typo (``signed_model`` for ``signed_models``) is an error rather than a control silently
assumed absent. Controls default to *absent* (``False``): a threat model that forgets to declare a control
reports the threat, it does not hide it.

Each element sits directly in at most one trust boundary, and boundaries may nest (``boundaries:`` inside a
boundary). A flow *crosses* a boundary when some boundary encloses one of its ends and not the other.
"""

from __future__ import annotations

import functools
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelshield.core.errors import InputError, MissingFileError, validation_line
from modelshield.core.files import load_yaml
from modelshield.core.severity import RankedEnum
from modelshield.threat.evidence import EvidenceSpec

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Classification(RankedEnum):
    """How sensitive the data an element holds or a flow carries is, from least to most."""

    public = "public"
    internal = "internal"
    confidential = "confidential"
    restricted = "restricted"


class Shape(str, Enum):
    """The classic DFD roles, which decide how an element is drawn and which STRIDE categories apply."""

    external = "external"
    process = "process"
    store = "store"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Element(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    description: str = ""
    classification: Classification = Classification.internal

    shape: ClassVar[Shape] = Shape.process  # the DFD role of the kind, not something YAML sets

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def sensitivity(self) -> Classification:
        """The most sensitive of the element's own classification and its features' (endpoints list features)."""
        levels = [self.classification, *getattr(self, "features", {}).values()]
        return max(levels, key=lambda c: c.rank)


class Actor(_Element):
    """A person or outside system that sends or receives data."""

    kind: Literal["actor"] = "actor"
    shape: ClassVar[Shape] = Shape.external
    privileged: bool = False
    mfa: bool = False


class LabellingVendor(_Element):
    """An outside workforce that labels training data: a poisoning path the model owner does not control."""

    kind: Literal["labelling_vendor"] = "labelling_vendor"
    shape: ClassVar[Shape] = Shape.external
    privileged: bool = False
    mfa: bool = False


class ThirdPartyModel(_Element):
    """Pretrained weights from outside (a model hub, a vendor): code and behaviour the team did not write."""

    kind: Literal["third_party_model"] = "third_party_model"
    shape: ClassVar[Shape] = Shape.external
    source: str = ""
    format: str = ""
    scanned: bool = False
    verified: bool = False


class Process(_Element):
    """Code that transforms data (an ingestion job, an API)."""

    kind: Literal["process"] = "process"
    validates_input: bool = False
    audit_logged: bool = False


class TrainingJob(_Element):
    """Where data becomes a model."""

    kind: Literal["training_job"] = "training_job"
    validates_input: bool = False
    audit_logged: bool = False
    differential_privacy: bool = False
    robust_training: bool = False


class InferenceEndpoint(_Element):
    """A served model; ``returns`` is what a caller sees: full ``scores`` or only ``labels``."""

    kind: Literal["inference_endpoint"] = "inference_endpoint"
    returns: Literal["scores", "labels"] = "scores"
    features: dict[str, Classification] = Field(
        default_factory=dict, description="the model's input features and how sensitive each is (model inversion)"
    )
    rate_limited: bool = False
    robustness_assessed: bool = False
    verifies_model_signature: bool = False
    audit_logged: bool = False


class DataStore(_Element):
    """Data at rest (a bucket, a database)."""

    kind: Literal["data_store"] = "data_store"
    shape: ClassVar[Shape] = Shape.store
    encrypted_at_rest: bool = False
    access_controlled: bool = False
    audit_logged: bool = False
    validates_input: bool = False


class FeatureStore(_Element):
    """Features served to training and inference."""

    kind: Literal["feature_store"] = "feature_store"
    shape: ClassVar[Shape] = Shape.store
    encrypted_at_rest: bool = False
    access_controlled: bool = False
    audit_logged: bool = False
    validates_input: bool = False


class ModelRegistry(_Element):
    """Where trained models wait to be deployed."""

    kind: Literal["model_registry"] = "model_registry"
    shape: ClassVar[Shape] = Shape.store
    encrypted_at_rest: bool = False
    access_controlled: bool = False
    audit_logged: bool = False
    signed_models: bool = False


ELEMENT_CLASSES: tuple[type[_Element], ...] = (
    Actor,
    LabellingVendor,
    ThirdPartyModel,
    Process,
    TrainingJob,
    InferenceEndpoint,
    DataStore,
    FeatureStore,
    ModelRegistry,
)
KINDS: dict[str, type[_Element]] = {cls.model_fields["kind"].default: cls for cls in ELEMENT_CLASSES}
Element = Annotated[
    Actor
    | LabellingVendor
    | ThirdPartyModel
    | Process
    | TrainingJob
    | InferenceEndpoint
    | DataStore
    | FeatureStore
    | ModelRegistry,
    Field(discriminator="kind"),
]
_NOT_ATTRIBUTES = {"id", "name", "description", "kind", "features"}


def kind_attributes(kind: str) -> dict[str, Any]:
    """The security attributes an element kind declares, each with its default (classification included)."""
    fields = KINDS[kind].model_fields
    return {name: f.default for name, f in fields.items() if name not in _NOT_ATTRIBUTES}


class Flow(_Strict):
    """Data moving from one element to another."""

    id: str = Field(pattern=ID_PATTERN)
    source: str
    destination: str
    name: str = ""
    data: str = ""
    protocol: str = ""
    authenticated: bool = False
    encrypted: bool = False
    classification: Classification = Classification.internal

    @property
    def label(self) -> str:
        return self.name or self.data or self.id


class Boundary(_Strict):
    """A trust boundary: the elements inside it trust each other more than anything outside. ``boundaries``
    nests others inside it (a cloud account inside the corporate network)."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    elements: list[str] = Field(default_factory=list)
    boundaries: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name or self.id


class System(_Strict):
    """A whole system: call ``check_references`` (``load_system`` does) before analysing one built in Python."""

    name: str = "system"
    description: str = ""
    elements: list[Element] = Field(default_factory=list)
    flows: list[Flow] = Field(default_factory=list)
    boundaries: list[Boundary] = Field(default_factory=list)
    evidence: list[EvidenceSpec] = Field(
        default_factory=list, description="results of the checks that test the threats (modelshield.threat.evidence)"
    )

    def check_references(self) -> System:
        """Refuse duplicate ids, flows or boundaries naming a missing element, and an element in two boundaries."""
        seen: dict[str, str] = {}
        for what, items in (("element", self.elements), ("flow", self.flows), ("boundary", self.boundaries)):
            for item in items:
                if item.id in seen:
                    raise InputError(f"duplicate id {item.id!r} (a {seen[item.id]} and a {what})")
                seen[item.id] = what
        elements = {e.id for e in self.elements}
        for flow in self.flows:
            for end in ("source", "destination"):
                ref = getattr(flow, end)
                if ref not in elements:
                    raise InputError(f"flow {flow.id!r} names a missing element {ref!r} as its {end}")
        boundaries = {b.id for b in self.boundaries}
        owner: dict[str, str] = {}
        parent: dict[str, str] = {}
        for boundary in self.boundaries:
            for ref in boundary.elements:
                if ref not in elements:
                    raise InputError(f"boundary {boundary.id!r} names a missing element {ref!r}")
                if ref in owner:
                    raise InputError(f"element {ref!r} is in two boundaries ({owner[ref]!r} and {boundary.id!r})")
                owner[ref] = boundary.id
            for ref in boundary.boundaries:
                if ref not in boundaries:
                    raise InputError(f"boundary {boundary.id!r} names a missing boundary {ref!r}")
                if ref in parent:
                    raise InputError(f"boundary {ref!r} is inside two boundaries ({parent[ref]!r} and {boundary.id!r})")
                parent[ref] = boundary.id
        for i, spec in enumerate(self.evidence):
            if seen.get(spec.element) not in ("element", "flow"):
                raise InputError(f"evidence[{i}] names a missing element or flow {spec.element!r}")
            if spec.kind == "verify" and spec.public_key is None:
                raise InputError(f"evidence[{i}] (verify on {spec.element!r}) needs public_key: the signer's PEM")
        for start in boundaries:
            node, path = start, [start]
            while node in parent:
                node = parent[node]
                if node == start:
                    raise InputError(f"boundaries enclose each other in a cycle: {' > '.join([*path, node])}")
                path.append(node)
        return self

    @functools.cached_property
    def _by_id(self) -> dict[str, Element]:
        return {e.id: e for e in self.elements}

    @functools.cached_property
    def _home(self) -> dict[str, str]:
        return {ref: b.id for b in self.boundaries for ref in b.elements}

    @functools.cached_property
    def _parent(self) -> dict[str, str]:
        return {ref: b.id for b in self.boundaries for ref in b.boundaries}

    def enclosing(self, element_id: str) -> tuple[str, ...]:
        """The boundaries around an element, innermost first."""
        chain: list[str] = []
        node = self._home.get(element_id)
        while node is not None:
            chain.append(node)
            node = self._parent.get(node)
        return tuple(chain)

    def element(self, element_id: str) -> Element:
        return self._by_id[element_id]

    def boundary_of(self, element_id: str) -> str | None:
        """The innermost trust boundary an element sits in, or None when it is in none."""
        return self._home.get(element_id)

    def crosses_boundary(self, flow: Flow) -> bool:
        """True when some boundary encloses one end of the flow and not the other."""
        return set(self.enclosing(flow.source)) != set(self.enclosing(flow.destination))


def _where(loc: tuple[str | int, ...], data: Any) -> str:
    """A pydantic error location as the user wrote it: ``elements[2] (id 'ingest').validates_input``."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            item_id = node[key].get("id") if isinstance(node, list) and isinstance(node[key], dict) else None
            parts[-1] += f"[{key}]" + (f" ({item_id!r})" if item_id else "")
            node = node[key] if isinstance(node, list) else None
        elif key in KINDS and not (isinstance(node, dict) and key in node):
            continue  # the discriminated union's tag, not a key the user wrote
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts)


def _one_line(exc: ValidationError, data: Any) -> str:
    err = exc.errors()[0]
    where = _where(tuple(err["loc"]), data)
    if err["type"] == "union_tag_invalid":
        got = err["input"].get("kind") if isinstance(err["input"], dict) else err["input"]
        return f"{where}: unknown element kind {got!r} (known: {', '.join(KINDS)})"
    if err["type"] == "union_tag_not_found":
        return f"{where}: an element needs a kind (one of: {', '.join(KINDS)})"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    return validation_line(exc, where)


def parse_system(data: Any, source: str = "system") -> System:
    """A checked ``System`` from parsed YAML/JSON data; any problem is one ``InputError`` line naming where."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: a system description is a mapping with elements, flows and boundaries")
    try:
        system = System.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{source}: {_one_line(exc, data)}") from None
    try:
        return system.check_references()
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None


def load_system(path: Path) -> System:
    """Read and check a YAML system description."""
    if not path.is_file():
        raise MissingFileError(f"no system description at {path}")
    return parse_system(load_yaml(path), str(path))


__all__ = [
    "KINDS",
    "Actor",
    "Boundary",
    "Classification",
    "DataStore",
    "Element",
    "FeatureStore",
    "Flow",
    "InferenceEndpoint",
    "LabellingVendor",
    "ModelRegistry",
    "Process",
    "Shape",
    "System",
    "ThirdPartyModel",
    "TrainingJob",
    "kind_attributes",
    "load_system",
    "parse_system",
]
