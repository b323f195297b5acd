"""Check an OCSF event against the compiled schema: the class from ``class_uid``, the profiles from
``metadata.profiles``, then every attribute down the object tree.

Errors (the event is not valid OCSF): a required attribute missing, an attribute the class or object does
not have, a value of the wrong JSON type, outside its type's regex, length or range, an enum id the attribute
does not define, a broken ``at_least_one``/``just_one`` constraint, a ``type_uid``/``category_uid`` that does
not follow from the class, an unknown profile. Warnings (valid, but worth a look): a recommended attribute
missing, an enum caption that differs from its id's caption, a deprecated attribute. This is the rule set of
the OCSF server's validator, run locally and offline.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modelshield.core.errors import InputError
from modelshield.monitor.siem.schema import Attribute, OcsfSchema, Spec, default_schema

_TYPE_OK: dict[str, Callable[[Any], bool]] = {
    "string_t": lambda v: isinstance(v, str),
    "integer_t": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "long_t": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float_t": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean_t": lambda v: isinstance(v, bool),
}
_INT_BOUNDS = {"integer_t": (-(2**31), 2**31 - 1), "long_t": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True)
class Problem:
    """One finding about an event: where (a dotted path such as ``ai_model.ai_provider``) and what."""

    path: str
    message: str
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.path or '<event>'}: {self.message}"


class OcsfValidationError(InputError):
    """An event is not valid OCSF; ``problems`` holds every error found."""

    hint = "fix the attribute named, or run `modelshield siem validate` on the file for every problem"

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems[:5]) + (" ..." if len(problems) > 5 else ""))
        self.problems = problems


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Walker:
    def __init__(self, schema: OcsfSchema, profiles: frozenset[str], warnings: bool) -> None:
        self.schema = schema
        self.profiles = profiles
        self.warnings = warnings
        self.problems: list[Problem] = []

    def add(self, path: str, message: str, level: Literal["error", "warning"] = "error") -> None:
        self.problems.append(Problem(path, message, level))

    def spec(self, data: Mapping[str, Any], spec: Spec, path: str) -> None:
        for name in spec.required:
            if data.get(name) is None:
                self.add(_join(path, name), f"required attribute missing from {spec.name}")
        if self.warnings:
            for name in spec.recommended:
                if data.get(name) is None:
                    self.add(_join(path, name), f"recommended attribute missing from {spec.name}", "warning")
        for name, value in data.items():
            found = spec.attributes.get(name)
            if found is None:
                where = _join(path, name)
                self.add(where, f"{spec.name} has no attribute {name!r} (with profiles {sorted(self.profiles)})")
                continue
            if found.deprecated and self.warnings:
                self.add(_join(path, name), "deprecated attribute", "warning")
            if value is not None:
                self.value(value, found, _join(path, name))
        if self.warnings:
            for attr in spec.with_sibling:
                value, label = data.get(attr.name), data.get(attr.sibling or "")
                caption = attr.enum.get(str(value)) if attr.enum and isinstance(value, int) else None
                if caption and value != 99 and isinstance(label, str) and label != caption:
                    where = _join(path, attr.sibling or "")
                    self.add(where, f"is {label!r}, the caption of {attr.name}={value} is {caption!r}", "warning")
        present = {k for k, v in data.items() if v is not None}
        if spec.constraints.get("at_least_one") and not present & set(spec.constraints["at_least_one"]):
            self.add(path, f"{spec.name} needs at least one of {', '.join(spec.constraints['at_least_one'])}")
        if spec.constraints.get("just_one") and len(present & set(spec.constraints["just_one"])) != 1:
            self.add(path, f"{spec.name} needs exactly one of {', '.join(spec.constraints['just_one'])}")

    def value(self, value: Any, attr: Attribute, path: str) -> None:
        if attr.is_array:
            if not isinstance(value, list):
                self.add(path, f"must be an array of {attr.type}, got {type(value).__name__}")
                return
            for i, item in enumerate(value):
                self.one(item, attr, f"{path}[{i}]")
        else:
            self.one(value, attr, path)

    def one(self, value: Any, attr: Attribute, path: str) -> None:
        if attr.type == "object" or self.schema.is_object(attr.type):
            if not isinstance(value, dict):
                self.add(path, f"must be an object ({attr.type}), got {type(value).__name__}")
            elif attr.type != "object":
                self.spec(value, self.schema.compile_object(attr.type, self.profiles), path)
            return
        prim = self.schema.primitive(attr.type)
        root = prim.root
        if root == "json_t":
            return
        ok = _TYPE_OK[root](value)
        if not ok:
            self.add(path, f"must be {prim.name} ({root}), got {type(value).__name__} {value!r:.40}")
            return
        if root in _INT_BOUNDS and not _INT_BOUNDS[root][0] <= value <= _INT_BOUNDS[root][1]:
            self.add(path, f"{value} is outside the range of {root}")
        if prim.range and not prim.range[0] <= value <= prim.range[1]:
            self.add(path, f"{value} is outside {prim.name}'s range {list(prim.range)}")
        if isinstance(value, str):
            if prim.max_len and len(value) > prim.max_len:
                self.add(path, f"longer than {prim.name}'s {prim.max_len} characters")
            if prim.regex and not re.search(prim.regex, value):
                self.add(path, f"{value!r:.60} is not a valid {prim.name}")
        if attr.enum is not None and str(value) not in attr.enum:  # integer ids, and a few string enums
            self.add(path, f"{value!r} is not one of the values {attr.name} defines ({', '.join(sorted(attr.enum))})")


def validate_event(event: Any, schema: OcsfSchema | None = None, *, warnings: bool = True) -> list[Problem]:
    """Every problem with ``event``: errors, and with ``warnings`` the warnings too (slower: ~40 per event)."""
    schema = schema or default_schema()
    if not isinstance(event, dict):
        return [Problem("", f"an OCSF event is a JSON object, got {type(event).__name__}")]
    class_uid = event.get("class_uid")
    if not isinstance(class_uid, int) or isinstance(class_uid, bool):
        return [Problem("class_uid", "required integer attribute missing")]
    try:
        name = schema.class_name(class_uid)
    except InputError as exc:
        return [Problem("class_uid", str(exc))]
    metadata = event.get("metadata")
    raw_profiles = metadata.get("profiles", []) if isinstance(metadata, dict) else []
    problems: list[Problem] = []
    known = schema.profile_names()
    names: list[str] = [p for p in raw_profiles if isinstance(p, str)] if isinstance(raw_profiles, list) else []
    for i, p in enumerate(names):
        if p not in known:
            problems.append(
                Problem(f"metadata.profiles[{i}]", f"unknown profile {p!r} (known: {', '.join(sorted(known))})")
            )
    spec = schema.compile_class(name, frozenset(p for p in names if p in known))
    walker = _Walker(schema, frozenset(names), warnings)
    walker.spec(event, spec, "")
    problems += walker.problems
    if event.get("category_uid") not in (None, spec.category_uid):
        problems.append(
            Problem("category_uid", f"is {event['category_uid']}, class {name} is in category {spec.category_uid}")
        )
    activity = event.get("activity_id")
    if isinstance(activity, int) and event.get("type_uid") not in (None, class_uid * 100 + activity):
        problems.append(
            Problem(
                "type_uid", f"is {event['type_uid']}, must be class_uid*100+activity_id = {class_uid * 100 + activity}"
            )
        )
    return problems


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.level == "error"]


def check_event(event: Any, schema: OcsfSchema | None = None) -> None:
    """Raise ``OcsfValidationError`` naming each attribute at fault when ``event`` is not valid OCSF."""
    found = validate_event(event, schema, warnings=False)
    if found:
        raise OcsfValidationError(found)
