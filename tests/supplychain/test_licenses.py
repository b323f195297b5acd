"""Licence policy: metadata normalised to SPDX, expressions judged as SPDX defines them, model licences from the lock."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_vulns import one_line_error

from modelshield.core.errors import FormatError
from modelshield.integrity.provenance import add_artifact
from modelshield.supplychain.licenses import (
    check_licences,
    detect_licence,
    judge,
    load_policy,
    parse_expression,
    parse_policy,
    render,
)

if TYPE_CHECKING:
    from conftest import RunMain


def _dist(tmp_path: Path, *headers: str, body: str = "") -> metadata.Distribution:
    info = tmp_path / "pkg-1.0.dist-info"
    info.mkdir()
    text = "Metadata-Version: 2.4\nName: pkg\nVersion: 1.0\n" + "".join(h + "\n" for h in headers)
    (info / "METADATA").write_text(text + ("\n" + body if body else ""), encoding="utf-8")
    return metadata.PathDistribution(info)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["License-Expression: mit OR apache-2.0"], ("MIT OR Apache-2.0", "License-Expression")),
        (
            ["License-Expression: Apache-2.0 AND (MIT OR GPL-2.0+)"],
            ("Apache-2.0 AND (MIT OR GPL-2.0-or-later)", "License-Expression"),
        ),
        (["License: Apache 2.0", "Classifier: License :: OSI Approved :: MIT License"], ("Apache-2.0", "License")),
        (["License: BSD-3-Clause"], ("BSD-3-Clause", "License")),
        (["License: 3-Clause BSD License"], ("BSD-3-Clause", "License")),
        (["License: MPL-2.0 AND MIT"], ("MPL-2.0 AND MIT", "License")),
        (
            [
                "License: UNKNOWN",
                "Classifier: License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)",
            ],
            ("GPL-3.0-or-later", "classifier"),
        ),
        (
            [
                "Classifier: License :: OSI Approved :: Apache Software License",
                "Classifier: License :: OSI Approved :: BSD License",
            ],
            ("Apache-2.0 OR BSD-3-Clause", "classifier"),
        ),
        (
            ["Classifier: License :: OSI Approved :: GNU Library or Lesser General Public License (LGPL)"],
            ("LGPL-2.0-or-later", "classifier"),
        ),
        (
            [
                "License: Copyright (c) 2001 Enthought, Inc.",
                "Classifier: License :: OSI Approved :: Python Software Foundation License",
            ],
            ("PSF-2.0", "classifier"),
        ),
        (["Classifier: License :: OSI Approved"], ("", "none")),
        ([], ("", "none")),
    ],
)
def test_detect_and_normalise(tmp_path: Path, headers: list[str], expected: tuple[str, str]) -> None:
    assert detect_licence(_dist(tmp_path, *headers)) == expected


def test_full_licence_text_in_the_license_field(tmp_path: Path) -> None:
    dist = _dist(
        tmp_path,
        "License: MIT License\n        \n        Copyright (c) 2020 Someone\n        Permission is hereby granted",
    )
    assert detect_licence(dist) == ("MIT", "License (first line of the text)")


@pytest.mark.parametrize(
    ("expression", "status"),
    [
        ("MIT", "allowed"),
        ("MIT OR GPL-3.0-only", "allowed"),  # the user may choose MIT
        ("MIT AND GPL-3.0-only", "review"),  # bound by both
        ("GPL-2.0-or-later WITH Classpath-exception-2.0", "review"),  # judged as GPL unless the policy names it
        ("Apache-2.0 WITH LLVM-exception", "allowed"),
        ("(MIT OR SSPL-1.0) AND Apache-2.0", "allowed"),
        ("SSPL-1.0 OR AGPL-3.0-only", "review"),
        ("CC-BY-NC-4.0", "denied"),
        ("MIT AND CC-BY-NC-SA-4.0", "denied"),
        ("Artistic-1.0-Perl", "review"),
        ("WTFPL", "unknown"),  # valid SPDX, but the default policy does not list it
        ("llama3", "unknown"),
        ("lgpl-3.0+", "allowed"),  # deprecated id normalised, then matched by LGPL-*
    ],
)
def test_default_policy_verdicts(expression: str, status: str) -> None:
    assert judge("x", "1", "library", expression, "test", load_policy()).status == status


def test_expression_parsing() -> None:
    assert render(parse_expression("mit or (apache-2.0 and bsd-2-clause)")) == "MIT OR (Apache-2.0 AND BSD-2-Clause)"
    assert render(parse_expression("(MIT OR ISC) AND Zlib")) == "(MIT OR ISC) AND Zlib"
    for bad in ("MIT AND", "(MIT OR ISC", "AND MIT", "MIT ISC", ""):
        with pytest.raises(FormatError):
            parse_expression(bad)
    assert judge("x", "1", "library", "MIT AND", "test", load_policy()).status == "unknown"


def test_policy_file_rules() -> None:
    policy = parse_policy(
        'allow = ["*"]\nreview = ["GPL-*"]\ndeny = ["GPL-3.0-only"]\nunknown = "review"\n'
        '[overrides]\nOdd_Pkg = "MIT"\n[exceptions]\nstrict-pkg = "reviewed by legal 2026-05-01"\n'
    )
    assert judge("a", "1", "library", "GPL-3.0-only", "t", policy).status == "denied"  # strictest list wins
    assert judge("a", "1", "library", "GPL-2.0-only", "t", policy).status == "review"
    assert judge("a", "1", "library", "anything-at-all", "t", policy).status == "allowed"
    assert judge("odd-pkg", "1", "library", "GPL-3.0-only", "t", policy).licence == "MIT"
    accepted = judge("strict.pkg", "1", "library", "GPL-3.0-only", "t", policy)
    assert accepted.status == "denied" and not accepted.fails(policy, "review")
    with_exception = parse_policy('allow = ["GPL-2.0-only WITH Classpath-exception-2.0"]\nreview = ["GPL-*"]\n')
    assert (
        judge("j", "1", "library", "GPL-2.0-only WITH Classpath-exception-2.0", "t", with_exception).status == "allowed"
    )
    unknown_reviewed = parse_policy('allow = ["MIT"]\nunknown = "review"\n')
    none = judge("n", "1", "library", "", "none", unknown_reviewed)
    assert (
        none.status == "unknown" and not none.fails(unknown_reviewed, "deny") and none.fails(unknown_reviewed, "review")
    )
    for bad in ('allow = "MIT"', 'alow = ["MIT"]', 'unknown = "allow"', "[overrides]\nx = 'MIT AND'", "allow = ["):
        with pytest.raises(FormatError):
            parse_policy(bad)


def test_real_environment_with_the_default_policy() -> None:
    report = check_licences(load_policy())
    names = {r.name.lower(): r for r in report.results}
    assert len(names) > 50 and {"torch", "numpy", "cryptography"} <= set(names)
    assert names["cryptography"].licence == "Apache-2.0 OR BSD-3-Clause" and names["cryptography"].status == "allowed"
    assert names["torch"].status == "allowed"
    assert all(r.status == "unknown" for r in report.failing())  # nothing in this venv is denied outright


def test_model_licence_from_the_provenance_lock(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"w" * 32)
    (tmp_path / "faces.csv").write_text("a,b\n")
    lock = tmp_path / "modelshield.lock.json"
    add_artifact(
        lock, "vendor-model", tmp_path / "weights.bin", kind="model", source="https://example.org", licence="Apache-2.0"
    )
    add_artifact(
        lock, "faces", tmp_path / "faces.csv", kind="dataset", source="https://example.org", licence="CC-BY-NC-4.0"
    )
    report = check_licences(load_policy(), lock=lock, model_licences=[("mine", "MIT")], environment=False)
    verdicts = {(r.kind, r.name): r.status for r in report.results}
    assert verdicts == {
        ("model", "vendor-model"): "allowed",
        ("dataset", "faces"): "denied",
        ("model", "mine"): "allowed",
    }
    assert [r.name for r in report.failing()] == ["faces"]


def test_cli(tmp_path: Path, run_main: RunMain) -> None:
    def deps(*args: str) -> tuple[int, str, str]:
        return run_main("deps", *args)

    policy = tmp_path / "policy.toml"
    policy.write_text('allow = ["*"]\ndeny = ["CC-BY-NC-*"]\nunknown = "review"\n')
    assert deps("licenses", "--policy", str(policy), "--model-license", "m=Apache-2.0")[0] == 0
    code, out, _ = deps("licenses", "--policy", str(policy), "--model-license", "m=CC-BY-NC-4.0", "-f", "json")
    assert code == 1 and [r["name"] for r in json.loads(out)["results"] if r["status"] == "denied"] == ["m"]
    code, out, _ = deps("licenses", "--show-policy")
    assert code == 0 and parse_policy(out) == load_policy()
    policy.write_text('allow = ["MIT"\n')
    for args in (
        ["--policy", str(policy)],
        ["--policy", str(tmp_path / "none.toml")],
        ["--model-license", "no-equals"],
    ):
        assert one_line_error(*deps("licenses", *args)[::2])
