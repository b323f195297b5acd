"""Compile OCSF event classes and objects from the schema's *source* form, the way the OCSF server does.

The source is not a JSON Schema: classes ``extends`` a parent class, attribute sets are pulled in with
``$include`` (profiles annotate what they add with their name), an attribute's type, array-ness and base enum
come from ``dictionary.json``, primitive types chain (``timestamp_t`` → ``long_t``) and carry regex, range and
length limits, and objects nest by name. ``compile_class("api_activity", profiles={"ai_operation"})`` resolves
all of that into flat ``Spec`` tables the validator walks. No OCSF server or compiled JSON Schema ships for the
1.8 ``ai_operation`` profile, so this compiler is what lets us check events against it (``pydantic-ocsf``
stops at 1.7). The schema files needed for modelshield's two classes are vendored in ``data/ocsf``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelshield.core.errors import FormatError, InputError

DEFAULT_ROOT = Path(__file__).with_name("data") / "ocsf"
PRIMITIVE_ROOTS = {"string_t", "integer_t", "long_t", "float_t", "boolean_t", "json_t"}


@dataclass(frozen=True)
class Attribute:
    """One attribute of a compiled class or object."""

    name: str
    type: str  # a primitive type (``*_t``), an object name, or "object" (any JSON object)
    is_array: bool
    requirement: str  # "required", "recommended" or "optional"
    enum: Mapping[str, str] | None = None  # id (as a string) → caption
    sibling: str | None = None  # the attribute holding the enum's caption (activity_id → activity_name)
    deprecated: bool = False


@dataclass(frozen=True)
class Spec:
    """A compiled class or object: its attributes with the requested profiles applied, and its constraints."""

    name: str
    caption: str
    attributes: Mapping[str, Attribute]
    constraints: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    uid: int | None = None  # classes: class_uid
    category_uid: int | None = None
    category_name: str = ""
    profiles: tuple[str, ...] = ()  # the profiles the class declares

    @functools.cached_property
    def required(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes.values() if a.requirement == "required")

    @functools.cached_property
    def recommended(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes.values() if a.requirement == "recommended")

    @functools.cached_property
    def with_sibling(self) -> tuple[Attribute, ...]:
        """Enum attributes whose caption travels in a sibling (activity_id → activity_name)."""
        return tuple(a for a in self.attributes.values() if a.enum and a.sibling)


@dataclass(frozen=True)
class PrimitiveType:
    """A dictionary type resolved to its JSON root type, with every limit collected along the chain."""

    name: str
    root: str
    regex: str | None = None
    max_len: int | None = None
    range: tuple[float, float] | None = None
    values: tuple[Any, ...] | None = None


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: ``over`` wins, nested objects merge key by key (how OCSF overlays a child on its parent)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class OcsfSchema:
    """The OCSF schema source under ``root`` (default: the copy vendored in this package)."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        if not (self.root / "dictionary.json").is_file():
            raise FormatError(f"{self.root} is not an OCSF schema source (no dictionary.json)")
        self.read_files: set[Path] = set()  # every file compiling has needed (what vendoring must copy)
        self.dictionary = self._load("dictionary.json")
        self.version = str(self._load("version.json")["version"])
        self._categories = self._load("categories.json")["attributes"]
        self._events = self._index("events")
        self._objects = self._index("objects")
        self._class_by_uid: dict[int, str] | None = None

    def _load(self, rel: str | Path) -> dict[str, Any]:
        path = self.root / rel
        self.read_files.add(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FormatError(f"OCSF schema file {rel} is missing from {self.root}") from None
        if not isinstance(data, dict):
            raise FormatError(f"OCSF schema file {rel} is not a JSON object")
        return data

    def _index(self, folder: str) -> dict[str, Path]:
        """name → file; the name is the file stem (OCSF names its files after the class or object)."""
        return {p.stem: p.relative_to(self.root) for p in sorted((self.root / folder).rglob("*.json"))}

    @functools.cached_property
    def _profile_names(self) -> frozenset[str]:
        return frozenset(p.stem for p in (self.root / "profiles").glob("*.json"))

    def profile_names(self) -> frozenset[str]:
        """Every profile the schema defines (a validator checks ``metadata.profiles`` against these)."""
        return self._profile_names

    # -- source resolution -------------------------------------------------------------------------------
    def _own_attributes(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """A file's attributes with its ``$include`` files merged under its own definitions; attributes a
        profile brings are tagged with the profile's name unless the includer says otherwise."""
        attrs = dict(raw.get("attributes", {}))
        included: dict[str, Any] = {}
        for rel in attrs.pop("$include", []):
            inc = self._load(rel)
            inc_attrs = self._own_attributes(inc)
            if inc.get("meta") == "profile":
                inc_attrs = {k: {"profile": inc["name"], **v} for k, v in inc_attrs.items()}
            included = _merge(included, inc_attrs)
        return _merge(included, attrs)

    def _flatten(self, kind: str, name: str) -> dict[str, Any]:
        """The raw definition with its ``extends`` chain overlaid, parent first."""
        index = self._events if kind == "events" else self._objects
        if name not in index:
            raise InputError(f"OCSF {kind[:-1]} {name!r} is not in the schema at {self.root}")
        raw = self._load(index[name])
        own = {k: v for k, v in raw.items() if k != "attributes"}
        own["attributes"] = self._own_attributes(raw)
        parent_name = raw.get("extends")
        if not parent_name or parent_name == name:
            return own
        parent = self._flatten(kind, parent_name)
        flat = {**{k: v for k, v in parent.items() if k not in ("uid", "name", "caption", "profiles")}, **own}
        flat["attributes"] = _merge(parent["attributes"], own["attributes"])
        flat["profiles"] = sorted({*parent.get("profiles", []), *raw.get("profiles", [])})
        flat["constraints"] = raw.get("constraints", parent.get("constraints", {}))
        return flat

    def _compile(self, flat: Mapping[str, Any], profiles: frozenset[str]) -> dict[str, Attribute]:
        dict_attrs = self.dictionary["attributes"]
        out: dict[str, Attribute] = {}
        for name, local in flat["attributes"].items():
            if local.get("profile") and local["profile"] not in profiles:
                continue
            if name not in dict_attrs:
                raise FormatError(f"OCSF attribute {name!r} of {flat['name']!r} is not in the dictionary")
            spec = _merge(dict_attrs[name], local)
            enum = spec.get("enum")
            out[name] = Attribute(
                name=name,
                type=str(spec.get("type", "string_t")),
                is_array=bool(spec.get("is_array", False)),
                requirement=str(spec.get("requirement", "optional")),
                enum={str(k): str(v.get("caption", k)) for k, v in enum.items()} if enum else None,
                sibling=spec.get("sibling"),
                deprecated="@deprecated" in spec,
            )
        if "datetime" in profiles:  # the profile adds a datetime_t twin beside every timestamp
            for attr in list(out.values()):
                if attr.type == "timestamp_t" and not attr.is_array:
                    out[f"{attr.name}_dt"] = Attribute(f"{attr.name}_dt", "datetime_t", False, "optional")
        return out

    # -- public ------------------------------------------------------------------------------------------
    @functools.cache  # noqa: B019 - one schema object lives for the process; compiled specs are immutable
    def compile_class(self, name: str, profiles: frozenset[str] = frozenset()) -> Spec:
        """The event class ``name`` (e.g. "api_activity") with ``profiles`` applied."""
        flat = self._flatten("events", name)
        if "uid" not in flat:
            raise InputError(f"OCSF class {name!r} is abstract (no uid); pick a concrete class")
        category = flat.get("category", "other")
        cat_uid = int(self._categories.get(category, {}).get("uid", 0))
        caption = str(flat.get("caption", name))
        cat_caption = str(self._categories.get(category, {}).get("caption", ""))
        attributes = self._compile(flat, profiles)
        # As the OCSF server does: a class's class_uid and category_uid each have exactly one valid value.
        class_uid = cat_uid * 1000 + int(flat["uid"])
        for attr, uid, cap in (("class_uid", class_uid, caption), ("category_uid", cat_uid, cat_caption)):
            attributes[attr] = dataclasses.replace(attributes[attr], enum={str(uid): cap})
        activities = attributes["activity_id"].enum or {}
        attributes["type_uid"] = dataclasses.replace(
            attributes["type_uid"],
            enum={str(class_uid * 100 + int(k)): f"{caption}: {v}" for k, v in activities.items()},
        )
        return Spec(
            name=name,
            caption=caption,
            attributes=attributes,
            constraints={k: tuple(v) for k, v in flat.get("constraints", {}).items()},
            uid=cat_uid * 1000 + int(flat["uid"]),
            category_uid=cat_uid,
            category_name=cat_caption,
            profiles=tuple(flat.get("profiles", [])),
        )

    @functools.cache  # noqa: B019
    def compile_object(self, name: str, profiles: frozenset[str] = frozenset()) -> Spec:
        """The object ``name`` (e.g. "ai_model") with ``profiles`` applied."""
        flat = self._flatten("objects", name)
        attributes = self._compile(flat, profiles)
        if name == "observable":
            attributes["type_id"] = dataclasses.replace(
                attributes["type_id"], enum={**self._observable_ids(), **(attributes["type_id"].enum or {})}
            )
        return Spec(
            name=name,
            caption=str(flat.get("caption", name)),
            attributes=attributes,
            constraints={k: tuple(v) for k, v in flat.get("constraints", {}).items()},
        )

    def _observable_ids(self) -> dict[str, str]:
        """observable.type_id's values beyond the dictionary's own: every observable id a dictionary type or
        attribute, an object, or an attribute of a class or object declares (how OCSF builds that enum). From
        the vendored subset, objects outside it add no ids: events of our classes cannot hold those objects."""
        ids: dict[str, str] = {}
        seen = set(self.read_files)  # scanning every file is not a dependency worth vendoring (see ``closure``)
        for table in (self.dictionary["types"]["attributes"], self.dictionary["attributes"]):
            ids.update({str(d["observable"]): str(k) for k, d in table.items() if "observable" in d})
        for rel in [*self._objects.values(), *self._events.values()]:
            raw = self._load(rel)
            if "observable" in raw:
                ids.setdefault(str(raw["observable"]), str(raw.get("name")))
            for key, attr in raw.get("attributes", {}).items():
                if isinstance(attr, dict) and "observable" in attr:
                    ids.setdefault(str(attr["observable"]), f"{raw.get('name')}.{key}")
        self.read_files = seen
        return ids

    def is_object(self, type_name: str) -> bool:
        return type_name in self._objects

    @functools.cache  # noqa: B019
    def primitive(self, type_name: str) -> PrimitiveType:
        """A dictionary type followed down to its JSON root, collecting regex, max_len, range and values."""
        types = self.dictionary["types"]["attributes"]
        name, regex, max_len, rng, values = type_name, None, None, None, None
        seen = set()
        while type_name not in PRIMITIVE_ROOTS:
            if type_name not in types or type_name in seen:
                raise FormatError(f"OCSF type {name!r} does not resolve to a primitive type")
            seen.add(type_name)
            t = types[type_name]
            regex = regex or t.get("regex")
            max_len = max_len or t.get("max_len")
            rng = rng or (tuple(t["range"]) if "range" in t else None)
            values = values or (tuple(t["values"]) if "values" in t else None)
            type_name = str(t.get("type", "string_t"))
        t = types.get(type_name, {})
        values = values or (tuple(t["values"]) if "values" in t else None)
        return PrimitiveType(name, type_name, regex, max_len, rng, values)

    def class_name(self, class_uid: int) -> str:
        """The class whose uid is ``class_uid`` (6003 → "api_activity")."""
        if self._class_by_uid is None:
            table: dict[int, str] = {}
            for name in self._events:
                raw = self._load(self._events[name])
                if "uid" in raw:
                    category = self._flatten("events", name).get("category", "other")
                    table[int(self._categories.get(category, {}).get("uid", 0)) * 1000 + int(raw["uid"])] = name
            self._class_by_uid = table
        if class_uid not in self._class_by_uid:
            raise InputError(f"class_uid {class_uid} is not a class in the vendored OCSF schema")
        return self._class_by_uid[class_uid]


@functools.cache
def default_schema() -> OcsfSchema:
    """The vendored schema, loaded once."""
    return OcsfSchema()


def closure(schema: OcsfSchema, classes: Iterable[str]) -> set[Path]:
    """Every source file compiling ``classes`` with every profile needs (what ``data/ocsf`` vendors)."""
    profiles = schema.profile_names()
    todo = [("class", c) for c in classes]
    done: set[tuple[str, str]] = set()
    while todo:
        kind, name = todo.pop()
        if (kind, name) in done:
            continue
        done.add((kind, name))
        spec = schema.compile_class(name, profiles) if kind == "class" else schema.compile_object(name, profiles)
        todo += [("object", a.type) for a in spec.attributes.values() if schema.is_object(a.type)]
    return set(schema.read_files)
