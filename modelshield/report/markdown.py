"""report.md: a short summary for a CI job summary or a pull-request comment.

Only what a reviewer needs to decide: the verdict, failed sanity checks, and the findings.
The full numbers live in report.html and report.json.
"""

from __future__ import annotations

import re

from modelshield.assess.examples import ExampleGrid
from modelshield.assess.results import AssessmentResult
from modelshield.report.formatting import MARKS, detector_rows, num, pct, sorted_findings, verdict
from modelshield.report.interface import Renderer

_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~&])")


def md_escape(text: object) -> str:
    """Text safe in a table cell: Markdown and HTML both stay inert, lines fold into one."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _code_block(text: str) -> str:
    # A fence longer than any backtick run inside, so a command can never close it early.
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return f"{fence}sh\n{text}\n{fence}"


class MarkdownRenderer(Renderer):
    """Verdict first, then what to look at; examples cannot be shown and are ignored."""

    name = "markdown"
    filename = "report.md"

    def render(self, result: AssessmentResult, examples: ExampleGrid | None = None) -> str:
        outcome = verdict(result)
        model = result.model.get("name") or result.model.get("path") or "model"
        lines = [
            f"## {MARKS.get(outcome.status, '')} modelshield: {outcome.status} — {md_escape(model)}",
            "",
            f"**Worst finding:** {md_escape(outcome.worst)}",
            "",
            f"{md_escape(outcome.sentence)} Clean accuracy: {pct(result.clean_accuracy)}.",
        ]
        if result.errors:
            lines += ["", "Attacks without numbers:"]
            lines += [
                f"- {md_escape(e.attack)} ({'not applicable' if e.kind == 'not-applicable' else 'error'}): "
                f"{md_escape(e.error)}: {md_escape(e.message)}"
                for e in result.errors
            ]
        failed = [flag for flag in result.sanity if not flag.passed]
        if failed:
            lines += ["", f"> **Warning:** {len(failed)} sanity check(s) failed; robust accuracy may be overstated."]
            lines += [f"> - {md_escape(flag.name)}: {md_escape(flag.detail)}" for flag in failed]
        findings = sorted_findings(result.findings)
        if findings:
            lines += ["", "| Severity | Finding | Metric | Value | Threshold |", "| --- | --- | --- | ---: | ---: |"]
            lines += [
                f"| {f.severity.value} | {md_escape(f.title)} ({md_escape(f.id)}) | {md_escape(f.metric)} "
                f"| {num(f.value, 4)} | {num(f.threshold, 4)} |"
                for f in findings
            ]
        else:
            lines += ["", "No findings."]
        if result.certified:
            sigma = result.certified[0].sigma
            lines += [
                "",
                f"Certified accuracy (randomized smoothing, σ={num(sigma)}, abstains on "
                f"{pct(result.certified[0].abstain_rate)}):",
                "",
                "| L2 radius | Certified accuracy |",
                "| ---: | ---: |",
            ]
            lines += [f"| {num(p.radius)} | {pct(p.certified_accuracy)} |" for p in result.certified]
        rows = detector_rows(result)
        if rows:
            lines += [
                "",
                "| Detector | Attack | AUC | TPR @ 5% FPR | Adaptive AUC | Adaptive TPR @ 5% FPR |",
                "| --- | --- | ---: | ---: | ---: | ---: |",
            ]
            for row in rows:
                s, a = row["standard"], row["adaptive"]
                lines.append(
                    f"| {md_escape(s.name)} | {md_escape(s.attack)} | {num(s.auc, 3)} | {pct(s.tpr_at_fpr_005)} "
                    f"| {num(a.auc if a else None, 3)} | {pct(a.tpr_at_fpr_005 if a else None)} |"
                )
        lines += _privacy_lines(result) + _poisoning_lines(result)
        if result.command:
            lines += ["", "Reproduce:", "", _code_block(result.command)]
        provenance = f"{md_escape(result.tool)} {md_escape(result.version)} · {md_escape(result.created)}"
        lines += ["", f"<sub>{provenance} · full report in report.html</sub>"]
        return "\n".join(lines) + "\n"


def _privacy_lines(result: AssessmentResult) -> list[str]:
    """Membership inference on the baseline and its DP twin: the accountant's ε next to the attack's lower bound."""
    if not result.privacy:
        return []
    first = result.privacy[0]
    lines = [
        "",
        f"Membership inference (ε lower bound at {first.confidence:.0%} confidence, δ = {num(first.delta)}):",
        "",
        "| Attack | Model | ε (accountant) | ε lower bound | AUC | TPR @ 0.1% FPR | TPR @ 1% FPR |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {md_escape(r.attack)} | {r.model} | {'—' if r.epsilon is None else f'{r.epsilon:.2f}'} "
        f"| {r.epsilon_lower_bound:.2f} | {r.auc:.3f} "
        f"| {pct(r.tpr_at_fpr_0001)} | {pct(r.tpr_at_fpr_001)} |"
        for r in result.privacy
    ]
    return lines


def _poisoning_lines(result: AssessmentResult) -> list[str]:
    """Each poisoning attack, undefended and behind its defence."""
    if not result.poisoning:
        return []
    lines = [
        "",
        "| Poisoning attack | Poison rate | Clean acc. | Attack success | Defence | Defended clean acc. "
        "| Defended attack success | Detection P / R / F1 |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {md_escape(r.attack)} | {pct(r.poison_rate)} | {pct(r.clean_accuracy)} | {pct(r.attack_success_rate)} "
        f"| {md_escape(r.defence or 'none')} | {pct(r.defended_clean_accuracy)} | {pct(r.defended_attack_success_rate)} "
        f"| {pct(r.detection_precision)} / {pct(r.detection_recall)} / {num(r.detection_f1, 3)} |"
        for r in result.poisoning
    ]
    return lines
