"""The SBOM of this real environment, checked the way a consumer checks it: cyclonedx-python-lib's strict 1.6
schema, purls as packageurl-python writes them, and licences as the licence policy reads them."""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from modelshield.core.errors import InputError
from modelshield.supplychain.distributions import installed_distributions
from modelshield.supplychain.licenses import detect_licence, parse_expression
from modelshield.supplychain.sbom import build_sbom, pypi_purl

SPDX_SCHEMA = Path(sys.modules["cyclonedx"].__file__ or "").parent / "schema" / "_res" / "spdx.SNAPSHOT.schema.json"


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    model = tmp_path_factory.mktemp("m") / "model.bin"
    model.write_bytes(b"\1" * 32)
    return build_sbom(model, licence="Apache-2.0")


def _declared(component: dict[str, Any]) -> str:
    """The component's licence as one SPDX expression ('' when it has none)."""
    (entry,) = component.get("licenses") or [{}]
    if "expression" in entry:
        return str(entry["expression"])
    return str(entry.get("license", {}).get("id", ""))


def test_real_environment_sbom_validates(doc: dict[str, Any]) -> None:
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc)) is None
    assert len(doc["components"]) >= 100


def test_licences_are_spdx_as_the_policy_reads_them(doc: dict[str, Any]) -> None:
    installed = installed_distributions()
    spdx_ids = set(json.loads(SPDX_SCHEMA.read_text())["enum"])
    by_name = {c["purl"]: c for c in doc["components"] if c.get("purl")}
    for key, dist in installed.items():
        component = by_name[pypi_purl(dist.metadata["Name"], dist.version)]
        expected, source = detect_licence(dist)
        if source in ("none", "License-Expression (not SPDX)"):
            continue
        assert _declared(component) == expected, key
        for entry in component["licenses"]:
            assert (entry.get("license") or entry)["acknowledgement"] == "declared"
            if "license" in entry:  # a single id is a CycloneDX licence id, which must be on the SPDX list
                assert entry["license"]["id"] in spdx_ids
    # by hand: classifier-only packages get their licence too; a one-id licence is an id, not a name
    jinja2 = by_name[pypi_purl("jinja2", metadata.version("jinja2"))]
    assert jinja2["licenses"] == [{"license": {"id": "BSD-3-Clause", "acknowledgement": "declared"}}]
    requests = by_name[pypi_purl("requests", metadata.version("requests"))]
    assert requests["licenses"] == [{"license": {"id": "Apache-2.0", "acknowledgement": "declared"}}]
    numpy = by_name[pypi_purl("numpy", metadata.version("numpy"))]
    parse_expression(numpy["licenses"][0]["expression"])


@pytest.mark.parametrize(
    ("name", "version"),
    [("ruamel.yaml", "0.19.1"), ("Typing_Extensions", "4.16.0"), ("torch", "2.13.0+cpu"), ("zope.interface", "1!7.0")],
)
def test_purls_match_packageurl_python(name: str, version: str) -> None:
    assert pypi_purl(name, version) == PackageURL(type="pypi", name=name, version=version).to_string()


def test_purls_are_unique_and_parse(doc: dict[str, Any]) -> None:
    purls = [c["purl"] for c in doc["components"] if c.get("purl")]
    assert len(purls) == len(set(purls))
    for purl in purls:
        parsed = PackageURL.from_string(purl)
        assert parsed.to_string() == purl and parsed.version


def test_metadata_is_parsed_once_per_distribution() -> None:
    """The SBOM reads about nine fields of each package; the standard library re-parses METADATA for each."""
    dist = installed_distributions()["packaging"]
    assert dist.metadata is dist.metadata


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Apache-2.0", [{"expression": "Apache-2.0"}]),
        ("apache-2.0 or mit", [{"expression": "Apache-2.0 OR MIT"}]),  # SPDX spelling
        ("llama3.1", [{"license": {"name": "llama3.1"}}]),  # Hugging Face licence tags are not SPDX ids
        ("openrail++", [{"license": {"name": "openrail++"}}]),
    ],
)
def test_model_licence(tmp_path: Path, given: str, expected: list[dict[str, Any]]) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"\0")
    doc = build_sbom(model, licence=given)
    assert doc["metadata"]["component"]["licenses"] == expected
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc)) is None


@pytest.mark.parametrize("given", ["MIT OR", "(MIT", "MIT AND AND Apache-2.0"])
def test_broken_model_licence_expression_is_refused(tmp_path: Path, given: str) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"\0")
    with pytest.raises(InputError):
        build_sbom(model, licence=given)


def test_every_known_spdx_id_is_on_cyclonedx_list() -> None:
    """A single known id is written as a CycloneDX licence ``id``, which the schema checks against its SPDX list."""
    from modelshield.supplychain.licenses import SPDX_IDS

    assert set(SPDX_IDS.values()) <= set(json.loads(SPDX_SCHEMA.read_text())["enum"])
