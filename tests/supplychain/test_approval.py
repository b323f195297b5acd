"""Approval list: approve keeps every other entry, check fails on new or changed libraries and models."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_vulns import one_line_error

from modelshield.core.errors import FormatError, InputError
from modelshield.supplychain.approval import approve, check, dump_approvals, load_approvals, parse_approvals
from modelshield.supplychain.vulns import Package, installed_packages

if TYPE_CHECKING:
    from conftest import RunMain


def test_approve_then_check(tmp_path: Path) -> None:
    path = tmp_path / "approvals.toml"
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights v1")
    approve(
        path,
        approved_by="alice@example.com",
        reason="core stack",
        libraries=[("torch", "==2.13.0+cpu"), ("numpy", ">=2,<3")],
        artifacts=[("model", "vendor", model)],
    )
    approve(path, approved_by="bob", reason="http client", libraries=[("Requests", "==2.32.3")])
    approvals = load_approvals(path)
    assert set(approvals.libraries) == {"torch", "numpy", "requests"}  # the second approval kept the first
    assert (
        approvals.libraries["torch"].approved_by == "alice@example.com"
        and approvals.libraries["requests"].approved_by == "bob"
    )

    packages = [Package("torch", "2.13.0+cpu"), Package("numpy", "2.1.0"), Package("requests", "2.32.3")]
    report = check(approvals, packages, [("model", "vendor", model)])
    assert report.ok and report.unused == []

    changed = check(
        approvals,
        [
            Package("torch", "2.13.1"),
            Package("NumPy", "3.0.0"),
            Package("requests", "2.32.3"),
            Package("leftpad", "1.0"),
        ],
        [("model", "vendor", model)],
    )
    assert not changed.ok
    assert {(r.name, r.status) for r in changed.results if r.status != "approved"} == {
        ("torch", "changed"),
        ("NumPy", "changed"),
        ("leftpad", "new"),
    }
    model.write_bytes(b"weights v2, swapped")
    swapped = check(approvals, packages, [("model", "vendor", model), ("model", "other", model)])
    assert [(r.name, r.status) for r in swapped.results if r.kind == "model"] == [
        ("vendor", "changed"),
        ("other", "new"),
    ]
    assert check(approvals, packages[:1]).unused == ["numpy", "Requests"]


def test_reapproval_replaces_and_text_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "approvals.toml"
    tricky = 'needs "quotes", back\\slashes,\ttabs, ünïcode 🙂 and \x7f'
    approve(path, approved_by="Zoë <z@example.com>", reason=tricky, libraries=[("torch", "==2.12.0")])
    approve(path, approved_by="alice", reason="upgrade reviewed", libraries=[("torch", "==2.13.0")])
    entry = load_approvals(path).libraries["torch"]
    assert (entry.version, entry.approved_by) == ("==2.13.0", "alice")
    approve(path, approved_by="Zoë <z@example.com>", reason=tricky, libraries=[("any-version-lib", "")])
    entry = load_approvals(path).libraries["any-version-lib"]
    assert (
        entry.reason == " ".join(tricky.split())
        and entry.approved_by == "Zoë <z@example.com>"
        and entry.allows("0.0.1")
    )
    assert dump_approvals(load_approvals(path)) == path.read_text()  # canonical: reading and writing changes nothing


def test_concurrent_approvals_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "approvals.toml"
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: approve(path, approved_by=f"user{i}", reason="bulk", libraries=[(f"lib{i}", "==1.0")]),
                range(16),
            )
        )
    assert set(load_approvals(path).libraries) == {f"lib{i}" for i in range(16)}


def test_bad_files_and_input_are_refused_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "approvals.toml"
    head = 'version = 1\n[[library]]\nname = "a"\napproved_by = "x"\ndate = "2026-01-01"\nreason = "r"\n'
    for text in (
        "version = 1\n[[library]\n",
        "version = 2\n",
        head + 'version = ">=1,<"\n',
        head + 'version = "==1"\nextra = 1\n',
        head + 'version = "==1"\n' + head.split("\n", 1)[1] + 'version = "==2"\n',
        'version = 1\n[[model]]\nname = "m"\nsha256 = "abc"\napproved_by = "x"\ndate = "d"\nreason = "r"\n',
        'version = 1\nlibrary = "torch"\n',
        head.replace('approved_by = "x"', 'approved_by = ""') + 'version = ""\n',
    ):
        with pytest.raises(FormatError):
            parse_approvals(text, "test")
    path.write_text("version = 1\n[[library]\n")
    with pytest.raises(FormatError):
        approve(path, approved_by="a", reason="b", libraries=[("x", "==1")])
    assert path.read_text() == "version = 1\n[[library]\n"  # a file we cannot read is never overwritten
    for kwargs in ({"approved_by": " ", "reason": "r"}, {"approved_by": "a", "reason": ""}):
        with pytest.raises(InputError):
            approve(tmp_path / "new.toml", libraries=[("x", "==1")], **kwargs)
    with pytest.raises(InputError):
        approve(tmp_path / "new.toml", approved_by="a", reason="r", libraries=[("x", "=>1")])
    assert not (tmp_path / "new.toml").exists()


def test_cli_gate(tmp_path: Path, run_main: RunMain) -> None:
    def deps(*args: str) -> tuple[int, str, str]:
        return run_main("deps", *args)

    approvals = tmp_path / "approvals.toml"
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("requests==2.32.3\nurllib3==2.2.2\n")
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx bytes")
    base = ["--approvals", str(approvals), "-r", str(reqs)]
    code, out, err = deps("approve", "--all", "--by", "ci-bootstrap", "--reason", "baseline", *base)
    assert code == 0 and "approved library requests ==2.32.3" in out, err
    assert deps("approve", "--model", f"classifier={model}", "--by", "alice", "--reason", "scanned", *base)[0] == 0
    assert deps("check", *base, "--model", f"classifier={model}")[0] == 0

    reqs.write_text("requests==2.32.4\nurllib3==2.2.2\nleftpad==1.0\n")
    code, out, _ = deps("check", *base, "--model", f"classifier={model}", "-f", "json")
    statuses = {r["name"]: r["status"] for r in json.loads(out)["results"]}
    assert code == 1 and statuses == {
        "requests": "changed",
        "urllib3": "approved",
        "leftpad": "new",
        "classifier": "approved",
    }
    code, out, _ = deps("check", *base)
    assert code == 1 and "changed  library  requests 2.32.4 (approved: ==2.32.3 by ci-bootstrap)" in out

    assert deps("approve", "requests", "leftpad", "--by", "alice", "--reason", "reviewed the diff", *base)[0] == 0
    assert deps("check", *base)[0] == 0
    model.write_bytes(b"onnx bytes, tampered")
    assert deps("check", *base, "--model", f"classifier={model}")[0] == 1

    env = deps("check", "--approvals", str(approvals), "-f", "json")  # the real environment: nothing approved there
    assert env[0] == 1 and len(json.loads(env[1])["results"]) == len(installed_packages())

    for args in (
        ["check", "--approvals", str(tmp_path / "missing.toml")],
        ["approve", "requests", "--by", "", "--reason", "r", *base],
        ["approve", "not-installed-anywhere", "--by", "a", "--reason", "r", "--approvals", str(approvals)],
        ["approve", "--by", "a", "--reason", "r", *base],
        ["check", *base, "--model", str(tmp_path / "nope.bin")],
    ):
        assert one_line_error(*deps(*args)[::2]), args
    approvals.write_text("version = 1\n[[library]]\nname = 3\n")
    assert one_line_error(*deps("check", *base)[::2])


def test_a_library_pinned_twice_in_a_universal_lock_is_approved_at_both_versions(
    tmp_path: Path, run_main: RunMain
) -> None:
    """`uv pip compile --universal` pins numpy once per Python: `approve --all` approves both pins (either), so the
    gate passes on the lock it was run on and fails when one of them moves."""
    approvals, reqs = tmp_path / "approvals.toml", tmp_path / "requirements.txt"
    reqs.write_text(
        "numpy==2.2.6 ; python_full_version < '3.12'\nnumpy==2.3.1 ; python_full_version >= '3.12'\nrequests==2.32.3\n"
    )
    base = ["--approvals", str(approvals), "-r", str(reqs)]
    code, out, err = run_main("deps", "approve", "--all", "--by", "ci", "--reason", "baseline", *base)
    assert code == 0 and "approved library numpy ==2.2.6 || ==2.3.1" in out, err
    assert load_approvals(approvals).libraries["numpy"].version == "==2.2.6 || ==2.3.1"
    assert run_main("deps", "check", *base)[0] == 0
    reqs.write_text(reqs.read_text().replace("2.3.1", "2.3.2"))
    code, out, _ = run_main("deps", "check", *base)
    assert code == 1 and "changed  library  numpy 2.3.2 (approved: ==2.2.6 || ==2.3.1 by ci)" in out
    code, out, _ = run_main("deps", "approve", "numpy", "--by", "alice", "--reason", "reviewed", *base)
    assert code == 0 and "approved library numpy ==2.2.6 || ==2.3.2" in out  # the pins now, not the old ones too
    assert run_main("deps", "check", *base)[0] == 0
    with pytest.raises(InputError, match="PEP 440"):
        approve(tmp_path / "x.toml", approved_by="a", reason="r", libraries=[("numpy", "==1 || =>2")])
