"""Who gets the blame: a campaign stopped by the rate limit records the stop, and another caller's denials in
the same seconds are not credited to it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from modelshield.core.datasets import sklearn_dataset
from modelshield.demo import DEMO_NUM_CLASSES
from modelshield.redteam import (
    CampaignPlan,
    blue_rules,
    remote_victim,
    run_attack,
    score_campaign,
    target_from_data,
)
from tests.serve.server.conftest import ARCH, make_state, running, secure_config


def test_rt_rate_limited_attack_is_stopped_and_blamed_only_for_its_own_key(
    victim_weights: tuple[Path, str], tmp_path: Path
) -> None:
    path, digest = victim_weights
    state = make_state(tmp_path / "gw", {"red-square": ["predictor"], "bystander": ["auditor"]})
    config = secure_config(
        state,
        {"demo": {"path": str(path), "digest": digest, **ARCH}},
        rate_limits={"per_identity_rps": 2, "per_identity_burst": 12},
    )
    plan = CampaignPlan(budget=200, evasion_samples=4)
    test = sklearn_dataset("digits", "test")
    stop = threading.Event()

    with running(config) as url:
        target = target_from_data(f"{url}/v1/models/demo/predict", test, None, plan, None, DEMO_NUM_CLASSES)
        body = {"inputs": test.x[:1].tolist()}

        def bystander() -> None:  # a caller without predict rights, denied while the attack runs
            with httpx.Client(headers={"Authorization": f"Bearer {state.keys['bystander']}"}) as client:
                while not stop.is_set():
                    client.post(f"{url}/v1/models/demo/predict", json=body)
                    time.sleep(0.05)

        thread = threading.Thread(target=bystander)
        thread.start()
        try:
            run = run_attack(
                "square",
                target,
                plan,
                subject="red-square",
                model_factory=lambda: remote_victim(target, state.keys["red-square"], plan),
            )
        finally:
            stop.set()
            thread.join()

    assert run.stop_reason == "refused" and run.refusal is not None
    assert run.refusal["kind"] == "rate_limited" and run.refusal["status"] == 429
    assert run.queries < plan.budget  # stopped by the limit, not by the budget
    engine = sa.create_engine(state.db_url)
    (row,) = score_campaign([run], engine, blue_rules(), settle_s=0.5)
    engine.dispose()
    events = state.audit_events()
    mine = [e for e in events if e.get("decision") == "rate_limited" and e["actor"]["subject"] == "red-square"]
    theirs = [e for e in events if e.get("decision") == "deny" and e["actor"]["subject"] == "bystander"]
    assert mine and len(theirs) >= 3  # both happened, in the same seconds
    assert row["stop_reason"] == "refused" and row["stopped_by"]["kind"] == "rate_limited"
    assert row["control_detail"]["rate_limited"]["count"] == len(mine)
    assert "denied" not in row["controls"] and "alert:denied-caller" not in row["controls"]
    assert row["detected"] and "alert:throttled-caller" in row["controls"]
    assert row["detected_after_queries"] <= row["queries"]
    assert row["first_action_after_queries"] <= row["detected_after_queries"]
