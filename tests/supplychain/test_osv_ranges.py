"""OSV range evaluation on a record written for it: introduced/fixed/last_affected, ECOSYSTEM (PEP 440) against
SEMVER, pre-, post-, dev- and local versions (``torch==2.13.0+cpu``), epochs, and how pins are read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from modelshield.core.errors import InputError
from modelshield.supplychain.osv import AdvisoryDatabase
from modelshield.supplychain.vulns import audit_offline, requirements_packages

Events = list[dict[str, str]]


def _record(vid: str, ranges: Sequence[tuple[str, Events]] = (), versions: Sequence[str] = ()) -> dict[str, Any]:
    package = {"ecosystem": "PyPI", "name": "Torch"}
    entry = {"package": package, "ranges": [{"type": t, "events": e} for t, e in ranges], "versions": list(versions)}
    return {"id": vid, "affected": [entry]}


@pytest.fixture(scope="module")
def db() -> AdvisoryDatabase:
    records = [
        _record("A", ranges=[("ECOSYSTEM", [{"introduced": "2.0.0"}, {"fixed": "2.14.0"}])]),
        _record("B", ranges=[("ECOSYSTEM", [{"introduced": "0"}, {"last_affected": "2.13.0"}])]),
        _record("C", ranges=[("ECOSYSTEM", [{"introduced": "2.14.0rc1"}, {"fixed": "2.14.1"}])]),
        _record("D", versions=["2.13.0"]),
        _record("E", ranges=[("SEMVER", [{"introduced": "0"}, {"fixed": "2.13.0"}])]),
        _record("F", ranges=[("ECOSYSTEM", [{"introduced": "2.13.0.dev0"}, {"fixed": "2.13.0"}])]),
        _record("G", ranges=[("ECOSYSTEM", [{"introduced": "1!0"}, {"fixed": "1!2.0"}])]),
        _record("H", ranges=[("ECOSYSTEM", [{"introduced": "0"}, {"fixed": "2.13.0.post1"}])]),
        _record("I", ranges=[("SEMVER", [{"introduced": "2.14.0-rc.1"}, {"fixed": "2.14.0"}])]),
    ]
    database = AdvisoryDatabase("written for this test")
    for record in records:
        database.add_record(record)
    return database


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.13.0", "ABDH"),
        ("2.13.0+cpu", "ABDH"),  # a local build of 2.13.0 is 2.13.0 to every advisory
        ("2.13.0+cu121", "ABDH"),
        ("2.12.1+cpu", "ABEH"),  # SemVer reads +cpu as build metadata
        ("2.13.0rc1", "ABFH"),  # below 2.13.0; not SemVer, so E cannot place it
        ("2.13.0.dev5", "ABFH"),
        ("2.13.0.post1", "A"),  # after last_affected 2.13.0, and at H's fix
        ("2.14.0rc1", "AC"),  # a pre-release of the fix is not the fix
        ("2.14.0", "C"),
        ("1!1.0", "G"),  # an epoch sorts above every epoch-0 version
    ],
)
def test_ranges(db: AdvisoryDatabase, version: str, expected: str) -> None:
    assert "".join(sorted(a.id for a, _ in db.lookup("torch", version))) == expected


def test_semver_pre_releases(db: AdvisoryDatabase) -> None:
    ids = {v: {a.id for a, _ in db.lookup("torch", v)} for v in ("2.14.0-rc.1", "2.14.0-rc.2", "2.14.0-beta")}
    assert "I" in ids["2.14.0-rc.1"] and "I" in ids["2.14.0-rc.2"] and "I" not in ids["2.14.0-beta"]


def test_pins_from_a_requirements_file(tmp_path: Path, db: AdvisoryDatabase) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("torch===2.13.0+cpu\n")
    (pkg,) = requirements_packages(reqs)
    found = audit_offline([pkg], db).vulnerabilities
    assert {v.id for v in found} == set("ABDH") and {v.version for v in found} == {"2.13.0+cpu"}
    assert next(v.fixed_in for v in found if v.id == "A") == ("2.14.0",)
    reqs.write_text("torch>=2.13.0\n")  # a range is not a version: which one would be audited?
    with pytest.raises(InputError, match="not pinned"):
        requirements_packages(reqs)
