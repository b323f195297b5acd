"""Vulnerability audit of Python packages: the installed environment, a pinned requirements/lock file, or an SBOM.

Two sources. Offline, an OSV advisory export (:mod:`modelshield.supplychain.osv`) is matched here, with nothing
sent anywhere: the air-gapped route pip-audit lacks (pypa/pip-audit#698). Online, pip-audit asks PyPI's or
OSV's service; it is handed the package list as pinned requirements with ``--no-deps --disable-pip``, so it
never resolves or builds anything (resolving a requirements file can run code: pip-audit's "Security Model").
pip-audit's answers carry no severity, so those findings are ``unknown``, which every ``--fail-on`` level fails.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from packaging.utils import canonicalize_name
from rich.console import Console
from rich.table import Table

from modelshield import __version__
from modelshield.core.errors import DependencyError, FormatError, InputError, MissingFileError, ModelShieldError
from modelshield.core.findings import Finding, Severity
from modelshield.core.sarif import artifact_uri
from modelshield.core.sarif import render_sarif as sarif_text
from modelshield.supplychain.distributions import installed_distributions, metadata_field
from modelshield.supplychain.lockfiles import Package
from modelshield.supplychain.lockfiles import requirements_packages as requirements_packages  # the CLI reads it here
from modelshield.supplychain.osv import SEVERITIES, AdvisoryDatabase, Range
from modelshield.supplychain.sbom import SPEC_VERSION, pypi_purl

Json = dict[str, Any]


class AuditServiceError(ModelShieldError):
    """The online vulnerability service could not be reached or answered with something unusable."""

    hint = "audit offline with --osv FILE (an OSV export, e.g. https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip)"


def installed_packages() -> list[Package]:
    """The distributions this interpreter imports from (the first on ``sys.path`` wins), by name."""
    found = []
    for key, dist in sorted(installed_distributions().items()):
        where = getattr(dist, "_path", None)
        found.append(Package(metadata_field(dist, "Name") or key, dist.version, str(where or "")))
    return found


def _purl_package(purl: str, where: str) -> Package | None:
    """``pkg:pypi/name@version`` (qualifiers and subpath ignored); other purl types are not Python packages."""
    if not purl.startswith("pkg:pypi/"):
        return None
    body = purl.removeprefix("pkg:pypi/").split("?", 1)[0].split("#", 1)[0]
    name, _, version = body.partition("@")
    if not name or not version:
        raise FormatError(f"{where}: purl {purl!r} has no version")
    return Package(unquote(name), unquote(version), where)


def load_sbom(path: Path | str) -> Json:
    """A CycloneDX JSON document, refused whole if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"SBOM {p} does not exist")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"SBOM {p} is not valid JSON ({exc})") from None
    if (
        not isinstance(doc, dict)
        or doc.get("bomFormat") != "CycloneDX"
        or not isinstance(doc.get("components", []), list)
    ):
        raise FormatError(f"{p} is not a CycloneDX JSON SBOM (bomFormat must be 'CycloneDX')")
    return doc


def sbom_packages(doc: Json, where: str = "SBOM") -> list[tuple[Package, str]]:
    """(package, bom-ref) for every ``pkg:pypi`` component, nested components included."""
    found, stack = [], list(reversed(doc.get("components") or []))
    while stack:
        component = stack.pop()
        if not isinstance(component, dict):
            raise FormatError(f"{where}: a component is not an object")
        purl = component.get("purl")
        if isinstance(purl, str) and (pkg := _purl_package(purl, where)) is not None:
            found.append((pkg, str(component.get("bom-ref") or purl)))
        stack.extend(reversed(component.get("components") or []))
    return found


@dataclass(frozen=True)
class Vulnerability:
    """One advisory affecting one package version."""

    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str
    score: float | None = None
    vector: str | None = None
    fixed_in: tuple[str, ...] = ()
    location: str = ""
    references: tuple[str, ...] = ()

    def at_least(self, threshold: str) -> bool:
        """Unknown severity meets every threshold: an unrated advisory is not a safe one."""
        return self.severity == "unknown" or SEVERITIES.index(self.severity) >= SEVERITIES.index(threshold)


