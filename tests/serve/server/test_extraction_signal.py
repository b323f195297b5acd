"""The extraction signal is on by default: a burst of near-duplicate queries flags its caller (metric + audit
event) while the same number of ordinary dataset queries from another caller does not."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np

from modelshield.core.datasets import sklearn_dataset
from tests.serve.server.conftest import ARCH, make_state, running, secure_config


def _flag_count(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('modelshield_extraction_flags_total{model="demo"}'):
            return float(line.split()[-1])
    return 0.0


def test_extraction_burst_raises_the_signal_and_normal_traffic_does_not(weights: tuple[Path, str], tmp_path: Path):
    state = make_state(tmp_path, {"thief": ["predictor"], "user": ["predictor"]})
    path, digest = weights
    config = secure_config(state, {"demo": {"path": str(path), "digest": digest, **ARCH}})
    assert config.rate_limits.extraction_signal  # on by default
    x = sklearn_dataset("digits", "test", seed=0).x[:60].numpy()
    rng = np.random.default_rng(0)
    probes = np.clip(x[0] + rng.normal(0, 0.01, size=(60, *x.shape[1:])), 0, 1).astype(np.float32)
    with running(config) as url, httpx.Client(base_url=url, timeout=30) as client:
        for label, key, queries in (("user", state.keys["user"], x), ("thief", state.keys["thief"], probes)):
            for q in queries:
                r = client.post(
                    "/v1/models/demo/predict", json={"inputs": [q.tolist()]}, headers={"Authorization": f"Bearer {key}"}
                )
                assert r.status_code == 200, (label, r.text)
            if label == "user":  # ordinary traffic raises nothing (a late flag would also show in the audit below)
                assert _flag_count(client) == 0.0
        deadline = time.monotonic() + 5
        while _flag_count(client) < 1.0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _flag_count(client) == 1.0  # flagged once, not once per query
    flags = [e for e in state.audit_events() if e.get("action") == "security.extraction"]
    assert [f["actor"]["subject"] for f in flags] == ["thief"]
    assert flags[0]["extraction"]["extraction_flagged"] is True and flags[0]["extraction"]["near_duplicate_share"] > 0.5
