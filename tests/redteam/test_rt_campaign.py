"""The campaign against a real gateway on loopback: every attack, scored from the gateway's own audit log.

Five attacks under five keys with small budgets: the joint report has the contract's fields and types, each row
credits only its own key's events, and a stolen model's fidelity or a membership AUC is what the attacker got.
"""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from modelshield.core.datasets import sklearn_dataset
from modelshield.demo import DEMO_NUM_CLASSES
from modelshield.redteam import ATTACKS, CampaignPlan, blue_rules, run_campaign, score_campaign, target_from_data
from modelshield.redteam.report import joint_report, write_report
from tests.serve.server.conftest import ARCH, make_state, running, secure_config


def test_rt_campaign_writes_the_joint_report(victim_weights: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = victim_weights
    names = list(ATTACKS)
    state = make_state(tmp_path / "gw", {f"red-{a}": ["predictor"] for a in names})
    generous = {"per_identity_rps": 1000, "per_identity_burst": 1000}  # each sample of a batch costs a token
    config = secure_config(state, {"demo": {"path": str(path), "digest": digest, **ARCH}}, rate_limits=generous)
    plan = CampaignPlan(budget=60, evasion_samples=2, epochs=2)
    test, train = sklearn_dataset("digits", "test"), sklearn_dataset("digits", "train")
    with running(config) as url:
        target = target_from_data(f"{url}/v1/models/demo/predict", test, train, plan, None, DEMO_NUM_CLASSES)
        runs = run_campaign(target, plan, [(a, f"red-{a}", state.keys[f"red-{a}"]) for a in names], settle_s=0.3)
    engine = sa.create_engine(state.db_url)
    rows = score_campaign(runs, engine, blue_rules(), settle_s=0.5)
    engine.dispose()
    report = joint_report(rows, target=url, budget=plan.budget, blue="audit log")
    json_path, md_path = write_report(report, tmp_path / "out")

    doc = json.loads(json_path.read_text())
    assert [r["attack"] for r in doc["attacks"]] == names
    for row in doc["attacks"]:
        assert isinstance(row["queries"], int) and row["queries"] > 0
        assert isinstance(row["success"], float) and 0.0 <= row["success"] <= 1.0
        assert isinstance(row["detected"], bool) and isinstance(row["controls"], list)
        assert (row["detected_after_queries"] is None) == (not row["detected"])
        if row["detected"]:
            assert 0 < row["detected_after_queries"] <= row["queries"]
    by = {r["attack"]: r for r in doc["attacks"]}
    assert by["square"]["details"]["samples"] == 2 and by["square"]["queries"] >= 2
    assert by["jacobian"]["stop_reason"] == "budget" and by["jacobian"]["details"]["answered"] == plan.budget
    assert by["jacobian"]["success"] > by["knockoff"]["success"] - 0.5  # both real fidelities on held-out digits
    assert by["membership"]["details"]["members"] == by["membership"]["details"]["non_members"] == 30
    # no guard, generous limits, small budgets: nothing throttled or denied any attack
    assert not {"rate_limited", "denied"} & {c for r in doc["attacks"] for c in r["controls"]}
    assert "| attack | queries | success |" in md_path.read_text()


def test_rt_large_budget_keeps_data_to_measure_fidelity_on() -> None:
    """450 test digits, budget 1000: the non-members are capped so the fidelity set is never empty (no NaN)."""
    test, train = sklearn_dataset("digits", "test"), sklearn_dataset("digits", "train")
    target = target_from_data("http://127.0.0.1:9/p", test, train, CampaignPlan(budget=1000), None, 10)
    assert len(target.eval_x) >= len(target.non_members) > 100 and len(target.seed_x) == 100
    assert len(target.members) == len(target.non_members) and len(target.attack_x) == 5
