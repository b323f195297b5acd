"""Report renderers for ``modelshield assess``: one interface, one module per format.

``write_reports`` writes every format in ``RENDERERS`` into one folder; callers that want a
single format pick its renderer from ``RENDERERS`` by name. The renderers (jinja2, pydantic, numpy)
load on first use, so importing one submodule — ``report.sarif`` for ``modelshield scan -f sarif`` —
does not load them all.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelshield.assess.examples import ExampleGrid
    from modelshield.assess.results import AssessmentResult
    from modelshield.report.interface import Renderer


@functools.cache
def _renderers() -> dict[str, Renderer]:
    from modelshield.report.html import HtmlRenderer
    from modelshield.report.json_report import JsonRenderer
    from modelshield.report.markdown import MarkdownRenderer
    from modelshield.report.sarif import SarifRenderer

    return {r.name: r for r in (HtmlRenderer(), JsonRenderer(), SarifRenderer(), MarkdownRenderer())}


def __getattr__(name: str) -> Any:
    """``RENDERERS``, ``ExampleGrid`` and ``Renderer``, imported when first asked for."""
    if name == "RENDERERS":
        return _renderers()
    if name == "ExampleGrid":
        from modelshield.assess.examples import ExampleGrid

        return ExampleGrid
    if name == "Renderer":
        from modelshield.report.interface import Renderer

        return Renderer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def write_reports(
    result: AssessmentResult, out_dir: str | Path, examples: ExampleGrid | None = None
) -> dict[str, Path]:
    """Write report.html, report.json, report.sarif and report.md; return each path by format name."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, renderer in _renderers().items():
        path = folder / renderer.filename
        path.write_text(renderer.render(result, examples), encoding="utf-8")
        written[name] = path
    return written


__all__ = ["RENDERERS", "ExampleGrid", "Renderer", "write_reports"]
