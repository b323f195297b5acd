"""The vendored OpenLineage schema (spec 2-0-2 and the facets modelshield writes) as one jsonschema validator.

An event must be a valid ``RunEvent``; each facet whose ``_schemaURL`` names a vendored facet schema must also
validate against it (the run-event schema alone only checks a facet's ``_producer``/``_schemaURL``). Facets of
other versions or producers are checked as base facets only, as an OpenLineage backend would accept them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

from modelshield.core.errors import DependencyError

SPEC_ID = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
RUN_EVENT = f"{SPEC_ID}#/$defs/RunEvent"


@functools.cache
def _schemas() -> dict[str, Any]:
    """``$id`` → schema document for every vendored file."""
    root = resources.files("modelshield.govern") / "data" / "openlineage"
    docs = [json.loads((root / "OpenLineage.json").read_text(encoding="utf-8"))]
    docs += [
        json.loads(f.read_text(encoding="utf-8"))
        for f in sorted((root / "facets").iterdir(), key=lambda f: f.name)
        if f.name.endswith(".json")
    ]
    return {d["$id"]: d for d in docs}


@functools.cache
def _validator(ref: str) -> Any:
    try:
        import jsonschema
        from referencing import Registry, Resource
    except ImportError:
        raise DependencyError(
            "validating OpenLineage events needs jsonschema", hint="pip install 'modelshield[govern]'"
        ) from None
    registry = Registry().with_resources((i, Resource.from_contents(d)) for i, d in _schemas().items())
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=registry, format_checker=checker)


def _facets(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every facet in the event, with where it sits (for messages)."""
    groups: list[tuple[str, Any]] = [
        ("run", (event.get("run") or {}).get("facets")),
        ("job", (event.get("job") or {}).get("facets")),
    ]
    for side in ("inputs", "outputs"):
        for i, ds in enumerate(event.get(side) or []):
            if isinstance(ds, dict):
                groups += [(f"{side}[{i}]", ds.get("facets")), (f"{side}[{i}]", ds.get("inputFacets"))]
                groups.append((f"{side}[{i}]", ds.get("outputFacets")))
    for where, facets in groups:
        if isinstance(facets, dict):
            for key, value in facets.items():
                if isinstance(value, dict):
                    yield f"{where}.{key}", value


def event_problems(event: Any) -> list[str]:
    """Every way ``event`` breaks the vendored schema (empty when it is a valid RunEvent)."""
    problems = [
        f"{'/'.join(str(p) for p in e.absolute_path) or 'event'}: {e.message}"
        for e in _validator(RUN_EVENT).iter_errors(event)
    ]
    if problems or not isinstance(event, dict):
        return problems
    known = _schemas()
    for where, facet in _facets(event):
        url = str(facet.get("_schemaURL", ""))
        if url.partition("#")[0] in known:
            problems += [f"{where}: {e.message}" for e in _validator(url).iter_errors(facet)]
    return problems
