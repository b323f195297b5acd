"""``assess --demo --privacy``: the overfit baseline leaks its canaries, its DP twin does not, and the rows fit report.json."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from entrypoint import invoke_main
from jsonschema import Draft202012Validator

from modelshield.assess.config import AssessConfig
from modelshield.assess.privacy import DEMO_DELTA, DEMO_EPSILON, demo_audit, privacy_section, thin_roc
from modelshield.assess.results import AssessmentResult
from modelshield.core.errors import InputError
from modelshield.privacy.audit import MembershipAudit
from modelshield.report import RENDERERS

SCHEMA = json.loads(files("modelshield.report").joinpath("schemas/report.schema.json").read_text())


@pytest.fixture(scope="module")
def audits() -> list[MembershipAudit]:
    return demo_audit(seed=0)


def test_every_attack_runs_on_both_models(audits: list[MembershipAudit]) -> None:
    assert {(a.attack, a.model) for a in audits} == {
        (attack, model) for attack in ("loss", "rmia-online") for model in ("baseline", "dp")
    }


def test_the_overfit_baseline_gives_its_canaries_away(audits: list[MembershipAudit]) -> None:
    for a in (a for a in audits if a.model == "baseline"):
        assert a.epsilon is None
        assert a.roc.auc > 0.9 and a.roc.tpr_at_fpr_0_01 > 0.5
        assert a.bound.epsilon > 2.0  # clearly above 0 at 95% confidence, under the ~3.5 these 500 canaries can show


def test_the_dp_twin_stays_under_its_accountant(audits: list[MembershipAudit]) -> None:
    for a in (a for a in audits if a.model == "dp"):
        assert a.epsilon is not None and 0 < a.epsilon <= DEMO_EPSILON
        assert a.bound.delta == DEMO_DELTA
        assert a.bound.epsilon <= a.epsilon and not a.contradicts_accountant
        assert a.roc.auc <= 0.55  # issue 12's target for the DP model
        assert a.bound.epsilon_max > DEMO_EPSILON  # the audit could have refuted the accountant, and did not


def test_rows_validate_against_the_report_schema(audits: list[MembershipAudit]) -> None:
    rows, curves = privacy_section(audits)
    result = AssessmentResult(
        version="0",
        created="2026-01-01T00:00:00+00:00",
        model={},
        data={},
        clean_accuracy=1.0,
        privacy=rows,
        privacy_roc=curves,
    )
    document = json.loads(RENDERERS["json"].render(result))
    Draft202012Validator(SCHEMA).validate(document)
    baseline = [r for r in document["privacy"] if r["model"] == "baseline"]
    assert all(r["epsilon"] is None and r["epsilon_lower_bound"] > 2 for r in baseline)
    assert all(len(c["fpr"]) <= 170 for c in document["privacy_roc"])


def test_thin_roc_keeps_the_ends_and_the_low_fpr_steps() -> None:
    fpr = np.r_[0.0, np.sort(np.random.default_rng(0).random(5000)), 1.0]
    tpr = np.sqrt(fpr)
    thin_fpr, thin_tpr = thin_roc(fpr, tpr, points=100)
    assert len(thin_fpr) <= 104 and thin_fpr[0] == 0.0 and thin_fpr[-1] == 1.0
    assert np.all(np.diff(thin_fpr) >= 0) and np.all(np.diff(thin_tpr) >= 0)
    assert sum(f < 0.01 for f in thin_fpr) >= 20  # the region a log-scale plot stretches keeps its detail
    assert thin_roc(fpr[:50], tpr[:50]) == (fpr[:50].tolist(), tpr[:50].tolist())


@pytest.mark.parametrize("flag", ["privacy", "poisoning"])
def test_without_the_demo_the_audits_are_refused_in_one_line(flag: str) -> None:
    with pytest.raises(InputError, match=f"--{flag} trains models on their training data.*--demo") as err:
        AssessConfig(**{flag: True}).validate()
    assert "\n" not in str(err.value)
    AssessConfig(**{flag: True, "demo": True}).validate()


def test_privacy_on_a_model_file_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["assess", "--model", str(tmp_path / "m.safetensors"), "--data", "sklearn:digits", "--privacy"]
    code, _, err = invoke_main([*args, "--out", str(tmp_path / "out")], monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "--privacy" in lines[0] and "training data" in lines[0] and "--demo" in lines[0]
    assert not (tmp_path / "out").exists()  # refused before anything was trained or written


QUICK = ["--samples", "60", "--steps", "3", "--queries", "30", "--attacks", "fgsm,pgd"]


@pytest.mark.slow
def test_demo_with_privacy_and_poisoning_fills_both_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["assess", "--demo", "--privacy", "--poisoning", "--out", str(tmp_path), *QUICK]
    code, _, err = invoke_main(args, monkeypatch, capsys)
    assert code == 0, err
    document = json.loads((tmp_path / "report.json").read_text())
    Draft202012Validator(SCHEMA).validate(document)
    rows = {(r["attack"], r["model"]): r for r in document["privacy"]}
    assert set(rows) == {(a, m) for a in ("loss", "rmia-online") for m in ("baseline", "dp")}
    assert all(
        r["epsilon_lower_bound"] <= r["epsilon"] and r["auc"] <= 0.55 for r in rows.values() if r["model"] == "dp"
    )
    assert all(r["epsilon_lower_bound"] > 2 for r in rows.values() if r["model"] == "baseline")
    poison = {(r["attack"], r["defence"]) for r in document["poisoning"]}
    assert poison == {("badnets", "strip"), ("random-flip", "confident-learning")}
    html = (tmp_path / "report.html").read_text()
    assert 'alt="Membership-inference ROC, log scale"' in html and 'id="poisoning"' in html
    markdown = (tmp_path / "report.md").read_text()
    assert "| loss | dp |" in markdown and "| badnets |" in markdown
    assert "privacy  loss" in err and "poison   badnets" in err
