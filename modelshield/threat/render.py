"""A threat report as JSON, Markdown, HTML or SARIF; ATLAS names come from the vendored release.

SARIF goes through ``modelshield.core.sarif`` (the one SARIF writer): each rule is a SARIF rule, each open
finding a result located at the system description, fingerprinted by the finding's stable id so code scanning
keeps one alert per threat across runs. Accepted, mitigated and false-positive findings are left out of SARIF
(they are decisions already taken) but counted in the run's properties.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from modelshield.core.findings import Finding
from modelshield.core.sarif import artifact_uri, render_sarif
from modelshield.threat.atlas import MITIGATION_URI, TECHNIQUE_URI, load_atlas
from modelshield.threat.evidence import Evidence
from modelshield.threat.findings import Status, ThreatFinding, ThreatReport
from modelshield.threat.rules import builtin_rules


def _owasp_name(owasp_id: str) -> str:
    return builtin_rules().owasp.get(owasp_id, owasp_id)


def report_json(report: ThreatReport, source: str | None = None) -> dict[str, Any]:
    """The report as plain data: findings with ATLAS and OWASP names resolved, counts and stale decisions."""
    atlas = load_atlas()
    findings = []
    for f in report.findings:
        item = f.model_dump(mode="json")
        item["atlas_names"] = {t: atlas.name(t) for t in f.atlas}
        item["owasp_names"] = {o: _owasp_name(o) for o in f.owasp}
        for m in item["mitigations"]:
            if m["atlas"]:
                m["atlas_name"] = atlas.name(m["atlas"])
        findings.append(item)
    return {
        "system": report.system,
        "source": source,
        "atlas_version": atlas.version,
        "counts": report.counts(),
        "findings": findings,
        "stale": {fid: d.model_dump(mode="json") for fid, d in report.stale.items()},
        "evidence": [ev.model_dump(mode="json") for ev in report.evidence],
    }


def render_json(report: ThreatReport, source: str | None = None) -> str:
    return json.dumps(report_json(report, source), indent=2, ensure_ascii=False) + "\n"


def _atlas_md(ids: list[str]) -> str:
    atlas = load_atlas()
    return ", ".join(f"[{t}]({TECHNIQUE_URI.format(t)}) {atlas.name(t)}" for t in ids) or "—"


def _mitigation_text(f: ThreatFinding) -> list[str]:
    atlas = load_atlas()
    lines = []
    for m in f.mitigations:
        head = " — ".join(
            x for x in (m.atlas and f"{m.atlas} {atlas.name(m.atlas)}", m.control and f"`{m.control}`") if x
        )
        lines.append(f"{head}: {m.action}" if head else m.action)
    return lines


def _evidence_md(ev: Evidence) -> str:
    return f"- Evidence ({ev.kind}, `{ev.path}`): {'passed' if ev.passed else '**failed**'} — {ev.summary}"


def render_markdown(report: ThreatReport, source: str | None = None) -> str:
    """A page for a pull request or a wiki: a summary table, then each finding with its mitigations."""
    counts = report.counts()
    out = [f"# Threat model: {report.system}", ""]
    if source:
        out += [f"Source: `{source}` · ATLAS {load_atlas().version}", ""]
    out += [", ".join(f"{n} {s}" for s, n in counts.items()), ""]
    out += ["| id | severity | status | threat | on | STRIDE | ATLAS | OWASP ML |", "|---|---|---|---|---|---|---|---|"]
    for f in report.findings:
        out.append(
            f"| {f.id} | {f.severity.value} | {f.status.value} | {f.title} | `{f.element}` | {', '.join(f.stride)} "
            f"| {', '.join(f.atlas) or '—'} | {', '.join(f.owasp) or '—'} |"
        )
    for f in report.findings:
        out += ["", f"## {f.id}: {f.title} (`{f.element}`)", "", f.description, ""]
        out.append(f"- Rule `{f.rule}`, severity **{f.severity.value}**, status **{f.status.value}**")
        if f.severity_basis:
            out.append(f"- Severity from: {f.severity_basis}")
        if f.note:
            out.append(f"- Note: {f.note}")
        out += [_evidence_md(ev) for ev in f.evidence]
        out.append(f"- ATLAS: {_atlas_md(f.atlas)}")
        if f.owasp:
            out.append(f"- OWASP ML Top 10: {', '.join(f'{o} {_owasp_name(o)}' for o in f.owasp)}")
        out += [f"- Mitigation: {line}" for line in _mitigation_text(f)]
    if report.evidence:
        out += ["", "## Evidence", "", "| check | on | passed | result | file |", "|---|---|---|---|---|"]
        out += [
            f"| {ev.kind} | `{ev.element}` | {'yes' if ev.passed else '**no**'} | {ev.summary} | `{ev.path}` |"
            for ev in report.evidence
        ]
    if report.stale:
        out += ["", "## Stale decisions", "", "Recorded in the status file, but no current finding has these ids:", ""]
        out += [
            f"- {fid}: {d.status.value} ({d.rule} on `{d.element}`) {d.note}".rstrip()
            for fid, d in report.stale.items()
        ]
    return "\n".join(out) + "\n"


_SEVERITY_COLOUR = {"critical": "#7f1d1d", "high": "#b91c1c", "medium": "#b45309", "low": "#1d4ed8", "info": "#4b5563"}


def render_html(report: ThreatReport, source: str | None = None, svg: str | None = None) -> str:
    """One self-contained page (no scripts, no remote assets); the data-flow diagram inline when given."""
    atlas = load_atlas()
    e = html.escape
    rows = []
    for f in report.findings:
        techniques = ", ".join(f'<a href="{e(TECHNIQUE_URI.format(t))}">{e(t)}</a> {e(atlas.name(t))}' for t in f.atlas)
        mitigations = "".join(
            "<li>"
            + (
                f'<a href="{e(MITIGATION_URI.format(m.atlas))}">{e(m.atlas)}</a> {e(atlas.name(m.atlas))}: '
                if m.atlas
                else ""
            )
            + (f"<code>{e(m.control)}</code> — " if m.control else "")
            + f"{e(m.action)}</li>"
            for m in f.mitigations
        )
        colour = _SEVERITY_COLOUR[f.severity.value]
        rows.append(
            f'<tr><td><code>{e(f.id)}</code></td><td style="color:{colour}"><b>{e(f.severity.value)}</b></td>'
            f"<td>{e(f.status.value)}</td><td><b>{e(f.title)}</b><br>{e(f.description)}"
            + (f"<br>severity from: {e(f.severity_basis)}" if f.severity_basis else "")
            + (f"<br><i>{e(f.note)}</i>" if f.note else "")
            + "".join(
                f"<br>evidence ({e(ev.kind)}, <code>{e(ev.path)}</code>): "
                f"<b>{'passed' if ev.passed else 'failed'}</b> — {e(ev.summary)}"
                for ev in f.evidence
            )
            + f"</td><td><code>{e(f.element)}</code></td><td>{e(', '.join(f.stride))}</td><td>{techniques or '—'}</td>"
            f"<td>{e(', '.join(f.owasp) or '—')}</td><td><ul>{mitigations}</ul></td></tr>"
        )
    stale = "".join(
        f"<li><code>{e(fid)}</code>: {e(d.status.value)} ({e(d.rule)} on <code>{e(d.element)}</code>)</li>"
        for fid, d in report.stale.items()
    )
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items())
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>Threat model: {e(report.system)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.4em;vertical-align:top}ul{margin:0;padding-left:1.2em}"
        "</style></head><body>"
        f"<h1>Threat model: {e(report.system)}</h1>"
        f"<p>{e(source or '')} · ATLAS {e(atlas.version)} · {e(counts)}</p>"
        + (f"<div>{svg[svg.find('<svg') :]}</div>" if svg else "")
        + "<table><tr><th>id</th><th>severity</th><th>status</th><th>threat</th><th>on</th><th>STRIDE</th>"
        "<th>ATLAS</th><th>OWASP ML</th><th>mitigations</th></tr>"
        + "".join(rows)
        + "</table>"
        + (f"<h2>Stale decisions</h2><ul>{stale}</ul>" if stale else "")
        + "</body></html>\n"
    )


def _as_core_finding(f: ThreatFinding) -> Finding:
    return Finding(
        id=f.rule,
        title=f.title,
        description=f.description,
        metric=f"{f.target} {f.element}",
        severity=f.severity,
        atlas=f.atlas,
        owasp_ml=f.owasp,
        remediation=" ".join(_mitigation_text(f)),
        evidence={
            "finding_id": f.id,
            "stride": f.stride,
            "status": f.status.value,
            "checks": [{"kind": ev.kind, "path": ev.path, "passed": ev.passed} for ev in f.evidence],
        },
    )


def render_sarif_report(report: ThreatReport, source: str | None = None) -> str:
    """SARIF 2.1.0 with one result per open finding, located at the system description."""
    uri = artifact_uri(source) if source else "threat-model.yaml"
    located = [(_as_core_finding(f), uri) for f in report.findings if f.status is Status.open]
    properties = {"system": report.system, "counts": report.counts(), "stale": sorted(report.stale)}
    return render_sarif(located, properties=properties)


RENDERERS: dict[str, Callable[[ThreatReport, str | None], str]] = {
    "json": render_json,
    "markdown": render_markdown,
    "html": render_html,
    "sarif": render_sarif_report,
}

__all__ = ["RENDERERS", "render_html", "render_json", "render_markdown", "render_sarif_report", "report_json"]
