"""report.json: valid against the published schema, lossless, and stable."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from modelshield.assess.results import (
    AssessmentResult,
    AttackRecord,
    CertifiedPoint,
    DetectionRecord,
    QueryCurve,
    SanityFlag,
)
from modelshield.core.findings import Finding
from modelshield.report import RENDERERS

SCHEMA = json.loads(files("modelshield.report").joinpath("schemas/report.schema.json").read_text())


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("case", ["image_result", "tabular_result", "untrusted_result"])
def test_report_validates_and_round_trips(case: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(case)
    document = json.loads(RENDERERS["json"].render(result))
    Draft202012Validator(SCHEMA).validate(document)
    assert AssessmentResult.model_validate(document) == result


def test_schema_rejects_a_bad_norm(image_result: AssessmentResult) -> None:
    document = json.loads(RENDERERS["json"].render(image_result))
    document["attacks"][0]["norm"] = "l1"
    assert not Draft202012Validator(SCHEMA).is_valid(document)


def test_output_is_stable_and_sorted(image_result: AssessmentResult) -> None:
    text = RENDERERS["json"].render(image_result)
    assert text == RENDERERS["json"].render(image_result.model_copy(deep=True))
    assert list(json.loads(text)) == sorted(json.loads(text))


def test_non_finite_numbers_stay_valid_json(image_result: AssessmentResult) -> None:
    broken = image_result.model_copy(deep=True)
    broken.attacks[0].robust_accuracy = float("nan")
    document = json.loads(RENDERERS["json"].render(broken))
    assert document["attacks"][0]["robust_accuracy"] is None
    assert not Draft202012Validator(SCHEMA).is_valid(document)


@pytest.mark.parametrize(
    ("model", "pointer"),
    [
        (AssessmentResult, ""),
        (AttackRecord, "/$defs/attackRecord"),
        (QueryCurve, "/$defs/queryCurve"),
        (SanityFlag, "/$defs/sanityFlag"),
        (CertifiedPoint, "/$defs/certifiedPoint"),
        (DetectionRecord, "/$defs/detectionRecord"),
        (Finding, "/$defs/finding"),
    ],
)
def test_schema_covers_every_field(model: type[BaseModel], pointer: str) -> None:
    """A field added to the result model must be described in the schema too."""
    node = SCHEMA
    for part in pointer.split("/")[1:]:
        node = node[part]
    assert set(node["properties"]) == {field.alias or name for name, field in model.model_fields.items()}