@dataclass
class AuditReport:
    """What was audited against which source, what was found, and what could not be audited."""

    source: str
    packages: list[Package]
    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def failing(self, threshold: str) -> list[Vulnerability]:
        return [v for v in self.vulnerabilities if v.at_least(threshold)]

    def to_dict(self, threshold: str = "low") -> Json:
        return {
            "source": self.source,
            "audited": len(self.packages) - len(self.skipped),
            "fail_on": threshold,
            "passed": not self.failing(threshold),
            "vulnerabilities": [asdict(v) for v in self.vulnerabilities],
            "skipped": self.skipped,
        }


def _fixes(ranges: Sequence[Range], version: str) -> tuple[str, ...]:
    """The lowest ``fixed`` version above ``version`` in each range: the upgrades that end this advisory."""
    found = set()
    for rng in ranges:
        try:
            above = sorted(rng.fixes_above(version), key=rng.key())
        except ValueError:
            continue
        found.update(above[:1])
    return tuple(sorted(found))


def audit_offline(packages: Sequence[Package], db: AdvisoryDatabase) -> AuditReport:
    """Match every package against the advisory database; nothing leaves the machine."""
    report = AuditReport(f"osv:{db.source}", list(packages), skipped={p.name: p.skip for p in packages if p.skip})
    for pkg in packages:
        if pkg.skip:
            continue
        for advisory, entry in db.lookup(pkg.name, pkg.version):
            scored = entry.score is not None and (advisory.score is None or entry.score > advisory.score)
            report.vulnerabilities.append(
                Vulnerability(
                    package=pkg.name,
                    version=pkg.version,
                    id=advisory.id,
                    aliases=advisory.aliases,
                    summary=advisory.summary,
                    severity=entry.severity if scored else advisory.severity,
                    score=entry.score if scored else advisory.score,
                    vector=advisory.vector,
                    fixed_in=_fixes(entry.ranges, pkg.version),
                    location=pkg.location,
                    references=advisory.references,
                )
            )
    return report


def _pip_audit_command(requirements: Path, service: str, osv_url: str | None, timeout: float) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "pip_audit",
        "-r",
        str(requirements),
        "--no-deps",
        "--disable-pip",
        "--format",
        "json",
        "--progress-spinner",
        "off",
        "--aliases",
        "on",
        "--desc",
        "on",
        "--vulnerability-service",
        service,
        "--timeout",
        str(int(timeout)),
    ]
    return cmd + (["--osv-url", osv_url] if osv_url else [])


def parse_pip_audit(output: str, packages: Sequence[Package], source: str) -> AuditReport:
    """pip-audit's JSON as a report; a run where no package could be audited is an error, never a pass."""
    try:
        doc = json.loads(output)
        deps = doc["dependencies"]
    except (ValueError, KeyError, TypeError):
        raise AuditServiceError(f"pip-audit gave no JSON report ({output.strip()[:200]!r})") from None
    where = {p.key: p for p in packages}
    report = AuditReport(source, list(packages))
    for dep in deps:
        pkg = where.get(canonicalize_name(dep.get("name", "")), Package(dep.get("name", "?"), dep.get("version", "?")))
        if "skip_reason" in dep:
            report.skipped[pkg.name] = str(dep["skip_reason"])
            continue
        for vuln in dep.get("vulns") or []:
            report.vulnerabilities.append(
                Vulnerability(
                    package=pkg.name,
                    version=pkg.version,
                    id=vuln["id"],
                    aliases=tuple(vuln.get("aliases") or ()),
                    summary=" ".join(str(vuln.get("description") or "").split())[:500],
                    severity="unknown",
                    fixed_in=tuple(vuln.get("fix_versions") or ()),
                    location=pkg.location,
                )
            )
    if packages and len(report.skipped) == len(packages):
        first = next(iter(report.skipped.values()))
        raise AuditServiceError(
            f"pip-audit could not audit any of the {len(packages)} packages; is the service reachable? ({first})"
        )
    return report


def _layers(packages: Sequence[Package]) -> list[list[Package]]:
    """Groups in which no name repeats: pip-audit refuses a requirements file pinning one name twice, which a
    universal lock does (numpy 2.4 for Python 3.11, numpy 2.5 for 3.12)."""
    layers: list[list[Package]] = []
    for pkg in packages:
        layer = next((group for group in layers if all(p.key != pkg.key for p in group)), None)
        if layer is None:
            layers.append(layer := [])
        layer.append(pkg)
    return layers


