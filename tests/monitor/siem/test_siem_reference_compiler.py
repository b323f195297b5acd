"""Our OCSF compiler against OCSF's own reference compiler (``ocsf-lib``, ocsf/ocsf-lib-py) on the vendored
source: every attribute of API Activity, Detection Finding and each object they reach — name, requirement, type,
array-ness, enum ids and the profile that brings it — must come out the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelshield.monitor.siem.schema import OcsfSchema, Spec, default_schema
from modelshield.monitor.siem.vendor import CLASSES


def differences(theirs: object, ours: Spec) -> list[str]:
    their_attrs = theirs.attributes  # type: ignore[attr-defined]
    out = (
        [f"only in one: {sorted(set(their_attrs) ^ set(ours.attributes))}"]
        if set(their_attrs) != set(ours.attributes)
        else []
    )
    for name in set(their_attrs) & set(ours.attributes):
        t, o = their_attrs[name], ours.attributes[name]
        got = (t.requirement or "optional", bool(t.is_array), t.object_type or t.type, set(t.enum or {}))
        mine = (o.requirement, o.is_array, o.type, set(o.enum or {}))
        if got != mine:
            out.append(f"{name}: ocsf-lib {got} != ours {mine}")
    return out


@pytest.fixture(scope="module")
def reference() -> object:
    util = pytest.importorskip("ocsf.util", reason="ocsf-lib (the test extra) is not installed")
    return util.get_schema(str(default_schema().root))


def test_classes_and_objects_match_ocsf_lib(reference: object) -> None:
    ours: OcsfSchema = default_schema()
    every = ours.profile_names()
    problems = {}
    for name in CLASSES:
        problems[name] = differences(reference.classes[name], ours.compile_class(name, every))  # type: ignore[attr-defined]
    objects = reference.objects  # type: ignore[attr-defined]
    assert len(objects) > 100
    for name in objects:
        problems[name] = differences(objects[name], ours.compile_object(name, every))
    assert {k: v for k, v in problems.items() if v} == {}


def pinned(root: Path, name: str) -> set[str]:
    """Attributes a class (or a parent) declares with ``"profile": null``, read straight from the source files."""
    files = {p.stem: p for p in (root / "events").rglob("*.json")}
    out: set[str] = set()
    while name in files:
        raw = json.loads(files[name].read_text())
        out |= {
            k
            for k, v in raw.get("attributes", {}).items()
            if isinstance(v, dict) and "profile" in v and v["profile"] is None
        }
        name = raw.get("extends", "")
    return out


def test_profile_membership_matches_ocsf_lib_but_for_pinned_attributes(reference: object) -> None:
    """Which attributes each profile brings. One known difference: a class that declares a profile's attribute
    with ``"profile": null`` builds it in (API Activity's required actor and api come from the host and cloud
    profiles); ocsf-lib keeps the profile tag, which would drop a required attribute from the class without the
    profile. We follow the OCSF server and docs (ocsf/ocsf-schema#977)."""
    ours = default_schema()
    for name in CLASSES:
        theirs = reference.classes[name].attributes  # type: ignore[attr-defined]
        for profile in sorted(ours.profile_names()):
            expected = {k for k, a in theirs.items() if a.profile is None or a.profile == profile}
            got = set(ours.compile_class(name, frozenset({profile})).attributes)
            assert got - expected <= pinned(ours.root, name) and expected <= got, (name, profile)
        assert {"actor", "api"} <= set(ours.compile_class("api_activity").attributes)
