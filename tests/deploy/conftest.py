"""The deploy/ folder as data: every Kubernetes document, by kind and name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"


def load_documents() -> list[tuple[Path, dict[str, Any]]]:
    """(file, document) for every YAML document under deploy/k8s, Kustomize's own file included."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        with open(path, encoding="utf-8") as f:
            docs += [(path, doc) for doc in yaml.safe_load_all(f) if doc is not None]
    return docs


@pytest.fixture(scope="session")
def documents() -> list[tuple[Path, dict[str, Any]]]:
    return load_documents()


@pytest.fixture(scope="session")
def by_kind(documents: list[tuple[Path, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for _, doc in documents:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds
