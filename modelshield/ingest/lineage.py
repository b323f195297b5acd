"""The accepted set's lineage: an OpenLineage ``RunEvent`` (spec 2-0-2) naming what went in and what came out.

Datasets are local files, named as OpenLineage's naming spec says for a file system (namespace ``file``, name
the absolute path). Every dataset carries a ``version`` facet (the SHA-256 of its bytes) and tables a
``schema`` facet (columns and their schema kinds); inputs add a ``dataQualityMetrics`` input facet (records
read), outputs ``outputStatistics`` (records and bytes written). The run id is a UUID derived from the inputs' digests and the settings, so the
same ingestion of the same data is the same run, and a re-run writes the same event.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import modelshield

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
FACETS = "https://openlineage.io/spec/facets"
PRODUCER = f"https://pypi.org/project/modelshield/{modelshield.__version__}"
NAMESPACE = "modelshield"
#: UUIDv5 namespace for run ids (a fixed, random UUID: run ids are uuid5(this, sha256 of inputs + settings))
RUN_NAMESPACE = uuid.UUID("6f1f3c52-8a0e-4d0b-9d43-2b7a1c5e9f10")


@dataclass(frozen=True)
class DatasetRef:
    """A file the run read or wrote, with what the event says about it."""

    path: Path
    digest: str
    records: int | None = None
    size: int | None = None
    fields: tuple[tuple[str, str], ...] = ()  # (column, kind) for a table; empty for the quarantine file


def run_id(digests: list[str], settings: dict[str, Any]) -> str:
    """The same inputs with the same settings give the same id: re-running is the same run."""
    blob = json.dumps({"inputs": digests, "settings": settings}, sort_keys=True, separators=(",", ":"))
    return str(uuid.uuid5(RUN_NAMESPACE, hashlib.sha256(blob.encode("utf-8")).hexdigest()))


#: the standard facets used, at the versions of the vendored spec (spec/facets/*.json ``$id``)
FACET_VERSIONS = {
    "DatasetVersionDatasetFacet": "1-0-1",
    "OutputStatisticsOutputDatasetFacet": "1-0-2",
    "DataQualityMetricsInputDatasetFacet": "1-0-3",
    "JobTypeJobFacet": "2-0-4",
    "SchemaDatasetFacet": "1-2-0",
    "ParentRunFacet": "1-2-0",
    "ErrorMessageRunFacet": "1-0-1",
}


def facet(name: str, **fields: Any) -> dict[str, Any]:
    """A standard facet with its producer and the schema URL of the vendored version."""
    url = f"{FACETS}/{FACET_VERSIONS[name]}/{name}.json#/$defs/{name}"
    return {"_producer": PRODUCER, "_schemaURL": url, **fields}


def _dataset(ref: DatasetRef, *, output: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "namespace": "file",
        "name": str(ref.path.absolute()),
        "facets": {"version": facet("DatasetVersionDatasetFacet", datasetVersion=ref.digest)},
    }
    if ref.fields:
        fields = [{"name": n, "type": t, "ordinal_position": i} for i, (n, t) in enumerate(ref.fields, 1)]
        doc["facets"]["schema"] = facet("SchemaDatasetFacet", fields=fields)
    if output:
        stats = {"rowCount": ref.records, "size": ref.size}
        doc["outputFacets"] = {
            "outputStatistics": facet(
                "OutputStatisticsOutputDatasetFacet", **{k: v for k, v in stats.items() if v is not None}
            )
        }
    elif ref.records is not None:
        doc["inputFacets"] = {
            "dataQualityMetrics": facet("DataQualityMetricsInputDatasetFacet", rowCount=ref.records, columnMetrics={})
        }
    return doc


def run_event(
    run: str,
    job: str,
    event_time: str,
    inputs: list[DatasetRef],
    outputs: list[DatasetRef],
    *,
    event_type: str = "COMPLETE",
    job_type: str = "INGEST",
    run_facets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``RunEvent`` (COMPLETE for one ingestion run by default; a pipeline stage also sends START and FAIL,
    with a ``parent`` run facet naming the pipeline run and an ``errorMessage`` facet saying why it failed)."""
    return {
        "eventType": event_type,
        "eventTime": event_time,
        "producer": PRODUCER,
        "schemaURL": SPEC,
        "run": {"runId": run, **({"facets": run_facets} if run_facets else {})},
        "job": {
            "namespace": NAMESPACE,
            "name": job,
            "facets": {
                "jobType": facet("JobTypeJobFacet", processingType="BATCH", integration="MODELSHIELD", jobType=job_type)
            },
        },
        "inputs": [_dataset(ref, output=False) for ref in inputs],
        "outputs": [_dataset(ref, output=True) for ref in outputs],
    }
