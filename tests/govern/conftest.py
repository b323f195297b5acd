"""Fixtures: a real pipeline run (ingest → train → register → deploy) on scikit-learn digits, small enough for
the default run, and a gateway audit log holding predictions made by the version it deployed."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelshield.audit import AuditLog
from modelshield.pipeline import load_pipeline, run_pipeline
from modelshield.registry import Registry

REFERENCE, INCOMING = 300, 200


@dataclass(frozen=True)
class PipelineRun:
    system: Path
    run: Path
    db: str  # the registry's database (and its audit log, and the lineage store)
    gateway_db: str  # the gateway's audit log
    request_ids: list[str]


def _csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    frame = pd.DataFrame(np.round(x, 4), columns=[f"p{i}" for i in range(x.shape[1])])
    frame["label"] = y
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def _pipeline(system: Path, db: str) -> Path:
    doc = {
        "name": "digits",
        "artifacts": {"incoming": "data/incoming.csv", "reference": "data/reference.csv"},
        "stages": [
            {
                "name": "ingest",
                "kind": "ingest",
                "inputs": {"data": "incoming", "reference": "reference"},
                "outputs": {"accepted": "training-data"},
                "policy": {"label": "label", "max_quarantined_fraction": 0.5, "fail_on_drift": False},
            },
            {
                "name": "train",
                "kind": "train",
                "inputs": {"data": "training-data"},
                "outputs": {"model": "model"},
                "policy": {
                    "method": "standard",
                    "arch": "modelshield.demo:DigitsCNN",
                    "epochs": 1,
                    "label": "label",
                    "input_shape": [1, 8, 8],
                },
            },
            {
                "name": "register",
                "kind": "register",
                "inputs": {"model": "model", "data": "training-data"},
                "policy": {"model_name": "digits", "owner": "ml-team", "db": db},
            },
            {"name": "deploy", "kind": "deploy", "policy": {"stage": "production"}},
        ],
    }
    path = system / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _predictions(gateway_db: str, registry_db: str) -> list[str]:
    """Predict records as the gateway's pipeline writes them (serve/pipeline.py: ``audited`` + ``predict``)."""
    with Registry.open(registry_db) as reg:
        mv = reg.get("digits")
    ids = [f"req-{i:04d}" for i in range(5)]
    with AuditLog.open(gateway_db) as log:
        for rid in ids:
            log.append(
                {
                    "action": "predict",
                    "model": "digits",
                    "request_id": rid,
                    "client_ip": "127.0.0.1",
                    "actor": {"subject": "forms-app", "method": "api_key", "tenant": None},
                    "input_digest": "0" * 64,
                    "model_version": mv.version,
                    "model_digest": mv.digest,
                    "decision": "allow",
                    "status_code": 200,
                    "latency_ms": 1.0,
                    "time": "2026-12-06T10:00:00+00:00",
                }
            )
    return ids


@pytest.fixture(scope="session")
def pipeline_source(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """One real run, shared: read it, or copy it (``pipeline_run``) before changing anything."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("govern")
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    system = root / "system"
    _csv(system / "data/reference.csv", x[:REFERENCE], y[:REFERENCE])
    _csv(system / "data/incoming.csv", x[REFERENCE : REFERENCE + INCOMING], y[REFERENCE : REFERENCE + INCOMING])
    db = f"sqlite:///{root / 'modelshield.db'}"
    config, base = load_pipeline(_pipeline(system, db))
    outcome = run_pipeline(config, base, run_dir=root / "run")
    assert outcome.status == "passed", outcome.reason
    gateway_db = f"sqlite:///{root / 'gateway.db'}"
    return PipelineRun(system, root / "run", db, gateway_db, _predictions(gateway_db, db))


@pytest.fixture
def pipeline_run(pipeline_source: PipelineRun, tmp_path: Path) -> PipelineRun:
    """A private copy of the run (its registry and audit databases too)."""
    src_root = pipeline_source.run.parent
    root = tmp_path / "govern"
    shutil.copytree(src_root, root, symlinks=False)
    # the registry points at absolute paths under the shared run; the copy keeps those (read-only use)
    return PipelineRun(
        root / "system",
        root / "run",
        f"sqlite:///{root / 'modelshield.db'}",
        f"sqlite:///{root / 'gateway.db'}",
        pipeline_source.request_ids,
    )
