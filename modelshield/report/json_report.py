"""report.json: the assessment as data, for dashboards, diffs and other tools."""

from __future__ import annotations

import json

from modelshield.assess.examples import ExampleGrid
from modelshield.assess.results import AssessmentResult
from modelshield.report.interface import Renderer


class JsonRenderer(Renderer):
    """The serialised :class:`AssessmentResult`, validated by ``schemas/report.schema.json``.

    Keys are sorted so two reports diff line by line. Pydantic's JSON mode writes NaN and
    infinity as ``null``, which keeps the file valid JSON (the schema then flags the gap).
    """

    name = "json"
    filename = "report.json"

    def render(self, result: AssessmentResult, examples: ExampleGrid | None = None) -> str:
        data = json.loads(result.model_dump_json())
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
