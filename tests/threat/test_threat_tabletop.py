"""Tabletop exercises from a threat model or an ATLAS case study: injects, expected responses, escalation."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import yaml
from entrypoint import invoke_main as run

from modelshield.core.errors import InputError
from modelshield.threat import analyse, builtin_rules, demo_system
from modelshield.threat.case_studies import case_study
from modelshield.threat.findings import Decision, Status
from modelshield.threat.tabletop import builtin_playbook, from_case_study, from_report, parse_playbook

if TYPE_CHECKING:
    from pathlib import Path


def test_report_exercise_takes_the_worst_open_findings_with_their_escalation() -> None:
    report = analyse(demo_system(), [builtin_rules()])
    first = report.findings[0]
    decided = analyse(demo_system(), [builtin_rules()], {first.id: Decision(status=Status.accepted)})
    ex = from_report(decided, builtin_playbook(), injects=3, interval=15)
    assert [i.at_minutes for i in ex.injects] == [0, 15, 30]
    assert all(first.title not in i.title for i in ex.injects)  # accepted findings are not exercised
    top = ex.injects[0]
    esc = builtin_playbook().escalation[top.severity]  # type: ignore[index]
    assert top.within_minutes == esc.within_minutes and len(top.notify) == len(esc.notify)
    assert top.detect and all(c.startswith("modelshield") for c in top.detect)


def test_case_study_exercise_replays_each_step_and_flags_the_uncovered_ones() -> None:
    study = case_study("AML.CS0000")
    ex = from_case_study(study, builtin_playbook(), (builtin_rules(),))
    assert len(ex.injects) == len(study.steps)
    assert sum(i.covered for i in ex.injects) == study.covered
    blind = next(i for i in ex.injects if not i.covered)
    assert blind.severity is None and blind.notify == () and "No modelshield rule covers" in blind.questions[0]
    evade = next(i for i in ex.injects if i.techniques == ("AML.T0015",))
    assert evade.severity is not None and any("ML-EVASION" in d for d in evade.detect)


def test_settings_are_checked_against_roles_and_the_atlas_release(tmp_path: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(builtin_playbook().model_dump(mode="json")))
    data["escalation"]["high"]["notify"] = ["ghost"]
    with pytest.raises(InputError, match="unknown roles"):
        parse_playbook(data, "mine")
    data = builtin_playbook().model_dump(mode="json")
    data["questions"]["AML.TA9999"] = ["?"]
    with pytest.raises(InputError, match="not a tactic in ATLAS"):
        parse_playbook(data, "mine")


def test_cli_writes_markdown_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exercise.md"
    code, _, err = run(["threat", "tabletop", "--demo", "--injects", "2", "-o", str(out)], monkeypatch, capsys)
    assert code == 0, err
    text = out.read_text()
    assert text.count("### ") == 2 and "Escalate within" in text
    code, stdout, err = run(["threat", "tabletop", "--case-study", "AML.CS0001", "-f", "json"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(stdout)["source"].startswith("MITRE ATLAS AML.CS0001")
    code, _, err = run(["threat", "tabletop", "--demo", "--case-study", "AML.CS0001"], monkeypatch, capsys)
    assert code == 2 and "one of them" in err
