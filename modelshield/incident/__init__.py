"""Incident response: signed evidence bundles that verify offline, forensic readiness, WORM audit storage.

from modelshield.incident import build_bundle, verify_bundle
summary = build_bundle(engine, Path("incident.tar"), private_key, from_seq=100, to_seq=250)
report = verify_bundle("incident.tar", public_key)   # report.ok, report.problems
"""

from modelshield.incident.bundle import BundleReport, BundleSummary, build_bundle, verify_bundle

__all__ = ["BundleReport", "BundleSummary", "build_bundle", "verify_bundle"]
