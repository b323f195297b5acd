"""The registry's history, replayed from its audit log, matches what the registry itself served at each past
instant: through a canary, a full promotion, a rollback, a pin and a retirement."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modelshield.cli.audit import existing_log
from modelshield.core.errors import InputError
from modelshield.govern.history import served_shares, timeline, version_at
from modelshield.govern.inventory import inventory, to_csv
from modelshield.registry import Registry

if TYPE_CHECKING:
    from conftest import PipelineRun


def _serving(reg: Registry, name: str) -> dict[int, float]:
    """What the registry says the gateway serves now (``Registry.get`` + ``Registry.canary``)."""
    try:
        primary = reg.get(name)
    except InputError:
        return {}
    if primary.pinned:
        return {primary.version: 100.0}
    canary = reg.canary(name)
    if canary is None:
        return {primary.version: 100.0}
    share = float(canary.canary_percent or 0.0)
    return {primary.version: 100.0 - share, canary.version: share}


def test_version_at_any_past_instant_matches_the_registry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    steps: list[tuple[datetime, dict[int, float]]] = []
    with Registry.open(url) as reg:
        for i in range(3):
            (tmp_path / f"m{i}.bin").write_bytes(bytes([i]) * 64)
            reg.register("fraud", tmp_path / f"m{i}.bin", owner="risk-team", actor="alice")
        changes = [
            lambda: reg.promote("fraud", 1, "staged", actor="alice"),
            lambda: reg.promote("fraud", 1, "production", actor="bob"),
            lambda: reg.promote("fraud", 2, "staged", actor="alice"),
            lambda: reg.promote("fraud", 2, "production", canary=20, actor="carol"),
            lambda: reg.promote("fraud", 2, "production", actor="carol"),  # the canary goes to 100 %
            lambda: reg.promote("fraud", 1, "production", actor="dave"),  # rollback
            lambda: reg.pin("fraud", 3, actor="erin"),
            lambda: reg.unpin("fraud", actor="erin"),
            lambda: reg.retire("fraud", 2, actor="frank"),
        ]
        for change in changes:
            change()
            time.sleep(0.002)
            steps.append((datetime.now(UTC), _serving(reg, "fraud")))
            time.sleep(0.002)
    audit = existing_log(url)
    try:
        for instant, expected in steps:
            found = version_at(audit, "fraud", instant)
            assert (found.shares if found else {}) == expected, instant
        history = timeline(audit, "fraud")
        canary = next(h for h in history if len(h.shares) == 2)
        assert canary.shares == {1: 80.0, 2: 20.0}
        assert (canary.approval.action, canary.approval.actor, canary.approval.version) == ("promote", "carol", 2)
        rollback = next(h for h in history if h.approval.actor == "dave")
        assert rollback.shares == {1: 100.0} and rollback.until is not None
        assert history[-1].until is None
        assert version_at(audit, "fraud", datetime(2000, 1, 1, tzinfo=UTC)) is None
        with pytest.raises(InputError, match="no record"):
            timeline(audit, "other")
        with Registry.open(url) as reg:
            rows = inventory(reg.list(), audit)
    finally:
        audit.dispose()
    assert [(r["version"], r["status"], r["traffic_percent"]) for r in rows] == [
        (1, "production", 100.0),
        (2, "retired", 0.0),
        (3, "registered", 0.0),
    ]
    assert rows[0]["approved_by"] == "erin"  # her unpin put v1 back to 100 % (the retirement changed nothing)
    assert to_csv(rows).splitlines()[1].startswith("fraud,1,production,100.0,")


def test_csv_cells_that_would_run_as_formulas_are_quoted(tmp_path: Path) -> None:
    row = {"model": "m", "version": 1, "owner": '=HYPERLINK("x")', "datasets": ["@evil", "ok"]}
    line = to_csv([row]).splitlines()[1]
    assert "'=HYPERLINK" in line and "'@evil;ok" in line


def test_served_shares_count_the_gateways_predictions(pipeline_run: PipelineRun) -> None:
    gateway = existing_log(pipeline_run.gateway_db)
    try:
        assert served_shares(gateway, "digits") == {1: len(pipeline_run.request_ids)}
        assert served_shares(gateway, "digits", since=datetime.now(UTC)) == {}
    finally:
        gateway.dispose()
