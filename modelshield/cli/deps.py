"""``modelshield deps``: vulnerability audit, licence policy and the approval list CI enforces.

Exit codes: 0 ok, 1 a policy violation (a vulnerability at or above --fail-on, a denied or unknown licence,
an unapproved library or model), 2 bad input (one line on stderr).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from packaging.utils import canonicalize_name

from modelshield.cli._options import emit_text
from modelshield.core.errors import InputError, MissingFileError

if TYPE_CHECKING:
    from modelshield.supplychain.vulns import Package

deps_app = typer.Typer(
    help="Dependency audit, licence policy and approvals for libraries and models.", no_args_is_help=True
)


class AuditFormat(StrEnum):
    table = "table"
    json = "json"
    sarif = "sarif"
    cyclonedx = "cyclonedx"


class TextFormat(StrEnum):
    table = "table"
    json = "json"


class FailOn(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class LicenceFailOn(StrEnum):
    deny = "deny"
    review = "review"


RequirementsOption = Annotated[
    Path | None,
    typer.Option(
        "--requirements",
        "-r",
        help="A pinned requirements file (pip freeze, pip-compile, uv pip compile/export) or a lock file (pylock.toml, uv.lock, poetry.lock, Pipfile.lock, conda environment.yml) instead of the environment.",
    ),
]
SbomOption = Annotated[Path | None, typer.Option(help="CycloneDX JSON SBOM whose pkg:pypi components to use instead.")]
OutOption = Annotated[Path | None, typer.Option("--out", "-o", help="Write the report here instead of stdout.")]
ApprovalsOption = Annotated[
    Path, typer.Option("--approvals", envvar="MODELSHIELD_APPROVALS", help="Approval list (TOML).")
]


def _packages(requirements: Path | None, sbom: Path | None) -> list[Package]:
    """The packages to work on: a requirements/lock file, an SBOM, or (default) this environment."""
    from modelshield.supplychain.vulns import installed_packages, load_sbom, requirements_packages, sbom_packages

    if requirements is not None and sbom is not None:
        raise InputError("give --requirements or --sbom, not both")
    if requirements is not None:
        return requirements_packages(requirements)
    if sbom is not None:
        return [pkg for pkg, _ in sbom_packages(load_sbom(sbom), str(sbom))]
    return installed_packages()


@deps_app.command("audit")
def audit_command(
    osv: Annotated[
        Path | None,
        typer.Option(help="Audit offline against this OSV export: a JSON record or list, a folder or a zip of *.json."),
    ] = None,
    requirements: RequirementsOption = None,
    sbom: SbomOption = None,
    format: Annotated[
        AuditFormat,
        typer.Option(
            "--format",
            "-f",
            help="table, json, sarif, or cyclonedx (the --sbom given, or a new BOM, with 'vulnerabilities').",
        ),
    ] = AuditFormat.table,
    fail_on: Annotated[
        FailOn, typer.Option(help="Lowest severity that fails (unrated advisories always fail).")
    ] = FailOn.low,
    ignore: Annotated[
        list[str] | None,
        typer.Option("--ignore", help="Advisory id or alias to accept (repeat); say why in your CI config."),
    ] = None,
    service: Annotated[str, typer.Option(help="Online only: pip-audit's service, pypi or osv.")] = "pypi",
    osv_url: Annotated[str | None, typer.Option(help="Online only: a self-hosted OSV API (…/v1/query).")] = None,
    timeout: Annotated[float, typer.Option(help="Online only: seconds per request.")] = 15,
    out: OutOption = None,
) -> None:
    """Find known vulnerabilities in the installed packages (or a requirements file, or an SBOM)."""
    from modelshield.supplychain.osv import load_advisories
    from modelshield.supplychain.vulns import audit_offline, audit_online, load_sbom, render_audit

    packages = _packages(requirements, sbom)
    if osv is not None:
        report = audit_offline(packages, load_advisories(osv))
    else:
        report = audit_online(packages, service=service, osv_url=osv_url, timeout=timeout)
    if ignore:
        accepted = set(ignore)
        report.vulnerabilities = [v for v in report.vulnerabilities if not accepted & {v.id, *v.aliases}]
    emit_text(render_audit(report, format.value, fail_on.value, load_sbom(sbom) if sbom is not None else None), out)
    raise typer.Exit(1 if report.failing(fail_on.value) else 0)


@deps_app.command("licenses")
def licenses_command(
    policy: Annotated[Path | None, typer.Option(help="Licence policy (TOML); default: the built-in one.")] = None,
    lock: Annotated[Path | None, typer.Option(help="Provenance lock whose models and datasets to check too.")] = None,
    model_license: Annotated[
        list[str] | None, typer.Option("--model-license", help="NAME=SPDX-EXPRESSION of a model or dataset (repeat).")
    ] = None,
    fail_on: Annotated[
        LicenceFailOn,
        typer.Option(help="deny: denied and unknown licences fail; review: those needing review fail too."),
    ] = LicenceFailOn.deny,
    show_policy: Annotated[bool, typer.Option("--show-policy", help="Print the built-in policy and exit.")] = False,
    format: Annotated[TextFormat, typer.Option("--format", "-f")] = TextFormat.table,
    all_rows: Annotated[bool, typer.Option("--all", help="Table: list allowed packages too.")] = False,
) -> None:
    """Check every installed package's licence (and the model's) against an allow/review/deny policy."""
    from modelshield.supplychain.licenses import DEFAULT_POLICY, check_licences, load_policy

    if show_policy:
        typer.echo(DEFAULT_POLICY, nl=False)
        return
    models = []
    for item in model_license or []:
        name, sep, expression = item.partition("=")
        if not sep or not name.strip() or not expression.strip():
            raise InputError(f"--model-license {item!r} must be NAME=SPDX-EXPRESSION, e.g. resnet=Apache-2.0")
        models.append((name.strip(), expression.strip()))
    rules = load_policy(policy)
    report = check_licences(rules, lock=lock, model_licences=models)
    failing = report.failing(fail_on.value)
    if format is TextFormat.json:
        typer.echo(json.dumps(report.to_dict(fail_on.value), indent=2))
    else:
        for r in report.results:
            if all_rows or r.status != "allowed" or r in failing:
                mark = " ✗" if r in failing else f" (accepted: {r.accepted})" if r.accepted else ""
                typer.echo(
                    f"{r.status:8} {r.kind:8} {r.name} {r.version}  {r.licence or '-'}  [{r.source}] {r.reason}{mark}"
                )
        counts = {s: sum(r.status == s for r in report.results) for s in ("allowed", "review", "unknown", "denied")}
        typer.echo(
            ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; {len(failing)} failing (--fail-on {fail_on.value})"
        )
    raise typer.Exit(1 if failing else 0)


def _artifacts(models: list[Path] | None, datasets: list[Path] | None) -> list[tuple[str, str, Path]]:
    """(kind, name, path) for --model/--dataset values, given as PATH or NAME=PATH."""
    found = []
    for kind, values in (("model", models or []), ("dataset", datasets or [])):
        for value in values:
            name, sep, rest = str(value).partition("=")
            path = Path(rest) if sep else value
            if not path.exists():
                raise MissingFileError(f"{kind} {path} does not exist")
            found.append((kind, name if sep else path.name, path))
    return found


ModelOption = Annotated[
    list[Path] | None, typer.Option("--model", help="Model file or folder, PATH or NAME=PATH (repeat).")
]
DatasetOption = Annotated[
    list[Path] | None, typer.Option("--dataset", help="Dataset file or folder, PATH or NAME=PATH (repeat).")
]


@deps_app.command("approve")
def approve_command(
    names: Annotated[
        list[str] | None, typer.Argument(help="Libraries to approve at their installed (or listed) version.")
    ] = None,
    by: Annotated[str, typer.Option("--by", help="Who approves (name or e-mail).")] = "",
    reason: Annotated[str, typer.Option(help="Why: what was reviewed.")] = "",
    version: Annotated[
        str | None,
        typer.Option(
            "--version", help="Specifier to approve instead of the exact version, e.g. '>=2.1,<3' ('' for any)."
        ),
    ] = None,
    all_new: Annotated[bool, typer.Option("--all", help="Approve every library that `check` would fail now.")] = False,
    model: ModelOption = None,
    dataset: DatasetOption = None,
    approvals: ApprovalsOption = Path("modelshield-approvals.toml"),
    requirements: RequirementsOption = None,
    sbom: SbomOption = None,
) -> None:
    """Record an approval (who, when, why) for libraries, models or datasets; the other entries are kept."""
    from modelshield.supplychain.approval import Approvals, approve, either, load_approvals, unapproved

    artifacts = _artifacts(model, dataset)
    if not (names or all_new or artifacts):
        raise InputError("nothing to approve: name libraries, or pass --all, --model or --dataset")
    found = [pkg for pkg in _packages(requirements, sbom) if not pkg.skip]
    pins: dict[str, list[str]] = {}  # a universal lock pins a library at one version per platform: approve them all
    for pkg in found:
        pins.setdefault(pkg.key, []).append(pkg.version)
    display = {pkg.key: pkg.name for pkg in found}
    chosen = []
    for name in names or []:
        key = canonicalize_name(name)
        if version is not None:
            chosen.append((display.get(key, name), version))
        elif key not in pins:
            raise InputError(f"{name} is not installed (or not in the given file); give --version to approve it anyway")
        else:
            chosen.append((display[key], either(pins[key])))
    if all_new:
        current = load_approvals(approvals) if approvals.exists() else Approvals()
        keys = dict.fromkeys(pkg.key for pkg in unapproved(current, found))
        chosen += [(display[k], either(pins[k])) for k in keys]
    approve(approvals, approved_by=by, reason=reason, libraries=chosen, artifacts=artifacts)
    for name, spec in chosen:
        typer.echo(f"approved library {name} {spec or '(any version)'}")
    for kind, name, path in artifacts:
        typer.echo(f"approved {kind} {name} ({path})")
    typer.echo(f"by {by.strip()} in {approvals}")


@deps_app.command("check")
def check_command(
    approvals: ApprovalsOption = Path("modelshield-approvals.toml"),
    model: ModelOption = None,
    dataset: DatasetOption = None,
    requirements: RequirementsOption = None,
    sbom: SbomOption = None,
    format: Annotated[TextFormat, typer.Option("--format", "-f")] = TextFormat.table,
) -> None:
    """Fail (exit 1) on any library, model or dataset that is new or changed since it was approved: the CI gate."""
    from modelshield.supplychain.approval import check, load_approvals

    report = check(load_approvals(approvals), _packages(requirements, sbom), _artifacts(model, dataset))
    if format is TextFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for r in report.results:
            if r.status != "approved":
                was = f" (approved: {r.approved} by {r.approved_by})" if r.approved else ""
                typer.echo(f"{r.status:8} {r.kind:8} {r.name} {r.found}{was}")
        bad = sum(r.status != "approved" for r in report.results)
        typer.echo(
            f"{len(report.results) - bad} of {len(report.results)} approved in {approvals}"
            + (f"; run `modelshield deps approve` for the {bad} above after review" if bad else "")
        )
    raise typer.Exit(0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    """Add `modelshield deps ...`."""
    app.add_typer(
        deps_app, name="deps", help="Dependency audit, licence policy and approvals for libraries and models."
    )
