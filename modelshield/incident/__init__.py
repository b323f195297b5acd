"""Incident response: signed evidence bundles that verify offline, forensic readiness, WORM audit storage.

from modelshield.incident import build_bundle, verify_bundle
summary = build_bundle(engine, Path("incident.tar"), private_key, from_seq=100, to_seq=250)
report = verify_bundle("incident.tar", public_key)   # report.ok, report.problems: (check, why)
findings = readiness_findings(engine, public_key=public_key, witness=Path("audit.witness"))
archive_log(engine, WormStore(s3_client(), "audit-worm"))   # needs boto3: pip install 'modelshield[worm]'
"""

from modelshield.incident.bundle import BundleReport, BundleSummary, build_bundle, verify_bundle
from modelshield.incident.readiness import readiness_findings, render_markdown
from modelshield.incident.worm import WormReport, WormStore, archive_log, s3_client, verify_worm

__all__ = [
    "BundleReport",
    "BundleSummary",
    "WormReport",
    "WormStore",
    "archive_log",
    "build_bundle",
    "readiness_findings",
    "render_markdown",
    "s3_client",
    "verify_bundle",
    "verify_worm",
]
