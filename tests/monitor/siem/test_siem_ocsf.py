"""OCSF events checked against the schema compiled from its source: the 1.8 ai_operation profile on predictions,
Detection Findings for alerts, invalid events refused with the attribute named, and agreement with
pydantic-ocsf's compiled 1.7 models where 1.7 applies."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from modelshield.audit.ocsf import to_ocsf
from modelshield.monitor.siem import OcsfValidationError, check_event, default_schema, detection_finding, validate_event
from modelshield.monitor.siem.schema import OcsfSchema, closure
from modelshield.monitor.siem.validate import errors
from modelshield.monitor.siem.vendor import CLASSES

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "ocsf-schema"
PREDICT = {
    "action": "predict",
    "actor": {"subject": "alice", "method": "api_key", "tenant": "acme"},
    "model": "digits",
    "model_version": 3,
    "model_digest": "sha256:" + "ab" * 32,
    "decision": "allow",
    "status_code": 200,
    "latency_ms": 1.7,
    "request_id": "req-1",
    "client_ip": "10.0.0.7",
}


def prediction() -> dict[str, Any]:
    return to_ocsf(7, 1_765_000_000_000_000, "cd" * 32, PREDICT, "log-1")


def paths(event: Any) -> list[str]:
    return [p.path for p in errors(validate_event(event))]


def test_prediction_carries_the_ai_operation_profile_and_validates() -> None:
    event = prediction()
    assert event["metadata"]["profiles"] == ["ai_operation"]
    assert event["ai_model"] == {
        "name": "digits",
        "version": "3",
        "uid": "sha256:" + "ab" * 32,
        "ai_provider": "Internal",
    }
    assert paths(event) == []
    # the same event without the profile declared: ai_model is not an API Activity attribute
    event["metadata"]["profiles"] = []
    assert paths(event) == ["ai_model"]


def test_compiled_class_resolves_extends_includes_and_the_dictionary() -> None:
    schema = default_schema()
    plain = schema.compile_class("api_activity")
    ai = schema.compile_class("api_activity", frozenset({"ai_operation"}))
    assert (plain.uid, plain.category_uid) == (6003, 6) and "ai_operation" in plain.profiles
    assert "ai_model" not in plain.attributes and ai.attributes["ai_model"].type == "ai_model"
    assert plain.attributes["src_endpoint"].requirement == "required"  # api_activity over application
    assert plain.attributes["time"].type == "timestamp_t"  # base_event, typed by the dictionary
    assert set(plain.attributes["activity_id"].enum or {}) == {"0", "1", "2", "3", "4", "99"}
    model = schema.compile_object("ai_model")  # extends _entity
    assert model.attributes["ai_provider"].requirement == "required" and "uid_numeric" in model.attributes
    assert schema.primitive("timestamp_t").root == "long_t" and schema.primitive("ip_t").regex


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda e: e["ai_model"].pop("ai_provider"), "ai_model.ai_provider"),
        (lambda e: e.pop("src_endpoint"), "src_endpoint"),
        (lambda e: e["src_endpoint"].update(ip="10.0.0.300"), "src_endpoint.ip"),
        (lambda e: e.update(activity_id=7), "activity_id"),
        (lambda e: e.update(time="yesterday"), "time"),
        (lambda e: e["api"].update(operation=["predict"]), "api.operation"),
        (lambda e: e.update(type_uid=600301), "type_uid"),
        (lambda e: e["actor"].update(user={}), "actor.user"),
        (lambda e: e.update(colour="red"), "colour"),
        (lambda e: e["metadata"].update(profiles=["ai_operation", "telepathy"]), "metadata.profiles[1]"),
    ],
)
def test_invalid_events_are_refused_naming_the_attribute(mutate: Any, path: str) -> None:
    event = prediction()
    mutate(event)
    assert path in paths(event)
    with pytest.raises(OcsfValidationError, match=path.replace("[", r"\[").replace("]", r"\]")):
        check_event(event)


def test_detection_finding_validates_and_names_the_model_and_rule() -> None:
    finding = detection_finding(
        title="Output class mix shifted towards class 0",
        severity="high",
        rule="output-drift",
        time=1_765_000_000.25,
        uid="alert-1",
        model="digits",
        model_version=3,
        evidence={"statistic": 0.41, "threshold": 0.2, "window": 500},
        analytic="statistical",
        first_seen=1_765_000_000.0,
        types=["drift"],
    )
    assert paths(finding) == []
    assert (finding["class_uid"], finding["type_uid"], finding["severity_id"], finding["time"]) == (
        2004,
        200401,
        4,
        1_765_000_000_250,
    )
    assert finding["finding_info"]["analytic"] == {
        "name": "output-drift",
        "uid": "output-drift",
        "type_id": 3,
        "type": "Statistical",
    }
    assert finding["resources"] == [{"name": "digits", "type": "model", "version": "3"}]
    closed = detection_finding(title="t", severity=5, rule="r", time=time.time(), uid="alert-1", activity="close")
    assert paths(closed) == [] and (closed["status"], closed["is_alert"]) == ("Resolved", False)
    broken = copy.deepcopy(finding)
    broken["finding_info"].pop("uid")
    assert paths(broken) == ["finding_info.uid"]


def test_vendored_schema_is_the_closure_of_the_shared_source() -> None:
    if not SHARED.is_dir():
        pytest.skip("the OCSF schema source (../shared/data/ocsf-schema) is not checked out beside the repo")
    source = OcsfSchema(SHARED)
    vendored = default_schema()
    for name in CLASSES:
        for profiles in (frozenset(), frozenset({"ai_operation"}), frozenset(source.profile_names())):
            assert source.compile_class(name, profiles).attributes == vendored.compile_class(name, profiles).attributes
    needed = {p.relative_to(SHARED) for p in closure(source, CLASSES)}
    have = {p.relative_to(vendored.root) for p in vendored.root.rglob("*.json")}
    assert have == needed | {Path("version.json")}
    assert {"LICENSE", "NOTICE", "SOURCE"} <= {p.name for p in vendored.root.iterdir()}


def test_pydantic_ocsf_1_7_agrees_where_1_7_applies() -> None:
    """API Activity without the 1.8 profile: what pydantic-ocsf's compiled 1.7 model refuses, we refuse too."""
    pytest.importorskip("ocsf")
    from ocsf.v1_7_0.events import ApiActivity, DetectionFinding
    from pydantic import ValidationError

    base = prediction()
    base.pop("ai_model")
    base["metadata"].pop("profiles")
    cases = [
        lambda e: None,
        lambda e: e.pop("src_endpoint"),
        lambda e: e.pop("actor"),
        lambda e: e["metadata"].pop("product"),
        lambda e: e.update(time="yesterday"),
        lambda e: e.update(activity_id=7),
        lambda e: e.update(severity_id=9),
        lambda e: e.update(resources={"name": "x"}),
        lambda e: e["api"].update(operation={"a": 1}),
    ]
    for i, mutate in enumerate(cases):
        event = copy.deepcopy(base)
        mutate(event)
        try:
            ApiActivity.model_validate(event)
            theirs = True
        except ValidationError:
            theirs = False
        assert theirs == (paths(event) == []), (i, paths(event))
    finding = detection_finding(title="t", severity="low", rule="r", time=time.time(), model="m", evidence={"v": 1})
    DetectionFinding.model_validate(json.loads(json.dumps(finding)))
