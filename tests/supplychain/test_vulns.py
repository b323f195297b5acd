"""Vulnerability audit: OSV range semantics offline, pip-audit online, and the table/JSON/SARIF/CycloneDX outputs."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelshield.core.errors import FormatError, InputError
from modelshield.supplychain.osv import (
    AdvisoryDatabase,
    cvss2_score,
    cvss3_score,
    load_advisories,
    serve_query_api,
)
from modelshield.supplychain.sbom import build_sbom, write_sbom
from modelshield.supplychain.vulns import (
    AuditServiceError,
    Package,
    audit_offline,
    audit_online,
    installed_packages,
    load_sbom,
    parse_pip_audit,
    render_audit,
    requirements_packages,
    sbom_packages,
)

if TYPE_CHECKING:
    from conftest import RunMain

DATA = Path(__file__).parent / "data"
OSV = DATA / "osv-pypi.json"


@pytest.fixture(scope="module")
def db() -> AdvisoryDatabase:
    return load_advisories(OSV)


def _ids(db: AdvisoryDatabase, name: str, version: str) -> set[str]:
    return {a.id for a, _ in db.lookup(name, version)}


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        # introduced 0 / fixed: fixed is exclusive
        ("requests", "2.19.1", {"GHSA-x84v-xcm2-53pg", "GHSA-j8r2-6x86-q33q"}),
        ("requests", "2.20.0", {"GHSA-j8r2-6x86-q33q"}),
        ("requests", "2.2.1", {"GHSA-x84v-xcm2-53pg"}),  # below the second advisory's introduced 2.3.0
        ("requests", "2.31.0", set()),
        # two intervals in one range, events listed out of order
        ("urllib3", "1.26.16", {"GHSA-v845-jxx5-vc9f"}),
        ("urllib3", "1.26.17", set()),
        ("urllib3", "1.26.18", set()),
        ("urllib3", "2.0.0", {"GHSA-v845-jxx5-vc9f"}),
        ("urllib3", "2.0.6", set()),
        # last_affected is inclusive; pre- and local versions compare by PEP 440
        ("torch", "2.2.2", {"GHSA-pg7h-5qx3-wjr3"}),
        ("torch", "2.2.2+cpu", {"GHSA-pg7h-5qx3-wjr3"}),
        ("torch", "2.3.0rc1", set()),
        ("torch", "2.13.0", set()),
        # explicit versions list with a GIT range that must not be evaluated; PEP 503 names both ways
        ("PyYAML", "4.2b1", {"PYSEC-2018-49"}),
        ("pyyaml", "3.10", {"PYSEC-2018-49"}),
        ("py_yaml", "3.10", set()),
        ("pyyaml", "5.1", set()),
        ("jinja2", "3.1.2", {"GHSA-h5c8-rqwp-cp95"}),
        ("Jinja2", "3.1.3", set()),
        ("django", "4.2.10", {"GHSA-q3qx-c6g2-7pw2"}),
        ("django", "4.1", set()),
        # SemVer ordering: pre-releases, and a limit that ends an open interval
        ("typing_extensions", "1.0.0-beta", set()),
        ("typing-extensions", "1.0.0-rc.2", {"OSV-TEST-SEMVER-1"}),
        ("typing.extensions", "1.9.9", {"OSV-TEST-SEMVER-1"}),
        ("typing-extensions", "2.0.0", set()),
        # withdrawn, and another ecosystem with the same name
        ("numpy", "1.16.0", set()),
    ],
)
def test_osv_range_semantics(db: AdvisoryDatabase, name: str, version: str, expected: set[str]) -> None:
    assert _ids(db, name, version) == expected


def test_database_counts_and_withdrawn(db: AdvisoryDatabase) -> None:
    assert db.records == 10 and db.withdrawn == 1
    assert "numpy" not in db.packages()  # withdrawn
    assert {a.id for a in db.advisories("requests")} == {
        "GHSA-x84v-xcm2-53pg",
        "GHSA-j8r2-6x86-q33q",
    }  # not the npm one


def test_severity_from_cvss_and_database(db: AdvisoryDatabase) -> None:
    report = audit_offline(
        [
            Package("requests", "2.19.0"),
            Package("urllib3", "2.0.5"),
            Package("pyyaml", "3.10"),
            Package("django", "4.2.10"),
            Package("typing-extensions", "1.0.0"),
        ],
        db,
    )
    got = {v.id: (v.severity, v.score) for v in report.vulnerabilities}
    assert got == {
        "GHSA-x84v-xcm2-53pg": ("critical", 9.8),  # CVSS v3.1 vector computed
        "GHSA-j8r2-6x86-q33q": ("medium", 6.1),
        "GHSA-v845-jxx5-vc9f": ("high", None),  # database_specific only
        "PYSEC-2018-49": ("unknown", None),
        "GHSA-q3qx-c6g2-7pw2": ("medium", None),  # CVSS v4 not scored: falls back to MODERATE
        "OSV-TEST-SEMVER-1": ("low", None),  # from the affected entry's database_specific
    }
    fixes = {v.id: v.fixed_in for v in report.vulnerabilities}
    assert fixes["GHSA-v845-jxx5-vc9f"] == ("2.0.6",) and fixes["PYSEC-2018-49"] == ()
    assert {v.id: v.aliases for v in report.vulnerabilities}["GHSA-x84v-xcm2-53pg"] == (
        "CVE-2018-18074",
        "PYSEC-2018-28",
    )
    assert {v.id for v in report.failing("high")} == {"GHSA-x84v-xcm2-53pg", "GHSA-v845-jxx5-vc9f", "PYSEC-2018-49"}


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
        ("CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
    ],
)
def test_cvss3_base_scores(vector: str, score: float) -> None:
    assert cvss3_score(vector) == score


def test_cvss2_and_bad_vectors() -> None:
    assert cvss2_score("AV:N/AC:L/Au:N/C:P/I:P/A:P") == 7.5
    assert cvss2_score("(AV:N/AC:M/Au:N/C:N/I:P/A:N)") == 4.3
    with pytest.raises(FormatError):
        cvss3_score("CVSS:3.1/AV:X")


def test_real_environment(db: AdvisoryDatabase) -> None:
    """The fixture's old-version advisories miss this up-to-date venv; one aimed at what is installed hits it."""
    packages = installed_packages()
    assert {p.key for p in packages} >= {"packaging", "torch", "pip-audit"}
    assert audit_offline(packages, db).vulnerabilities == []
    installed = metadata.version("packaging")
    record = {
        "id": "TEST-1",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Packaging"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": installed}]}],
            }
        ],
    }
    hit = AdvisoryDatabase("inline")
    hit.add_record(record)
    found = audit_offline(packages, hit).vulnerabilities
    assert [(v.package.lower(), v.version) for v in found] == [("packaging", installed)]
    assert found[0].location.endswith(".dist-info")
    record["affected"][0]["ranges"][0]["events"][1] = {"fixed": installed}
    fixed = AdvisoryDatabase("inline")
    fixed.add_record(copy.deepcopy(record))
    assert audit_offline(packages, fixed).vulnerabilities == []