def audit_online(
    packages: Sequence[Package],
    service: str = "pypi",
    osv_url: str | None = None,
    timeout: float = 15,
) -> AuditReport:
    """Ask PyPI's or OSV's vulnerability service through pip-audit, without letting it resolve or build anything."""
    if service not in ("pypi", "osv"):
        raise InputError(f"service {service!r} is not one of pypi, osv")
    auditable = [p for p in packages if not p.skip]
    if not auditable:
        raise InputError("no packages to audit")
    report = AuditReport(f"pip-audit:{service}", list(packages), skipped={p.name: p.skip for p in packages if p.skip})
    for layer in _layers(auditable):
        part = _pip_audit(layer, service, osv_url, timeout)
        report.vulnerabilities += part.vulnerabilities
        report.skipped.update(part.skipped)
    return report


def _pip_audit(packages: Sequence[Package], service: str, osv_url: str | None, timeout: float) -> AuditReport:
    """One pip-audit run over packages whose names do not repeat."""
    with tempfile.TemporaryDirectory(prefix="modelshield-audit-") as tmp:
        reqs = Path(tmp, "requirements.txt")
        reqs.write_text("".join(f"{p.name}=={p.version}\n" for p in packages), encoding="utf-8")
        env = {**os.environ, "PIP_NO_INPUT": "1"}
        try:
            proc = subprocess.run(
                _pip_audit_command(reqs, service, osv_url, timeout),
                capture_output=True,
                text=True,
                env=env,
                timeout=60 + len(packages) * timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise AuditServiceError("pip-audit did not finish in time") from None
    if "No module named pip_audit" in proc.stderr:
        raise DependencyError(
            "pip-audit is not installed", hint="pip install 'modelshield[vuln]', or audit offline with --osv FILE"
        )
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise AuditServiceError(f"pip-audit failed: {lines[-1][:300] if lines else f'exit {proc.returncode}'}")
    return parse_pip_audit(proc.stdout, packages, f"pip-audit:{service}")


def _cyclonedx_rating(v: Vulnerability) -> Json:
    if v.score is None or v.vector is None:
        return {"severity": v.severity}
    method = "CVSSv31" if v.vector.startswith("CVSS:3.1") else "CVSSv3" if v.vector.startswith("CVSS:3") else "CVSSv2"
    return {"score": v.score, "severity": v.severity, "method": method, "vector": v.vector}


def cyclonedx_vulnerabilities(report: AuditReport, refs: dict[tuple[str, str], str]) -> list[Json]:
    """CycloneDX 1.6 ``vulnerabilities``: one per advisory, ``affects`` pointing at the bom-refs of the affected
    components, found by (PEP 503 name, version): a lock may pin two versions of one name."""
    grouped: dict[str, list[Vulnerability]] = {}
    for v in report.vulnerabilities:
        grouped.setdefault(v.id, []).append(v)
    entries = []
    for vid, hits in grouped.items():
        first = hits[0]
        entry: Json = {
            "bom-ref": f"vuln:{vid}",
            "id": vid,
            "source": {"name": "OSV", "url": f"https://osv.dev/vulnerability/{vid}"},
            "ratings": [_cyclonedx_rating(first)],
            "description": first.summary,
            "affects": [
                {"ref": ref, "versions": [{"version": h.version, "status": "affected"}]}
                for h in hits
                if (ref := refs.get((canonicalize_name(h.package), h.version)))
            ],
        }
        if first.aliases:
            entry["references"] = [
                {"id": a, "source": {"name": "OSV", "url": f"https://osv.dev/vulnerability/{a}"}} for a in first.aliases
            ]
        if fixes := sorted({f for h in hits for f in h.fixed_in}):
            entry["recommendation"] = f"Upgrade to {' or '.join(fixes)}"
        if first.references:
            entry["advisories"] = [{"url": u} for u in first.references]
        entries.append(entry)
    return entries


def sbom_with_vulnerabilities(doc: Json, report: AuditReport) -> Json:
    """The SBOM with its ``vulnerabilities`` replaced by this audit's (an audit states the present, not history)."""
    refs = {(pkg.key, pkg.version): ref for pkg, ref in sbom_packages(doc)}
    return {**doc, "vulnerabilities": cyclonedx_vulnerabilities(report, refs)}


def cyclonedx_document(report: AuditReport) -> Json:
    """A CycloneDX 1.6 BOM of the audited packages and their vulnerabilities (no model subject)."""
    components = [
        {
            "type": "library",
            "bom-ref": pypi_purl(p.name, p.version),
            "name": p.name,
            "version": p.version,
            "purl": pypi_purl(p.name, p.version),
        }
        for p in report.packages
        if not p.skip
    ]
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {"tools": {"components": [{"type": "application", "name": "modelshield", "version": __version__}]}},
        "components": components,
    }
    return {
        **doc,
        "vulnerabilities": cyclonedx_vulnerabilities(
            report, {(canonicalize_name(c["name"]), c["version"]): c["bom-ref"] for c in components}
        ),
    }


