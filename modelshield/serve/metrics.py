"""Prometheus metrics for the gateway, one registry per app, label children cached so a request costs little.

With ``uvicorn --workers N`` set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder: ``/metrics`` then
aggregates every worker (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from functools import lru_cache

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class GatewayMetrics:
    """The gateway's counters and histograms; ``render()`` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "modelshield_requests",
            "Requests answered, by route, model, version and status.",
            ("route", "model", "version", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "modelshield_request_seconds",
            "Time from the first byte read to the response, by route and model.",
            ("route", "model"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.denials = Counter(
            "modelshield_denials",
            "Requests refused by authentication (authn) or authorisation (authz).",
            ("kind",),
            registry=r,
        )
        self.rate_limited = Counter(
            "modelshield_rate_limited",
            "Requests refused by a rate limit or quota, by scope.",
            ("scope",),
            registry=r,
        )
        self.validation_failures = Counter(
            "modelshield_validation_failures",
            "Requests refused by validation, by HTTP status.",
            ("status",),
            registry=r,
        )
        self.guard_decisions = Counter(
            "modelshield_guard_decisions",
            "Adversarial-guard decisions, by action.",
            ("action",),
            registry=r,
        )
        self.audit_append = Histogram(
            "modelshield_audit_append_seconds",
            "Time to append (durably) one audit record.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.shadow = Counter(
            "modelshield_shadow_comparisons",
            "Shadow predictions compared with the primary, by model and outcome.",
            ("model", "outcome"),
            registry=r,
        )
        self.integrity_failures = Counter(
            "modelshield_integrity_failures",
            "Served model versions whose bytes no longer match their pinned digest.",
            ("model", "version"),
            registry=r,
        )
        self.extraction_flags = Counter(
            "modelshield_extraction_flags",
            "Callers newly flagged by the model-extraction signal, by model.",
            ("model",),
            registry=r,
        )
        # live monitoring (modelshield.serve.live): per-worker windows; in multiprocess mode the worst worker shows
        self.drift_detected = Gauge(
            "modelshield_drift_detected",
            "1 when the last drift check of the model's live input window found drift, else 0.",
            ("model",),
            registry=r,
            multiprocess_mode="max",
        )
        self.drift_share = Gauge(
            "modelshield_drift_feature_share",
            "Share of input features that drifted in the last check of the model's live window.",
            ("model",),
            registry=r,
            multiprocess_mode="max",
        )
        self.drift_min_p = Gauge(
            "modelshield_drift_min_p_value",
            "Smallest drift-test p-value in the last check of the model's live window.",
            ("model",),
            registry=r,
            multiprocess_mode="min",
        )
        self.drift_checks = Counter(
            "modelshield_drift_checks",
            "Drift checks run on live windows, by model and verdict.",
            ("model", "drift"),
            registry=r,
        )
        self.drift_check_seconds = Histogram(
            "modelshield_drift_check_seconds",
            "Time one live check (drift tests and output monitor) took, off the request path.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.output_alarms = Counter(
            "modelshield_output_alarms",
            "Output-monitor alarms (CUSUM / Page-Hinkley), by model, kind (evasion, poisoning) and stream.",
            ("model", "kind", "stream"),
            registry=r,
        )
        self.live_window_rows = Gauge(
            "modelshield_live_window_rows",
            "Inputs held in the model's live window.",
            ("model",),
            registry=r,
            multiprocess_mode="max",
        )
        self.request = lru_cache(maxsize=4096)(self._request_children)

    def _request_children(self, route: str, model: str, version: str, status: int) -> tuple[Counter, Histogram]:
        return self.requests.labels(route, model, version, str(status)), self.latency.labels(route, model)

    def observe_request(self, route: str, model: str, version: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency (label children are looked up once per combination)."""
        count, hist = self.request(route, model, version, status)
        count.inc()
        hist.observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of this app (every worker's, in multiprocess mode)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)
