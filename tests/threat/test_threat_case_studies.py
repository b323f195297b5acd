"""ATLAS case studies as threat-model examples: every real incident's steps mapped onto the rule library."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import yaml
from entrypoint import invoke_main as run

from modelshield.threat.atlas import load_atlas, release
from modelshield.threat.case_studies import case_studies, case_study, render_study_markdown, study_json
from modelshield.threat.rules import builtin_rules, parse_rules

if TYPE_CHECKING:
    import pytest


def test_every_case_study_of_the_release_is_mapped_step_by_step() -> None:
    studies = case_studies()
    raw = release()["case-studies"]
    assert [s.id for s in studies] == [c["id"] for c in raw] and len(studies) == 57
    atlas = load_atlas()
    for study, source in zip(studies, raw, strict=True):
        assert [s.technique for s in study.steps] == [p["technique"] for p in source["procedure"]]
        for step in study.steps:
            assert step.technique in atlas.techniques and step.tactic in atlas.tactics
            assert set(step.mitigations) <= set(atlas.mitigations)
    # the malware C&C evasion exercise: its "Evade AI Model" step is what ML-EVASION raises
    cs0000 = case_study("AML.CS0000")
    evade = next(s for s in cs0000.steps if s.technique == "AML.T0015")
    assert evade.rules == ("ML-EVASION",) and "modelshield assess" in evade.controls
    recon = next(s for s in cs0000.steps if s.technique.startswith("AML.T0000"))
    assert recon.rules == () and "AML.M0000" in recon.mitigations  # a gap the rules do not cover, shown as such


def test_a_team_rule_citing_a_technique_covers_its_steps() -> None:
    before = case_study("AML.CS0000")
    extra = parse_rules(
        yaml.safe_load(
            """
rules:
  - id: ORG-PREPRINT
    title: Our approach is described in public papers
    description: Attackers read the papers to pick a proxy model.
    applies_to: element
    stride: [information_disclosure]
    atlas: [AML.T0000]
    severity: low
    when: {kind: [training_job]}
    mitigations: [{atlas: AML.M0000, action: Review what is published.}]
"""
        ),
        "org rules",
    )
    after = case_study("AML.CS0000", builtin_rules(), extra)
    assert after.covered == before.covered + 1  # AML.T0000.001 shares the base technique AML.T0000


def test_json_and_markdown_name_techniques_from_the_release() -> None:
    study = case_study("AML.CS0004")
    doc = study_json(study)
    atlas = load_atlas()
    assert doc["covered_steps"] == sum(bool(s["rules"]) for s in doc["steps"])
    assert all(s["technique_name"] == atlas.techniques[s["technique"]] for s in doc["steps"])
    text = render_study_markdown(study)
    assert "https://atlas.mitre.org/techniques/AML.T0015" in text and f"of {len(study.steps)} steps" in text


def test_cli_lists_renders_and_refuses_unknown_ids(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["threat", "case-study", "--format", "json"], monkeypatch, capsys)
    assert code == 0, err
    assert len(json.loads(out)) == 57
    code, out, err = run(["threat", "case-study", "AML.CS0000"], monkeypatch, capsys)
    assert code == 0 and "[guard]" in out  # rich markup must not eat the control names
    code, out, err = run(["threat", "case-study", "AML.CS9999"], monkeypatch, capsys)
    assert code == 2 and "no case study 'AML.CS9999'" in err and "Traceback" not in err