def _finding(v: Vulnerability) -> Finding:
    """A vulnerability in the shape the SARIF renderer shares with assess and scan; unrated shows as medium."""
    ids = ", ".join(v.aliases)
    fix = (
        f"Upgrade {v.package} to {' or '.join(v.fixed_in)}."
        if v.fixed_in
        else f"No fixed {v.package} release is listed."
    )
    return Finding(
        id=v.id,
        title=f"{v.package} {v.version}: {v.id}" + (f" ({ids})" if ids else ""),
        description=v.summary or v.id,
        metric="CVSS base score" if v.score is not None else "severity not rated",
        value=v.score,
        severity=Severity(v.severity) if v.severity != "unknown" else Severity.medium,
        remediation=fix,
        evidence={
            "package": v.package,
            "version": v.version,
            "aliases": list(v.aliases),
            "severity": v.severity,
            "vector": v.vector,
            "fixed_in": list(v.fixed_in),
        },
    )


def _location(v: Vulnerability) -> str:
    """The file that brought the package in: its requirements file, or its installed METADATA."""
    path = Path(v.location)
    return artifact_uri(str(path / "METADATA") if path.suffix == ".dist-info" else v.location or None)


def render_sarif(report: AuditReport) -> str:
    """One SARIF 2.1.0 run, one rule per advisory, one result per affected package."""
    return sarif_text([(_finding(v), _location(v)) for v in report.vulnerabilities])


def render_table(report: AuditReport, threshold: str) -> str:
    """One row per vulnerability, then a summary line and the packages that could not be audited."""
    table = Table("package", "version", "advisory", "aliases", "severity", "fixed in")
    for v in sorted(report.vulnerabilities, key=lambda v: (-SEVERITIES.index(v.severity), v.package, v.id)):
        sev = v.severity + (f" {v.score:.1f}" if v.score is not None else "") + (" ✗" if v.at_least(threshold) else "")
        table.add_row(v.package, v.version, v.id, ", ".join(v.aliases) or "-", sev, ", ".join(v.fixed_in) or "-")
    out = io.StringIO()
    console = Console(file=out, width=160, highlight=False, markup=False)  # advisory text prints as written
    if report.vulnerabilities:
        console.print(table)
    hit = len({v.package for v in report.vulnerabilities})
    audited = len(report.packages) - len(report.skipped)
    console.print(
        f"{len(report.vulnerabilities)} vulnerabilities in {hit} of {audited} packages ({report.source}); "
        f"{len(report.failing(threshold))} at or above {threshold}",
        markup=False,
    )
    for name, why in report.skipped.items():
        console.print(f"not audited: {name}: {why}", markup=False)
    return out.getvalue()


def render_audit(report: AuditReport, fmt: str, threshold: str = "low", sbom: Json | None = None) -> str:
    """The report as ``table``, ``json``, ``sarif`` or ``cyclonedx`` (the given SBOM, or a new BOM, with vulnerabilities)."""
    if fmt == "table":
        return render_table(report, threshold)
    if fmt == "json":
        return json.dumps(report.to_dict(threshold), indent=2) + "\n"
    if fmt == "sarif":
        return render_sarif(report)
    if fmt == "cyclonedx":
        doc = sbom_with_vulnerabilities(sbom, report) if sbom is not None else cyclonedx_document(report)
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    raise InputError(f"format {fmt!r} is not one of table, json, sarif, cyclonedx")
