"""The vendored OpenLineage schema (spec 2-0-2 and the facets modelshield writes), checked with jsonschema-rs or python-jsonschema.

An event must be a valid ``RunEvent``; each facet whose ``_schemaURL`` names a vendored facet schema must also
validate against it (the run-event schema alone only checks a facet's ``_producer``/``_schemaURL``). Facets of
other versions or producers are checked as base facets only, as an OpenLineage backend would accept them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
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


Check = Callable[[Any], list[str]]


@functools.cache
def _checker(ref: str, engine: str) -> Check:
    """A function listing every problem of an instance against the vendored schema at ``ref``.

    ``engine`` "rs" is jsonschema-rs (Rust, ~200x faster on these $ref-heavy schemas: a 100k-event load is
    validation-bound), "py" the python-jsonschema reference implementation; both check formats (uuid,
    date-time, uri) and draft 2020-12."""
    if engine == "rs":
        import jsonschema_rs

        registry = jsonschema_rs.Registry(list(_schemas().items()))
        rs = jsonschema_rs.validator_for({"$ref": ref}, registry=registry, validate_formats=True)
        return lambda instance: [_where(e.instance_path, e.message) for e in rs.iter_errors(instance)]
    try:
        import jsonschema
        from referencing import Registry, Resource
    except ImportError:
        raise DependencyError(
            "validating OpenLineage events needs jsonschema-rs or jsonschema", hint="pip install 'modelshield[govern]'"
        ) from None
    resources_ = Registry().with_resources((i, Resource.from_contents(d)) for i, d in _schemas().items())
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    py = jsonschema.Draft202012Validator({"$ref": ref}, registry=resources_, format_checker=checker)
    return lambda instance: [_where(e.absolute_path, e.message) for e in py.iter_errors(instance)]


def _where(path: Iterable[Any], message: str) -> str:
    return f"{'/'.join(str(p) for p in path) or 'event'}: {message}"


@functools.cache
def default_engine() -> str:
    """jsonschema-rs when it is installed, else python-jsonschema."""
    try:
        import jsonschema_rs  # noqa: F401
    except ImportError:
        return "py"
    return "rs"


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


def event_problems(event: Any, engine: str | None = None) -> list[str]:
    """Every way ``event`` breaks the vendored schema (empty when it is a valid RunEvent)."""
    engine = engine or default_engine()
    problems = _checker(RUN_EVENT, engine)(event)
    if problems or not isinstance(event, dict):
        return problems
    known = _schemas()
    for where, facet in _facets(event):
        url = str(facet.get("_schemaURL", ""))
        if url.partition("#")[0] in known:
            problems += [f"{where}: {p.partition(': ')[2]}" for p in _checker(url, engine)(facet)]
    return problems