def test_folder_and_zip_exports_read_like_the_list(tmp_path: Path, db: AdvisoryDatabase) -> None:
    folder = tmp_path / "PyPI"
    folder.mkdir()
    for record in json.loads(OSV.read_text()):
        (folder / f"{record['id']}.json").write_text(json.dumps(record))
    with zipfile.ZipFile(tmp_path / "all.zip", "w") as archive:
        for file in folder.iterdir():
            archive.write(file, file.name)
    for source in (folder, tmp_path / "all.zip"):
        other = load_advisories(source)
        assert other.records == db.records
        assert other.packages() == db.packages()
        assert all({a.id for a in other.advisories(n)} == {a.id for a in db.advisories(n)} for n in db.packages())


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"affected": []}',
        "[]",
        '[{"id": "X", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"}, '
        '"ranges": [{"type": "ECOSYSTEM", "events": [{"broken": "1"}]}]}]}]',
    ],
)
def test_malformed_osv_is_refused(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(FormatError):
        load_advisories(bad).lookup("a", "1.0")  # a record is validated in full when its package is audited


def test_requirements_files(tmp_path: Path) -> None:
    base = tmp_path / "base.txt"
    base.write_text("urllib3==2.0.5 \\\n    --hash=sha256:aaaa\n")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(
        "# pinned\n-r base.txt\n--index-url https://example.org/simple\nRequests==2.19.0  # old\n"
        "colorama==0.4.6; sys_platform == 'win32'\n"
    )
    assert [(p.name, p.version) for p in requirements_packages(reqs)] == [
        ("urllib3", "2.0.5"),
        ("Requests", "2.19.0"),
        ("colorama", "0.4.6"),  # a lock's pins are audited whatever the marker says about this interpreter
    ]
    lock = tmp_path / "pylock.toml"
    lock.write_text('lock-version = "1.0"\n[[packages]]\nname = "jinja2"\nversion = "3.1.2"\n')
    assert requirements_packages(lock) == [Package("jinja2", "3.1.2", str(lock))]
    for line in ("requests>=2", "requests==2.*", "-e ./local", "requests @ https://x/requests.whl"):
        reqs.write_text(line + "\n")
        with pytest.raises(InputError):  # a range is refused; a file of nothing but unversioned lines pins nothing
            requirements_packages(reqs)


def test_sbom_gets_cyclonedx_vulnerabilities(tmp_path: Path, db: AdvisoryDatabase) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"\0" * 64)
    doc = build_sbom(model)
    doc["components"].append(
        {
            "type": "library",
            "bom-ref": "pkg:pypi/requests@2.19.0",
            "name": "requests",
            "version": "2.19.0",
            "purl": "pkg:pypi/requests@2.19.0",
        }
    )
    path = write_sbom(doc, tmp_path / "sbom.json")
    loaded = load_sbom(path)
    packages = [p for p, _ in sbom_packages(loaded)]
    assert Package("requests", "2.19.0", "SBOM") in packages
    out = json.loads(render_audit(audit_offline(packages, db), "cyclonedx", sbom=loaded))
    vulns = {v["id"]: v for v in out["vulnerabilities"]}
    assert set(vulns) == {"GHSA-x84v-xcm2-53pg", "GHSA-j8r2-6x86-q33q"}
    assert vulns["GHSA-x84v-xcm2-53pg"]["affects"] == [
        {"ref": "pkg:pypi/requests@2.19.0", "versions": [{"version": "2.19.0", "status": "affected"}]}
    ]
    assert vulns["GHSA-x84v-xcm2-53pg"]["ratings"][0] == {
        "score": 9.8,
        "severity": "critical",
        "method": "CVSSv31",
        "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    }
    assert out["metadata"]["component"] == loaded["metadata"]["component"]
    validation = pytest.importorskip("cyclonedx.validation.json")
    from cyclonedx.schema import SchemaVersion

    for document in (out, json.loads(render_audit(audit_offline(packages, db), "cyclonedx"))):
        error = validation.JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
        assert error is None, error


def test_sarif_and_json(db: AdvisoryDatabase) -> None:
    report = audit_offline(
        [Package("requests", "2.19.0", "requirements.txt"), Package("pyyaml", "3.10", "requirements.txt")], db
    )
    log = json.loads(render_audit(report, "sarif"))
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"GHSA-x84v-xcm2-53pg", "GHSA-j8r2-6x86-q33q", "PYSEC-2018-49"}
    by_id = {r["ruleId"]: r for r in results}
    assert by_id["GHSA-x84v-xcm2-53pg"]["level"] == "error"
    assert (
        by_id["GHSA-x84v-xcm2-53pg"]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        == "requirements.txt"
    )
    assert by_id["PYSEC-2018-49"]["properties"]["evidence"]["severity"] == "unknown"
    sarif_kit = pytest.importorskip("sarif_kit")
    assert sarif_kit.validation_errors(log) == []
    doc = json.loads(render_audit(report, "json", "critical"))
    assert doc["passed"] is False and doc["audited"] == 2 and len(doc["vulnerabilities"]) == 3


