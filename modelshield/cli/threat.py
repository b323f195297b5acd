"""``modelshield threat``: threat modeling as code — check a YAML system description, draw it, record decisions.

``threat check`` is a CI gate: with ``--fail-on high`` it exits 1 while an *open* finding at or above high
exists (accepted, mitigated and false-positive ones are decisions already taken), 0 otherwise, 2 on bad input.
Decisions live in a status file, by default ``<system>.status.yaml`` beside the system description.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.core.errors import InputError
from modelshield.core.severity import Severity
from modelshield.threat.findings import Status

if TYPE_CHECKING:
    from modelshield.threat import System, ThreatReport
    from modelshield.threat.case_studies import CaseStudy

threat_app = typer.Typer(
    help="Threat modeling as code: STRIDE and ML threats (MITRE ATLAS, OWASP ML Top 10) from a YAML system.",
    no_args_is_help=True,
)


class ThreatFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    html = "html"
    json = "json"
    sarif = "sarif"


SystemArg = Annotated[Path | None, typer.Argument(help="System description (YAML); omit with --demo.")]
DemoOption = Annotated[bool, typer.Option("--demo", help="Use the shipped credit-risk scoring system.")]
RulesOption = Annotated[
    list[Path], typer.Option("--rules", help="Extra rules file, in the built-in rules' format (repeatable).")
]
StatusOption = Annotated[
    Path | None,
    typer.Option("--status", help="Status file of decisions (default: <system>.status.yaml beside the system)."),
]


def _system(path: Path | None, demo: bool) -> tuple[System, str | None]:
    from modelshield.threat import demo_system, load_system

    if demo == (path is not None):
        raise InputError("give a system description or --demo (one of them)")
    return (demo_system(), None) if path is None else (load_system(path), str(path))


def _status_path(system: Path | None, status: Path | None) -> Path | None:
    if status is not None:
        return status
    return None if system is None else system.with_name(f"{system.stem}.status.yaml")


def _report(
    system_path: Path | None, demo: bool, rules: list[Path], status: Path | None
) -> tuple[System, ThreatReport, str | None]:
    from modelshield.threat import analyse, builtin_rules, load_rules
    from modelshield.threat.findings import judge_evidence
    from modelshield.threat.status import load_decisions

    system, source = _system(system_path, demo)
    libraries = [builtin_rules(), *(load_rules(p) for p in rules)]
    status_file = _status_path(system_path, status)
    decisions = load_decisions(status_file) if status_file else {}
    evidence = judge_evidence(system, system_path.parent if system_path else Path.cwd())  # paths: the YAML's folder
    return system, analyse(system, libraries, decisions, evidence), source


def _table(report: ThreatReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Threat model: {report.system}")
    for col in ("id", "severity", "status", "on", "rule", "OWASP"):  # titles and ATLAS names: --format markdown
        table.add_column(col, no_wrap=col in ("id", "rule"))
    for f in report.findings:
        table.add_row(f.id, f.severity.value, f.status.value, f.element, f.rule, " ".join(f.owasp))
    console = Console(highlight=False, soft_wrap=True, markup=False)  # element names print as written
    console.print(table)
    console.print(", ".join(f"{n} {s}" for s, n in report.counts().items()))
    for ev in report.evidence:
        verdict = "passed" if ev.passed else "FAILED"
        console.print(f"evidence {ev.kind} on {ev.element} ({ev.path}): {verdict} — {ev.summary}")
    for fid, d in report.stale.items():
        console.print(
            f"stale: {fid} is recorded as {d.status.value} ({d.rule} on {d.element}) but no finding has that id"
        )


def _write(out: Path, text: str) -> None:
    from modelshield.core.files import atomic_output

    with atomic_output(out, mode=0o644) as f:  # a failed write never leaves half a report
        f.write(text.encode("utf-8"))


@threat_app.command("check")
def check_command(
    system: SystemArg = None,
    demo: DemoOption = False,
    rules: RulesOption = [],  # noqa: B006 - typer reads the default, never mutates it
    status: StatusOption = None,
    format: Annotated[
        ThreatFormat, typer.Option("--format", "-f", help="table, markdown, html, json or sarif")
    ] = ThreatFormat.table,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the report here instead of stdout.")] = None,
    fail_on: Annotated[
        Severity | None, typer.Option("--fail-on", help="Exit 1 if an open finding is at or above this severity.")
    ] = None,
) -> None:
    """Apply the rules to a system; list findings with their ATLAS techniques, OWASP ids and mitigations."""
    from modelshield.threat.render import RENDERERS, render_html

    sys_model, report, source = _report(system, demo, rules, status)
    if format is ThreatFormat.table:
        if out is not None:
            raise InputError("--out needs a file format: --format markdown, html, json or sarif")
        _table(report)
    else:
        if format is ThreatFormat.html:
            text = render_html(report, source, _svg_or_none(sys_model, report))
        else:
            text = RENDERERS[format.value](report, source)
        if out is None:
            typer.echo(text, nl=False)
        else:
            _write(out, text)
    if fail_on is not None and report.open_at_least(fail_on):
        raise typer.Exit(1)


def _svg_or_none(system: System, report: ThreatReport) -> str | None:
    """The diagram for the HTML page, or none when Graphviz is missing (the page is still useful without it)."""
    from modelshield.core.errors import DependencyError
    from modelshield.threat.diagram import to_dot, to_svg

    try:
        return to_svg(to_dot(system, report))
    except DependencyError:
        return None


@threat_app.command("diagram")
def diagram_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="SVG to write; the DOT text goes beside it (.dot).")],
    system: SystemArg = None,
    demo: DemoOption = False,
    rules: RulesOption = [],  # noqa: B006
    status: StatusOption = None,
) -> None:
    """Draw the data-flow diagram with trust boundaries; elements and flows with open findings in red."""
    from modelshield.threat.diagram import to_dot, to_svg

    dot_path = out.with_suffix(".dot")
    if dot_path == out:
        raise InputError("--out names the SVG (e.g. dfd.svg); the DOT text is written beside it as dfd.dot")
    sys_model, report, _ = _report(system, demo, rules, status)
    dot_text = to_dot(sys_model, report)
    _write(dot_path, dot_text)
    _write(out, to_svg(dot_text))
    typer.echo(f"wrote {out} and {dot_path}")


@threat_app.command("status")
def status_command(
    finding: Annotated[str, typer.Argument(help="Finding id (TM-...), as `threat check` lists it.")],
    value: Annotated[Status, typer.Argument(help="open, accepted, mitigated or false-positive.")],
    system: Annotated[Path | None, typer.Option("--system", help="System description (YAML).")] = None,
    demo: DemoOption = False,
    note: Annotated[str, typer.Option("--note", help="Why: who decided, until when, which control.")] = "",
    rules: RulesOption = [],  # noqa: B006
    status: StatusOption = None,
) -> None:
    """Record a decision about one finding in the status file (every other entry is kept)."""
    from modelshield.threat.status import record

    status_file = _status_path(system, status)
    if status_file is None:
        raise InputError("--demo has no system file to keep decisions beside: give --status FILE")
    _, report, _ = _report(system, demo, rules, status_file)
    match = next((f for f in report.findings if f.id == finding), None)
    if match is None:
        raise InputError(f"no finding {finding!r} in this system (run `modelshield threat check` for the ids)")
    record(status_file, match, value, note)
    typer.echo(f"{finding} ({match.rule} on {match.element}): {value.value} in {status_file}")


@threat_app.command("rules")
def rules_command(
    rules: RulesOption = [],  # noqa: B006
) -> None:
    """List the rules: id, severity, STRIDE, ATLAS techniques (names from the ATLAS release), OWASP ids."""
    from modelshield.threat import builtin_rules, load_rules
    from modelshield.threat.atlas import load_atlas

    atlas = load_atlas()
    for lib in (builtin_rules(), *(load_rules(p) for p in rules)):
        for rule in lib.rules:
            techniques = "; ".join(f"{t} {atlas.name(t)}" for t in rule.atlas) or "-"
            typer.echo(
                f"{rule.id}  {rule.severity.value}  {rule.applies_to}  {','.join(rule.stride)}  "
                f"{techniques}  {','.join(rule.owasp) or '-'}  {rule.title}"
            )


class StudyFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"


@threat_app.command("case-study")
def case_study_command(
    study: Annotated[str | None, typer.Argument(help="Case study id (AML.CS0000); omit to list them all.")] = None,
    rules: RulesOption = [],  # noqa: B006
    format: Annotated[StudyFormat, typer.Option("--format", "-f", help="table, markdown or json")] = StudyFormat.table,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """MITRE ATLAS case studies as threat-model examples: each step with the rules and controls that cover it."""
    import json

    from modelshield.threat import builtin_rules, load_rules
    from modelshield.threat.case_studies import case_studies, case_study, render_study_markdown, study_json

    libraries = (builtin_rules(), *(load_rules(p) for p in rules))
    studies = case_studies(*libraries) if study is None else [case_study(study, *libraries)]
    if format is StudyFormat.table:
        if out is not None:
            raise InputError("--out needs a file format: --format markdown or json")
        _study_table(studies)
        return
    if format is StudyFormat.json:
        text = json.dumps([study_json(s) for s in studies] if study is None else study_json(studies[0]), indent=2)
        text += "\n"
    else:
        text = "\n".join(render_study_markdown(s) for s in studies)
    if out is None:
        typer.echo(text, nl=False)
    else:
        _write(out, text)


def _study_table(studies: list[CaseStudy]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True, markup=False)  # controls contain "[rate_limits]"
    if len(studies) == 1:
        s = studies[0]
        console.print(f"{s.id}: {s.name} ({s.kind}, {s.date})\n{s.summary}")
    table = Table(title="MITRE ATLAS case studies" if len(studies) > 1 else None)
    if len(studies) > 1:
        for col in ("id", "date", "kind", "steps", "covered", "name"):
            table.add_column(col, no_wrap=col != "name")
        for s in studies:
            table.add_row(s.id, s.date, s.kind, str(len(s.steps)), str(s.covered), s.name)
    else:
        for col in ("#", "technique", "rules", "controls"):
            table.add_column(col)
        for i, step in enumerate(studies[0].steps, 1):
            table.add_row(str(i), step.technique, ", ".join(step.rules) or "-", "; ".join(step.controls) or "-")
    console.print(table)
    steps = sum(len(s.steps) for s in studies)
    console.print(f"{sum(s.covered for s in studies)} of {steps} steps raise a threat in the rule library")


@threat_app.command("tabletop")
def tabletop_command(
    system: SystemArg = None,
    demo: DemoOption = False,
    case_study: Annotated[
        str | None, typer.Option("--case-study", help="Replay this MITRE ATLAS case study (AML.CS0000) instead.")
    ] = None,
    rules: RulesOption = [],  # noqa: B006
    status: StatusOption = None,
    settings: Annotated[
        Path | None, typer.Option("--settings", help="Your roles, escalation matrix and questions (YAML).")
    ] = None,
    injects: Annotated[int, typer.Option("--injects", help="Open findings to turn into injects, worst first.")] = 6,
    interval: Annotated[int, typer.Option("--interval", help="Minutes between injects.", min=1)] = 10,
    format: Annotated[StudyFormat, typer.Option("--format", "-f", help="markdown or json")] = StudyFormat.markdown,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """A tabletop exercise script: injects with expected detection, containment and escalation, and questions."""
    import json

    from modelshield.threat import builtin_rules, load_rules
    from modelshield.threat.case_studies import case_study as find_study
    from modelshield.threat.tabletop import (
        builtin_playbook,
        exercise_json,
        from_case_study,
        from_report,
        load_playbook,
        render_exercise_markdown,
    )

    if format is StudyFormat.table:
        raise InputError("tabletop writes --format markdown or json")
    book = load_playbook(settings) if settings else builtin_playbook()
    if case_study is not None:
        if system is not None or demo:
            raise InputError("give a system, --demo or --case-study (one of them)")
        libraries = (builtin_rules(), *(load_rules(p) for p in rules))
        exercise = from_case_study(find_study(case_study, *libraries), book, libraries, interval=interval)
    else:
        _, report, _ = _report(system, demo, rules, status)
        exercise = from_report(report, book, injects=injects, interval=interval)
    text = (
        json.dumps(exercise_json(exercise), indent=2) + "\n"
        if format is StudyFormat.json
        else render_exercise_markdown(exercise)
    )
    if out is None:
        typer.echo(text, nl=False)
    else:
        _write(out, text)


@threat_app.command("example")
def example_command() -> None:
    """Print the demo system's YAML: a starting point for describing your own."""
    from modelshield.threat import demo_text

    typer.echo(demo_text(), nl=False)


def register(app: typer.Typer) -> None:
    """Add `modelshield threat`."""
    app.add_typer(threat_app, name="threat", help="Threat modeling as code: findings, diagram, CI gate.")
