"""Model-file integrity: a static scanner that reads formats by content, judges pickles against an
allow-list, and a loader that only proceeds when the scan passes."""

from modelshield.integrity.allowlist import Verdict
from modelshield.integrity.results import FileReport, ScanReport
from modelshield.integrity.safe_load import safe_load
from modelshield.integrity.scanner import scan_file, scan_paths

__all__ = ["FileReport", "ScanReport", "Verdict", "safe_load", "scan_file", "scan_paths"]