def test_pip_audit_output_parsing() -> None:
    pkgs = [Package("requests", "2.19.0", "r.txt"), Package("local-thing", "0.1", "r.txt")]
    out = json.dumps(
        {
            "dependencies": [
                {
                    "name": "requests",
                    "version": "2.19.0",
                    "vulns": [
                        {
                            "id": "PYSEC-2018-28",
                            "fix_versions": ["2.20.0"],
                            "aliases": ["CVE-2018-18074"],
                            "description": "leak",
                        }
                    ],
                },
                {"name": "local-thing", "skip_reason": "Dependency not found on PyPI"},
            ],
            "fixes": [],
        }
    )
    report = parse_pip_audit(out, pkgs, "pip-audit:pypi")
    assert [(v.id, v.severity, v.fixed_in, v.location) for v in report.vulnerabilities] == [
        ("PYSEC-2018-28", "unknown", ("2.20.0",), "r.txt")
    ]
    assert report.skipped == {"local-thing": "Dependency not found on PyPI"} and report.failing("critical")
    nothing = json.dumps({"dependencies": [{"name": p.name, "skip_reason": "not found"} for p in pkgs]})
    with pytest.raises(AuditServiceError, match="could not audit any"):
        parse_pip_audit(nothing, pkgs, "pip-audit:pypi")


