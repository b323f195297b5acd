"""Model-file integrity: a static scanner that reads formats by content, judges pickles against an
allow-list, and the loaders that decide whether an untrusted model file may be read (``safe_load``)."""

from modelshield.integrity.allowlist import Verdict
from modelshield.integrity.results import FileReport, ScanReport
from modelshield.integrity.safe_load import load_model, safe_load
from modelshield.integrity.scanner import scan_file, scan_paths

__all__ = ["FileReport", "ScanReport", "Verdict", "load_model", "safe_load", "scan_file", "scan_paths"]
