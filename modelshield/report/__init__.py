"""Report renderers for ``modelshield assess``: one interface, one module per format.

``write_reports`` writes every format in ``RENDERERS`` into one folder; callers that want a
single format pick its renderer from ``RENDERERS`` by name.
"""

from __future__ import annotations

from pathlib import Path

from modelshield.assess.results import AssessmentResult
from modelshield.report.examples import ExampleGrid
from modelshield.report.html import HtmlRenderer
from modelshield.report.interface import Renderer
from modelshield.report.json_report import JsonRenderer
from modelshield.report.markdown import MarkdownRenderer
from modelshield.report.sarif import SarifRenderer

RENDERERS: dict[str, Renderer] = {
    renderer.name: renderer for renderer in (HtmlRenderer(), JsonRenderer(), SarifRenderer(), MarkdownRenderer())
}


def write_reports(
    result: AssessmentResult, out_dir: str | Path, examples: ExampleGrid | None = None
) -> dict[str, Path]:
    """Write report.html, report.json, report.sarif and report.md; return each path by format name."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, renderer in RENDERERS.items():
        path = folder / renderer.filename
        path.write_text(renderer.render(result, examples), encoding="utf-8")
        written[name] = path
    return written


__all__ = ["RENDERERS", "ExampleGrid", "Renderer", "write_reports"]
