"""report.html: one self-contained page a security engineer reads first.

No scripts and no external assets: plots and examples are inline PNGs and the CSS is in the page,
so the file opens offline and is safe to attach to a ticket. Every value is escaped by Jinja2's
autoescaping; model names and class names come from users.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2

from modelshield.assess.examples import ExampleGrid
from modelshield.assess.results import AssessmentResult, AttackRecord
from modelshield.report.formatting import detector_rows, eps_text, num, pct, sorted_findings, verdict
from modelshield.report.interface import Renderer


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelshield.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=pct, eps=eps_text, num=num)
    return env


def _is_gate(record: AttackRecord, gate: dict[str, Any]) -> bool:
    wanted = (gate.get("attack"), gate.get("norm"), gate.get("eps"))
    return bool(gate) and (record.attack, record.norm, record.eps) == wanted


def _figures(result: AssessmentResult) -> list[dict[str, str]]:
    """The plots that have data, each with the sentence that tells the reader how to read it."""
    from modelshield.report import plots  # matplotlib loads only when a report is drawn

    candidates = [
        (
            "Robust accuracy against the perturbation budget",
            "Each line is one attack's ε sweep from the clean accuracy at ε = 0; an open marker is an attack run at "
            "that ε only. The lowest point at a given ε is the best estimate of worst-case accuracy.",
            plots.robust_accuracy_plot(result),
        ),
        (
            "How small a perturbation fools the model",
            "Minimum-norm attacks: curves far to the left mean imperceptible changes flip predictions.",
            plots.perturbation_plot(result),
        ),
        (
            "Black-box success against query budget",
            "What an attacker with only API access achieves per number of queries per input.",
            plots.query_plot(result),
        ),
        (
            "Certified accuracy against L2 radius",
            "Randomized smoothing: the share of inputs provably classified correctly within each L2 radius "
            "(with probability 1 − α); abstentions count as wrong.",
            plots.certified_plot(result),
        ),
        (
            "Clean, robust and certified accuracy",
            "What each guarantee costs: accuracy with no attack, under the strongest attack at the gate, and "
            "certified by smoothing at radius σ.",
            plots.tradeoff_plot(result),
        ),
    ]
    return [{"title": title, "caption": caption, "uri": uri} for title, caption, uri in candidates if uri]


class HtmlRenderer(Renderer):
    """The full report: verdict, sanity checks, findings, plots, attack table and examples."""

    name = "html"
    filename = "report.html"

    def render(self, result: AssessmentResult, examples: ExampleGrid | None = None) -> str:
        from modelshield.report import plots

        tiles, amplification = plots.example_tiles(examples) if examples is not None else ([], 1.0)
        attacks = sorted(result.attacks, key=lambda r: (r.attack, r.norm, r.eps is None, r.eps or 0.0))
        template = _environment().get_template("report.html.j2")
        return template.render(
            result=result,
            verdict=verdict(result),
            findings=sorted_findings(result.findings),
            failed_checks=[flag for flag in result.sanity if not flag.passed],
            attacks=[(record, _is_gate(record, result.gating)) for record in attacks],
            figures=_figures(result),
            detector_rows=detector_rows(result),
            privacy_plot=plots.privacy_roc_plot(result) if result.privacy_roc else None,
            examples=examples,
            tiles=tiles,
            amplification=amplification,
        )