@pytest.fixture()
def osv_api(db: AdvisoryDatabase) -> Iterator[str]:
    """A local OSV ``/v1/query`` mirror of the fixture: pip-audit's online path, without internet."""
    server = serve_query_api(db)
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    server.shutdown()


def test_online_audit_through_pip_audit(osv_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    report = audit_online(
        [Package("requests", "2.19.0"), Package("jinja2", "3.1.6")], service="osv", osv_url=osv_api, timeout=5
    )
    # pip-audit names a PYSEC id first when the advisory has one; the GHSA id travels as an alias
    assert {v.id for v in report.vulnerabilities} == {"PYSEC-2018-28", "PYSEC-2023-74"}
    assert all({"GHSA-x84v-xcm2-53pg", "GHSA-j8r2-6x86-q33q"} & set(v.aliases) for v in report.vulnerabilities)
    assert report.source == "pip-audit:osv" and report.skipped == {}


def test_online_audit_unreachable_names_the_offline_option() -> None:
    with pytest.raises(AuditServiceError) as info:
        audit_online([Package("requests", "2.19.0")], service="osv", osv_url="http://127.0.0.1:9/v1/query", timeout=2)
    assert "--osv FILE" in info.value.diagnostics() and "\n" not in info.value.diagnostics()


def one_line_error(code: int, err: str) -> bool:
    return code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_cli_exit_codes(tmp_path: Path, run_main: RunMain) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("requests==2.25.0\njinja2==3.1.6\n")
    code, out, err = run_main("deps", "audit", "--osv", str(OSV), "-r", str(reqs), "-f", "json")
    assert code == 1, err
    assert {v["id"] for v in json.loads(out)["vulnerabilities"]} == {"GHSA-j8r2-6x86-q33q"}
    assert run_main("deps", "audit", "--osv", str(OSV), "-r", str(reqs), "--fail-on", "high")[0] == 0
    code, out, _ = run_main("deps", "audit", "--osv", str(OSV), "-r", str(reqs), "--ignore", "CVE-2023-32681")
    assert code == 0 and "0 vulnerabilities" in out
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": "X", "affected": "nope"')
    for args in (
        ["--osv", str(bad)],
        ["--osv", str(tmp_path / "missing.json")],
        ["--osv", str(OSV), "-r", str(bad)],
        ["--osv", str(OSV), "--sbom", str(bad)],
        ["--osv", str(OSV), "-r", str(reqs), "--sbom", str(reqs)],
    ):
        code, _, err = run_main("deps", "audit", *args)
        assert one_line_error(code, err), err
    sarif = tmp_path / "out.sarif"
    assert run_main("deps", "audit", "--osv", str(OSV), "-r", str(reqs), "-f", "sarif", "-o", str(sarif))[0] == 1
    assert json.loads(sarif.read_text())["runs"][0]["results"][0]["ruleId"] == "GHSA-j8r2-6x86-q33q"


def test_cli_offline_without_osv_is_one_line(tmp_path: Path) -> None:
    """The installed entry point, in its own process: pip-audit cannot reach the service, the error says --osv."""
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("requests==2.19.0\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelshield",
            "deps",
            "audit",
            "-r",
            str(reqs),
            "--service",
            "osv",
            "--osv-url",
            "http://127.0.0.1:9/v1/query",
            "--timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert one_line_error(run.returncode, run.stderr) and "--osv FILE" in run.stderr, run.stderr
