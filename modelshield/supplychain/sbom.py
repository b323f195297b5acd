"""CycloneDX 1.6 bill of materials for a model: the Python environment, the model and its datasets.

The model is the BOM's subject (``metadata.component``, type ``machine-learning-model``); its datasets are
``data`` components it depends on, and every installed distribution is a ``library`` component with a
``pkg:pypi`` purl and the ``requires`` edges its metadata declares for this interpreter.

A file is hashed with SHA-256. A folder gets one ``file`` sub-component per file with its SHA-256, and the
folder digest of a provenance lock file (``modelshield:digest``), so a BOM can be checked against the lock.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from modelshield import __version__
from modelshield.core.errors import FormatError, InputError
from modelshield.core.files import atomic_output
from modelshield.integrity.provenance import hash_tree
from modelshield.supplychain.distributions import installed_distributions, metadata_field
from modelshield.supplychain.licenses import (
    SPDX_IDS,
    detect_licence,
    licence_ids,
    normalise_id,
    parse_expression,
    recognised,
    render,
)

SPEC_VERSION = "1.6"
_OPERATOR = re.compile(r"\b(?:AND|OR|WITH)\b|[()]", re.IGNORECASE)

Json = dict[str, Any]


def pypi_purl(name: str, version: str) -> str:
    """``pkg:pypi`` purl as the purl spec and packageurl-python write it: the name lower-cased with ``_`` as
    ``-`` (dots kept: ``ruamel.yaml``), the version percent-encoded (``2.13.0+cpu`` reads ``2.13.0%2Bcpu``)."""
    return f"pkg:pypi/{quote(name.lower().replace('_', '-'), safe='.-~')}@{quote(version, safe='.-_~')}"


def _hashes(digest: str) -> list[Json]:
    return [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}]


def _model_licence(licence: str) -> list[Json]:
    """An SPDX expression as an ``expression`` in SPDX spelling; a licence that is no SPDX expression (a Hugging
    Face tag such as ``llama3.1`` or ``openrail++``) as a licence ``name``; a broken expression refused."""
    text = licence.strip()
    if not text or len(text) > 200 or any(ord(c) < 32 for c in text):
        raise InputError(f"licence {licence!r} is not one line of text", hint="e.g. Apache-2.0 or MIT OR Apache-2.0")
    try:
        node = parse_expression(normalise_id(text))  # a known name ("Apache License 2.0") as its SPDX id
    except FormatError:
        if _OPERATOR.search(text):
            raise InputError(
                f"licence {licence!r} is not a valid SPDX expression", hint="e.g. Apache-2.0 or MIT OR Apache-2.0"
            ) from None
        return [{"license": {"name": text}}]
    if all(recognised(leaf) for leaf in licence_ids(node)):
        return [{"expression": render(node)}]
    return [{"license": {"name": text}}]


def artifact_component(path: Path, kind: str, name: str, version: str | None = None) -> Json:
    """A component for a model or dataset file or folder, hashed the way the provenance lock hashes it."""
    tree = hash_tree(path)
    ref = f"{kind}:{name}@{tree.digest}"
    component: Json = {"type": kind, "bom-ref": ref, "name": name}
    if version:
        component["version"] = version
    if tree.files is None:
        component["hashes"] = _hashes(tree.digest)
    else:
        component["components"] = [
            {"type": "file", "bom-ref": f"{ref}/{rel}", "name": rel, "hashes": _hashes(digest)}
            for rel, digest in tree.files.items()
        ]
    component["properties"] = [
        {"name": "modelshield:digest", "value": tree.digest},
        {"name": "modelshield:size", "value": str(tree.size)},
    ]
    return component


def _package_licence(dist: metadata.Distribution) -> list[Json]:
    """The licence the package declares, read as ``deps licenses`` reads it: one SPDX id as a licence ``id``,
    anything else SPDX as an ``expression``, a ``License-Expression`` that is not SPDX as a ``name``."""
    licence, source = detect_licence(dist)
    if not licence:
        return []
    if source == "License-Expression (not SPDX)":
        return [{"license": {"name": licence[:200], "acknowledgement": "declared"}}]
    if licence in SPDX_IDS.values() and "exception" not in licence:  # an exception id alone is no licence
        return [{"license": {"id": licence, "acknowledgement": "declared"}}]
    return [{"expression": licence, "acknowledgement": "declared"}]


def _requires(dist: metadata.Distribution, installed: dict[str, metadata.Distribution]) -> list[str]:
    """Names of the installed distributions ``dist`` needs here: no extras, no markers false for this Python."""
    needed = set()
    for line in dist.requires or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if (name := canonicalize_name(req.name)) in installed:
            needed.add(name)
    return sorted(needed)


def environment_components() -> tuple[list[Json], list[Json]]:
    """Every installed distribution as a component, and the ``dependencies`` entries between them."""
    installed = installed_distributions()
    refs = {key: pypi_purl(metadata_field(dist, "Name"), dist.version) for key, dist in installed.items()}
    components: list[Json] = []
    dependencies: list[Json] = []
    for key in sorted(installed):
        dist = installed[key]
        component: Json = {
            "type": "library",
            "bom-ref": refs[key],
            "name": metadata_field(dist, "Name"),
            "version": dist.version,
            "purl": refs[key],
        }
        if licences := _package_licence(dist):
            component["licenses"] = licences
        components.append(component)
        dependencies.append({"ref": refs[key], "dependsOn": [refs[n] for n in _requires(dist, installed) if n != key]})
    return components, dependencies


def build_sbom(
    model: Path | str,
    *,
    name: str | None = None,
    version: str | None = None,
    licence: str | None = None,
    datasets: Sequence[Path | str] = (),
    task: str | None = None,
    architecture: str | None = None,
) -> Json:
    """The CycloneDX 1.6 document as a dict: model as subject, datasets it depends on, the environment."""
    model_path = Path(model)
    subject = artifact_component(model_path, "machine-learning-model", name or model_path.name, version)
    if licence:
        subject["licenses"] = _model_licence(licence)
    data = [artifact_component(Path(p), "data", Path(p).name) for p in datasets]
    data_refs = [d["bom-ref"] for d in data]
    if len(set(data_refs)) != len(data_refs):
        raise InputError("the same dataset was given twice")
    for component in data:
        component["data"] = [{"type": "dataset", "name": component["name"]}]
    parameters: Json = {"task": task, "architectureFamily": architecture, "datasets": [{"ref": r} for r in data_refs]}
    subject["modelCard"] = {"modelParameters": {k: v for k, v in parameters.items() if v}}
    packages, package_deps = environment_components()
    dependencies = [
        {"ref": subject["bom-ref"], "dependsOn": data_refs},
        *({"ref": r, "dependsOn": []} for r in data_refs),
        *package_deps,
    ]
    return bom_document(subject, data + packages, dependencies)


def bom_document(subject: Json, components: list[Json], dependencies: list[Json]) -> Json:
    """A CycloneDX document about ``subject`` (a model), made by this modelshield: the envelope every BOM and
    model card shares."""
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": uuid.uuid4().urn,
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "tools": {
                "components": [
                    {
                        "type": "application",
                        "name": "modelshield",
                        "version": __version__,
                        "purl": pypi_purl("modelshield", __version__),
                    }
                ]
            },
            "component": subject,
        },
        "components": components,
        "dependencies": dependencies,
    }


def write_sbom(document: Json, out: Path | str) -> Path:
    """Write the BOM atomically (world-readable: an SBOM is meant to be shared)."""
    dst = Path(out)
    with atomic_output(dst, mode=0o644) as f:
        f.write(json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8") + b"\n")
    return dst
