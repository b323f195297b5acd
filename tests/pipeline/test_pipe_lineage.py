"""Every stage event is an OpenLineage RunEvent that validates against the published schema (spec 2-0-2 and the
facets it uses, vendored in tests/ingest/openlineage and tests/pipeline/openlineage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _validator() -> object:
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource

    here = Path(__file__).parent
    spec = here.parent / "ingest/openlineage"
    docs = [json.loads(p.read_text()) for p in [spec / "OpenLineage.json", *sorted((spec / "facets").glob("*.json"))]]
    docs += [json.loads(p.read_text()) for p in sorted((here / "openlineage/facets").glob("*.json"))]
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs)
    schema = {"$ref": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"}
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    return jsonschema.Draft202012Validator(schema, registry=registry, format_checker=checker)


def test_stage_events_validate_and_carry_digests_and_the_parent_run(stopped_source: Path) -> None:
    validator = _validator()
    lines = (stopped_source / "lineage/events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    run_id = json.loads((stopped_source / "state.json").read_text())["run_id"]
    assert len(events) == 6  # threat, ingest, scan: START + COMPLETE/FAIL each
    for event in events:
        validator.validate(event)  # type: ignore[attr-defined]
        assert event["run"]["facets"]["parent"]["run"]["runId"] == run_id
    complete = events[3]
    assert (complete["eventType"], complete["job"]["facets"]["jobType"]["jobType"]) == ("COMPLETE", "INGEST")
    (out,) = complete["outputs"]
    assert out["name"].endswith("artifacts/training-data")
    assert out["facets"]["version"]["datasetVersion"].startswith("sha256:")
    assert out["outputFacets"]["outputStatistics"]["size"] == Path(out["name"]).stat().st_size
    fail = events[5]
    assert fail["eventType"] == "FAIL" and "scaler.pkl" in fail["run"]["facets"]["errorMessage"]["message"]


def test_a_broken_event_does_not_validate() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from modelshield.ingest.lineage import run_event

    event = run_event("not-a-uuid", "job", "2026-01-01T00:00:00Z", [], [], event_type="START", job_type="SCAN")
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(event)  # type: ignore[attr-defined]
