"""Secure ingestion: prove where a table came from, check it against a trusted reference, quarantine what looks
poisoned (with reasons), and hand on the rest with an OpenLineage record.

    from modelshield.ingest import IngestConfig, ingest
    result = ingest("new.csv", "out/", IngestConfig(reference=Path("trusted.csv"), label="y"))
"""

from modelshield.ingest.pipeline import IngestConfig, IngestResult, ingest

__all__ = ["IngestConfig", "IngestResult", "ingest"]
