"""What real tools write, audited as written: pip freeze, uv pip compile (hashes, markers, extras, includes,
an index URL), uv export to pylock.toml, uv.lock (all uv 0.13, wheel lists trimmed), and poetry.lock,
Pipfile.lock and a conda environment.yml in the formats Poetry 2, Pipenv and ``conda env export`` write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelshield.core.errors import InputError
from modelshield.supplychain.approval import Approvals, check
from modelshield.supplychain.osv import AdvisoryDatabase, serve_query_api
from modelshield.supplychain.vulns import Package, audit_offline, audit_online, render_audit, requirements_packages

LOCKS = Path(__file__).parent / "data" / "lock"


def _pins(path: Path) -> list[tuple[str, str]]:
    return sorted((p.key, p.version) for p in requirements_packages(path) if not p.skip)


def _advisory(name: str, introduced: str, fixed: str) -> AdvisoryDatabase:
    """An offline database of one OSV record: ``name`` vulnerable from ``introduced`` until ``fixed``."""
    db = AdvisoryDatabase("test")
    events = [{"introduced": introduced}, {"fixed": fixed}]
    affected = [{"package": {"ecosystem": "PyPI", "name": name}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}]
    db.add_record({"id": f"OSV-TEST-{name.upper()}", "affected": affected})
    return db


def _skipped(path: Path) -> dict[str, str]:
    return {p.name: p.skip for p in requirements_packages(path) if p.skip}


def test_pip_freeze_with_an_editable_install() -> None:
    pins = _pins(LOCKS / "pip-freeze.txt")
    assert ("torch", "2.13.0+cpu") in pins and ("ruamel-yaml", "0.19.1") in pins and len(pins) == 10
    (reason,) = _skipped(LOCKS / "pip-freeze.txt").values()
    assert "editable" in reason


def test_compiled_requirements_with_includes_markers_and_hashes(tmp_path: Path) -> None:
    (tmp_path / "locks").mkdir()
    for name in ("uv-compiled.txt", "constraints.txt"):
        (tmp_path / "locks" / name).write_bytes((LOCKS / name).read_bytes())
    top = tmp_path / "requirements.txt"  # includes are found from the including file's folder
    top.write_text(
        "--index-url https://pypi.org/simple\n-r locks/uv-compiled.txt\n--constraint locks/constraints.txt\n"
    )
    pins = _pins(top)
    # every pin of a universal lock, whatever its marker says about this interpreter: the one that installs
    # on the target is among them (numpy 2.5.5 is Python >= 3.12 only, colorama Windows only)
    assert ("numpy", "2.4.6") in pins and ("numpy", "2.5.5") in pins and ("colorama", "0.4.6") in pins
    assert ("pysocks", "1.7.1") in pins and ("requests", "2.34.2") in pins and len(pins) == 9


def test_the_same_lock_in_two_formats_gives_the_same_packages() -> None:
    requirements = set(_pins(LOCKS / "uv-compiled.txt"))
    pylock = set(_pins(LOCKS / "pylock.toml"))
    assert requirements <= pylock  # the pylock also has the project's extra and dev group
    assert ("numpy", "2.5.5") in pylock and ("pytest", "9.2.0") in pylock


def test_uv_lock() -> None:
    pins = _pins(LOCKS / "uv.lock")
    assert ("ruamel-yaml", "0.19.1") in pins and ("numpy", "2.5.5") in pins and len(pins) == 16
    assert _skipped(LOCKS / "uv.lock") == {"demo-app": "local project (virtual), not from an index"}


def test_poetry_lock() -> None:
    assert _pins(LOCKS / "poetry.lock") == [
        ("jinja2", "3.1.2"),
        ("markupsafe", "2.1.3"),
        ("pytest", "7.4.0"),
        ("ruamel-yaml", "0.17.21"),
    ]
    assert _skipped(LOCKS / "poetry.lock") == {"mylib": "local project (directory), not from an index"}


def test_pipfile_lock() -> None:
    assert _pins(LOCKS / "Pipfile.lock") == [("pytest", "7.4.0"), ("requests", "2.31.0"), ("torch", "2.13.0+cpu")]
    assert set(_skipped(LOCKS / "Pipfile.lock")) == {"mylib", "tool"}


def test_conda_environment() -> None:
    assert _pins(LOCKS / "environment.yml") == [("ruamel-yaml", "0.17.21"), ("torch", "2.13.0+cpu")]
    skipped = _skipped(LOCKS / "environment.yml")
    assert set(skipped) == {"_libgcc_mutex", "python", "numpy", "pip"}
    assert all("conda" in why for why in skipped.values())


def test_pyproject_is_refused_with_a_way_forward(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\nversion = "1"\ndependencies = ["requests>=2"]\n')
    with pytest.raises(InputError, match="lock"):
        requirements_packages(pyproject)


def test_audit_reports_what_it_could_not_audit() -> None:
    db = _advisory("torch", "2.0.0", "2.14.0")
    report = audit_offline(requirements_packages(LOCKS / "Pipfile.lock"), db)
    assert [(v.package, v.version, v.fixed_in) for v in report.vulnerabilities] == [
        ("torch", "2.13.0+cpu", ("2.14.0",))
    ]
    assert set(report.skipped) == {"mylib", "tool"}
    assert json.loads(json.dumps(report.to_dict()))["audited"] == 3


def test_cyclonedx_affects_the_pinned_version_that_is_vulnerable() -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    db = _advisory("numpy", "2.5.0", "2.5.6")
    report = audit_offline(requirements_packages(LOCKS / "uv-compiled.txt"), db)
    text = render_audit(report, "cyclonedx")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    (vuln,) = json.loads(text)["vulnerabilities"]
    assert vuln["affects"] == [
        {"ref": "pkg:pypi/numpy@2.5.5", "versions": [{"version": "2.5.5", "status": "affected"}]}
    ]


def test_approval_check_leaves_out_what_has_no_version() -> None:
    packages = requirements_packages(LOCKS / "pip-freeze.txt")
    report = check(Approvals(), packages)
    assert len(report.results) == 10 and all(r.found for r in report.results)
    assert Package("x", "1").skip == ""


def test_compiled_on_windows(tmp_path: Path) -> None:
    """pip-compile on Windows writes CRLF line ends; its continuations end in a backslash before them."""
    crlf = tmp_path / "requirements.txt"
    crlf.write_bytes((LOCKS / "uv-compiled.txt").read_bytes().replace(b"\n", b"\r\n"))
    assert _pins(crlf) == _pins(LOCKS / "uv-compiled.txt")
    tabbed = tmp_path / "tabbed.txt"
    tabbed.write_text("requests==2.31.0\t# pinned for the proxy\n")
    assert _pins(tabbed) == [("requests", "2.31.0")]


def test_pylock_source_trees_have_no_version(tmp_path: Path) -> None:
    """PEP 751: ``version`` is optional for a package built from a VCS checkout, a directory or an archive URL."""
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "hand"\n'
        '[[packages]]\nname = "jinja2"\nversion = "3.1.2"\n'
        '[[packages]]\nname = "tool"\n[packages.vcs]\ntype = "git"\nurl = "https://example.org/tool.git"\n'
        'commit-id = "9f2c3b1a7d5e4c6b8a0f1e2d3c4b5a6978e1d2c3"\n'
        '[[packages]]\nname = "blob"\n[packages.archive]\nurl = "https://example.org/blob-1.0.tar.gz"\n'
        '[packages.archive.hashes]\nsha256 = "ab"\n'
    )
    assert _pins(lock) == [("jinja2", "3.1.2")]
    assert set(_skipped(lock)) == {"tool", "blob"}


def test_online_audit_of_a_lock_pinning_one_name_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip-audit refuses a requirements file with two pins of one name; a universal lock has them."""
    db = _advisory("numpy", "2.5.0", "2.5.6")
    server = serve_query_api(db)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    try:
        packages = [p for p in requirements_packages(LOCKS / "uv-compiled.txt") if p.key in ("numpy", "idna")]
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/query"
        report = audit_online(packages, service="osv", osv_url=url, timeout=5)
    finally:
        server.shutdown()
    assert [(v.package, v.version, v.id) for v in report.vulnerabilities] == [("numpy", "2.5.5", "OSV-TEST-NUMPY")]
    assert report.skipped == {}


def test_conda_environment_including_a_requirements_file(tmp_path: Path) -> None:
    """conda passes its ``pip:`` lines to pip, so ``-r file`` there includes a requirements file."""
    (tmp_path / "requirements.txt").write_text("jinja2==3.1.2\n")
    env = tmp_path / "environment.yml"
    env.write_text(
        "name: x\ndependencies:\n  - python=3.11\n  - pip:\n      - -r requirements.txt\n      - torch==2.13.0\n"
    )
    assert _pins(env) == [("jinja2", "3.1.2"), ("torch", "2.13.0")]


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("-e /work/app", "/work/app"),
        ("-e git+https://example.org/tool.git@v1#egg=tool", "tool"),
        ("--editable=./local", "./local"),
        ("--editable ./local", "./local"),
    ],
)
def test_editable_lines_are_named(tmp_path: Path, line: str, name: str) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"jinja2==3.1.2\n{line}\n")
    assert list(_skipped(reqs)) == [name]
