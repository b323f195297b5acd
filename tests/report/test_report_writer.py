"""write_reports: every format, one folder, one place that lists the formats."""

from __future__ import annotations

from pathlib import Path

from modelshield.assess.results import AssessmentResult
from modelshield.report import RENDERERS, ExampleGrid, Renderer, write_reports


def test_writes_every_format(tabular_result: AssessmentResult, examples: ExampleGrid, tmp_path: Path) -> None:
    written = write_reports(tabular_result, tmp_path / "out", examples)
    assert {name: path.name for name, path in written.items()} == {
        "html": "report.html",
        "json": "report.json",
        "sarif": "report.sarif",
        "markdown": "report.md",
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written.values())
    assert all(path.stat().st_size > 0 for path in written.values())


def test_registry_is_consistent() -> None:
    assert all(isinstance(r, Renderer) and r.name == name for name, r in RENDERERS.items())
    assert len({r.filename for r in RENDERERS.values()}) == len(RENDERERS)
