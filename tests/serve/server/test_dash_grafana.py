"""deploy/grafana/modelshield-dashboard.json asks only for series a real gateway exports: every metric name in
every PromQL expression is one of the families on a live gateway's /metrics (the drift ones included)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.serve.server.conftest import ARCH, make_state, running, secure_config

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "modelshield-dashboard.json"
#: the series a family of each type exports
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_series(metrics: str) -> set[str]:
    """Series names from the exposition's ``# TYPE`` lines (families with labels are declared before any sample)."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics, re.M):
        base = name.removesuffix("_total") if kind == "counter" else name
        names.update(base + s for s in _SUFFIXES.get(kind, ("",)))
    return names


def test_every_grafana_query_names_a_series_the_gateway_exports(weights: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = weights
    state = make_state(tmp_path, {"alice": ["predictor"]})
    config = secure_config(
        state,
        {"digits": {"path": str(path), "digest": digest, **ARCH}},
        monitor={"reference_data": "sklearn:digits:train"},
    )
    with running(config) as url:
        series = exported_series(httpx.get(f"{url}/metrics", timeout=30).text)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    used = {name for e in exprs for name in re.findall(r"\bmodelshield_[a-z_]+", e)}
    assert {"modelshield_drift_detected", "modelshield_output_alarms_total", "modelshield_denials_total"} <= used
    assert used <= series, f"not exported by the gateway: {sorted(used - series)}"
    assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in dashboard["panels"])
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
