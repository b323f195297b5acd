"""The gateway application: every predict request goes through the same pipeline, in this order.

    Content-Length cap → authenticate → authorise (policy) → rate limits → read body (capped)
      → JSON depth + parse → validate against the model's signature → daily quota (per sample)
      → guard (optional) → predict (batched, off the event loop) → audit append (durable) → respond

The audit record of a request is committed before its response is sent; if the audit log cannot
take it, the client gets 503 and never an unaudited 2xx. Denials (401/403/429/4xx) are audited too.
Errors are JSON ``{"error": ..., "request_id": ...}`` with the status their exception carries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError as FastAPIValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelshield.core.errors import InputError
from modelshield.serve.auth import Identity
from modelshield.serve.config import ModelRoute, ModelSource, ServeConfig, load_config
from modelshield.serve.errors import (
    AuthorizationError,
    GatewayError,
    RateLimitedError,
    RequestValidationError,
    ServiceUnavailableError,
)
from modelshield.serve.metrics import CONTENT_TYPE, GatewayMetrics
from modelshield.serve.routing import Router
from modelshield.serve.runtime import LoadedModel, load_source, rehash_forever
from modelshield.serve.validation import (
    Guard,
    batch_from_payload,
    declared_length_ok,
    parse_json,
    read_capped,
)

log = logging.getLogger("modelshield.serve")
access = logging.getLogger("modelshield.serve.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_JSON = "application/json"

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "request_id": {"type": "string"}},
}
_ERRORS = {
    400: "Malformed request: not JSON, nested too deep, or a bad header.",
    401: "No, bad, expired or revoked credentials.",
    403: "Authenticated, but the policy does not allow it.",
    404: "No such model.",
    413: "Body or batch over the configured limit.",
    422: "The inputs do not fit the model's input signature (shape, dtype, range, NaN/Inf).",
    429: "Over a rate limit or quota; see Retry-After.",
    500: "The model failed on a valid input.",
    503: "The model version failed its integrity check, or a dependency (audit log, Redis) is down.",
}


def _error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"description": _ERRORS[code], "content": {_JSON: {"schema": _ERROR_SCHEMA}}}
        if code == 429:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
        out[code] = entry
    return out


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, media_type=_JSON, headers=headers)


def _error_response(exc: Exception, request_id: str) -> Response:
    status = exc.status if isinstance(exc, GatewayError) else 500
    message = str(exc) if isinstance(exc, GatewayError) else "internal error"
    headers = {"X-Request-ID": request_id}
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="modelshield"'
    return _json({"error": message, "request_id": request_id}, status, headers)


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    return given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex


def _decision(exc: Exception) -> str:
    if isinstance(exc, RateLimitedError):
        return "rate_limited"
    if isinstance(exc, RequestValidationError):
        return "invalid"
    if isinstance(exc, GatewayError) and exc.status in (401, 403, 404):
        return "deny"
    return "error"


def _predict_openapi(route: ModelRoute, gateway: Gateway, name: str) -> dict[str, Any]:
    """The request body schema of one model's predict operation, from its input signature."""
    signature = gateway.routers[name].primary.signature
    return {
        "requestBody": {
            "required": True,
            "content": {
                _JSON: {
                    "schema": {
                        "type": "object",
                        "required": ["inputs"],
                        "additionalProperties": False,
                        "properties": {
                            "inputs": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": gateway.config.validation.max_batch,
                                "items": signature.json_schema(),
                            }
                        },
                    }
                }
            },
        }
    }


_PREDICTION_SCHEMA = {
    "type": "object",
    "required": ["model", "version", "digest", "predictions", "probabilities", "request_id"],
    "properties": {
        "model": {"type": "string"},
        "version": {"type": "string"},
        "digest": {"type": "string"},
        "predictions": {"type": "array", "items": {"type": "integer"}},
        "probabilities": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "request_id": {"type": "string"},
    },
}


class _NotFound(GatewayError):
    status = 404


class Gateway:
    """The controls and models one app serves with; built once by ``Gateway.start`` from the config."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = GatewayMetrics()
        self.routers: dict[str, Router[LoadedModel]] = {}
        self.registry: Any = None
        self.api_keys: Any = None
        self.authenticator: Any = None
        self.policy: Any = None
        self.limiters: list[tuple[str, Any]] = []
        self.quota: Any = None
        self.audit_log: Any = None
        self.audit_public_key: Any = None
        self.extraction: Any = None

    @classmethod
    def start(cls, config: ServeConfig) -> Gateway:
        """Open the stores, build the controls, load and verify every model version; refuse to start on any error."""
        g = cls(config)
        for setting in config.insecure_settings():
            log.warning("INSECURE: %s — this gateway runs with a security control off", setting)
        try:
            g._open_stores()
            g._build_controls()
            g._load_models()
        except BaseException:
            g.close()
            raise
        return g

    def _open_stores(self) -> None:
        c = self.config
        if not c.audit.insecure_disabled:
            from modelshield.audit import AuditLog
            from modelshield.audit.keys import load_private_key, load_public_key

            key = load_private_key(c.audit.signing_key_file) if c.audit.signing_key_file else None
            if c.audit.public_key_file is not None:
                self.audit_public_key = load_public_key(c.audit.public_key_file)
            elif key is not None:
                self.audit_public_key = key.public_key()
            self.audit_log = AuditLog.open(
                c.database_url(), signing_key=key, checkpoint_every=c.audit.checkpoint_every,
                checkpoint_seconds=c.audit.checkpoint_seconds, witness=c.audit.witness_file,
            )
        if any(r.path is None or (r.canary and r.canary.path is None) or (r.shadow and r.shadow.path is None)
               for r in c.models.values()):
            from modelshield.registry import Registry

            self.registry = Registry.open(c.store_url(), audit=self.audit_log)

    def _build_controls(self) -> None:
        c = self.config
        if not c.auth.insecure_disabled:
            from modelshield.serve.auth import Authenticator

            jwt = mtls = None
            if c.auth.api_keys:
                from modelshield.serve.apikeys import ApiKeyStore

                self.api_keys = ApiKeyStore.open(c.store_url(), pepper_file=c.auth.api_key_pepper_file)
            if c.auth.jwks_file is not None:
                from modelshield.serve.jwt_auth import JwtVerifier

                jwt = JwtVerifier(c.auth.jwks_file, issuer=c.auth.issuer or "", audience=c.auth.audience or "")
            if c.auth.mtls_ca_file is not None:
                from modelshield.serve.mtls import MtlsConfig

                mtls = MtlsConfig(role_map=c.auth.mtls_role_map, tenant_map=c.auth.mtls_tenant_map,
                                  required=c.auth.mtls_required)
            self.authenticator = Authenticator(api_keys=self.api_keys, jwt=jwt, mtls=mtls)
        if not c.policy.insecure_disabled:
            from modelshield.serve.policy import PolicyEngine

            files = {"model_conf": c.policy.model_file, "policy": c.policy.policy_file}
            self.policy = PolicyEngine.from_files(**{k: v for k, v in files.items() if v is not None})
        if not c.rate_limits.insecure_disabled:
            self._build_limiters()
            if c.rate_limits.extraction_signal:
                from modelshield.serve.extraction import ExtractionMonitor

                self.extraction = ExtractionMonitor()

    def _build_limiters(self) -> None:
        from modelshield.serve.ratelimit import DailyQuota, LocalTokenBucket, RedisTokenBucket

        rl, redis_url = self.config.rate_limits, self.config.redis_url()

        def bucket(rate: float, burst: float) -> Any:
            if redis_url:
                return RedisTokenBucket(redis_url, rate, burst, fail_open=rl.fail_open)
            return LocalTokenBucket(rate, burst)

        self.limiters = [("identity", bucket(rl.per_identity_rps, rl.per_identity_burst)),
                         ("model", bucket(rl.per_model_rps, rl.per_model_burst))]
        if rl.daily_quota is not None:
            self.quota = DailyQuota(rl.daily_quota, redis_url=redis_url, fail_open=rl.fail_open)

    def _load_models(self) -> None:
        for name, route in self.config.models.items():
            primary = load_source(name, route, self.registry)
            canary_source, percent = route.canary, route.canary.percent if route.canary else 0.0
            if canary_source is None and route.path is None and route.version is None:
                canary_source, percent = self._registry_canary(route.registry_name or name)
            canary = load_source(name, canary_source, self.registry) if canary_source else None
            shadow = load_source(name, route.shadow, self.registry) if route.shadow else None
            for candidate in (canary, shadow):
                if candidate is not None and candidate.signature != primary.signature:
                    raise InputError(f"model {name}: candidate version {candidate.version} takes different inputs "
                                     f"({candidate.signature}) than the primary ({primary.signature})")
            self.routers[name] = Router(
                name, primary, canary=canary, canary_percent=percent,
                sticky=route.canary.sticky if route.canary else "identity", shadow=shadow,
                shadow_percent=route.shadow.percent if route.shadow else 0.0,
            )

    def _registry_canary(self, registry_name: str) -> tuple[ModelSource | None, float]:
        """A canary release promoted in the registry (``registry promote --canary P``) when the config names none."""
        mv = self.registry.canary(registry_name)
        if mv is None:
            return None, 0.0
        return ModelSource(registry_name=registry_name, version=mv.version), float(mv.canary_percent)

    # -- per request -------------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Identity:
        if self.authenticator is None:
            return Identity("anonymous", "none", ("anonymous",))  # type: ignore[arg-type]
        peer = None
        if self.authenticator.mtls is not None:
            from modelshield.serve.mtls import peer_cert_from_scope

            peer = peer_cert_from_scope(request.scope)
        try:
            return self.authenticator.authenticate(request.headers, peer)
        except GatewayError:
            self.metrics.denials.labels("authn").inc()
            raise

    def authorize(self, identity: Identity, action: str, resource: dict[str, str], purpose: str,
                  record: dict[str, Any] | None = None) -> None:
        """Ask the policy engine; the decision's rule and policy version go into the audit record."""
        if self.policy is None:
            return
        decision = self.policy.decide(identity, action, resource, {"purpose": purpose})
        if record is not None:
            record["policy"] = decision.audit_fields()
        if not decision.allowed:
            self.metrics.denials.labels("authz").inc()
            raise AuthorizationError(f"not allowed to {action}: {decision.reason}")

    def rate_limit(self, identity: Identity, model: str | None) -> None:
        for scope, limiter in self.limiters:
            if scope == "model" and model is None:
                continue
            key = f"id:{identity.subject}" if scope == "identity" else f"model:{model}"
            self._spend(scope, limiter, key, 1.0)

    def charge_quota(self, identity: Identity, model: str, samples: int) -> None:
        if self.quota is not None:
            if samples > self.quota.limit:
                raise RateLimitedError(f"a batch of {samples} is over the daily quota of {self.quota.limit:g}", 86400)
            self._spend("daily_quota", self.quota, f"{identity.subject}:{model}", float(samples))

    def _spend(self, scope: str, limiter: Any, key: str, cost: float) -> None:
        from modelshield.serve.ratelimit import enforce

        try:
            enforce(limiter, key, cost, what=f"{scope.replace('_', ' ')} limit")
        except RateLimitedError:
            self.metrics.rate_limited.labels(scope).inc()
            raise

    def choose(self, router: Router[LoadedModel], *, request_id: str, subject: str) -> LoadedModel:
        """The version that answers; a canary that failed its integrity check hands its share back to the primary."""
        loaded = router.choose(request_id=request_id, subject=subject)
        if not loaded.healthy and loaded is not router.primary:
            loaded = router.primary
        if not loaded.healthy:
            raise ServiceUnavailableError(f"model {loaded.name} version {loaded.version} failed its integrity check "
                                          "and is not served")
        return loaded

    async def audit(self, record: dict[str, Any], request_id: str, response: Response) -> Response:
        """Append ``record`` durably; if that fails, the client gets 503 instead of ``response``."""
        if self.audit_log is None:
            return response
        started = time.perf_counter()
        try:
            await self.audit_log.append_async(record)
        except Exception as exc:  # an unaudited answer is never sent, whatever broke
            log.error("audit append failed for request %s: %s", request_id, " ".join(str(exc).split()))
            return _error_response(ServiceUnavailableError("the audit log is unavailable"), request_id)
        finally:
            self.metrics.audit_append.observe(time.perf_counter() - started)
        return response

    def shadow_observer(self, name: str) -> Callable[[int, int], None]:
        agreed_c, disagreed_c = self.metrics.shadow.labels(name, "agree"), self.metrics.shadow.labels(name, "disagree")

        def observe(n: int, agreed: int) -> None:
            agreed_c.inc(agreed)
            disagreed_c.inc(n - agreed)

        return observe

    def observe_extraction(self, identity: Identity, x: np.ndarray, probs: np.ndarray) -> None:
        if self.extraction is not None:
            self.extraction.observe(identity.subject, x, probs)

    # -- background and admin ----------------------------------------------------------------------

    def background_tasks(self) -> list[asyncio.Task[None]]:
        versions = [v for r in self.routers.values() for v in (r.primary, r.canary, r.shadow) if v is not None]
        return [asyncio.get_running_loop().create_task(
            rehash_forever(versions, self.config.server.rehash_seconds, self.integrity_failed))]

    async def integrity_failed(self, loaded: LoadedModel) -> None:
        """A served version's bytes changed: count it and write a security event to the audit log."""
        self.metrics.integrity_failures.labels(loaded.name, loaded.version).inc()
        if self.audit_log is not None:
            await self.audit_log.append_async({
                "time": datetime.now(timezone.utc).isoformat(), "action": "security.model_integrity",
                "actor": {"subject": "modelshield-gateway", "method": "system", "tenant": None},
                "model": loaded.name, "model_version": loaded.version, "model_digest": loaded.digest,
                "decision": "deny", "reason": loaded.failure, "status_code": 503,
            })

    def visible_models(self, identity: Identity, purpose: str) -> list[dict[str, Any]]:
        out = []
        for name, router in self.routers.items():
            route = self.config.models[name]
            try:
                self.authorize(identity, "predict", {"model": name, "sensitivity": route.sensitivity,
                                                     "tenant": route.tenant or ""}, purpose)
            except AuthorizationError:
                continue
            out.append({**router.primary.describe(), "route": name})
        return out

    def describe_routes(self) -> dict[str, Any]:
        routes = {}
        for name, r in self.routers.items():
            routes[name] = {
                "primary": r.primary.describe(),
                "canary": {**r.canary.describe(), "percent": r.canary_percent, "sticky": r.sticky} if r.canary else None,
                "shadow": {**r.shadow.describe(), "percent": r.shadow_percent, "compared": r.stats.compared,
                           "agreement": r.stats.agreement, "failed": r.stats.failed, "skipped": r.stats.skipped}
                if r.shadow else None,
            }
        return {"routes": routes}

    def registry_listing(self) -> dict[str, Any]:
        if self.registry is None:
            return {"versions": []}
        return {"versions": [_jsonable(mv.to_dict()) for mv in self.registry.list()]}

    def verify_audit(self) -> dict[str, Any]:
        if self.audit_log is None or self.audit_public_key is None:
            raise ServiceUnavailableError("audit verification needs the audit log and its public key")
        report = self.audit_log.verify(self.audit_public_key, witness=self.config.audit.witness_file)
        return {"ok": report.ok, "summary": report.summary(), **_jsonable(asdict(report))}

    def close(self) -> None:
        for router in self.routers.values():
            for v in (router.primary, router.canary, router.shadow):
                if v is not None:
                    v.executor.shutdown(wait=True)
        for resource in (self.audit_log, self.api_keys, self.registry):
            if resource is not None and hasattr(resource, "close"):
                resource.close()


def _jsonable(value: Any) -> Any:
    """Dataclass dumps with paths, tuples and datetimes made JSON-friendly."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class Pipeline:
    """The per-request steps, bound to one ``Gateway``; one instance serves every request."""

    def __init__(self, gateway: Gateway, guard: Guard | None) -> None:
        self.g = gateway
        self.guard = guard

    async def audited(
        self, request: Request, action: str, model: str, step: Callable[[dict[str, Any]], Awaitable[Response]]
    ) -> Response:
        """Run ``step``, then append the request's audit record (durably) before returning its response."""
        started = time.perf_counter()
        request_id = _request_id(request)
        record: dict[str, Any] = {
            "action": action, "model": model, "request_id": request_id,
            "client_ip": request.client.host if request.client else None,
            "actor": {"subject": "anonymous", "method": None, "tenant": None},
        }
        try:
            response = await step(record)
            record["decision"] = "allow"
        except Exception as exc:  # every failure becomes a JSON error, audited like a success
            if isinstance(exc, RequestValidationError):
                self.g.metrics.validation_failures.labels(str(exc.status)).inc()
            elif not isinstance(exc, GatewayError):
                log.exception("request %s failed", request_id)
            response = _error_response(exc, request_id)
            record["decision"] = record.get("decision") or _decision(exc)
            record["reason"] = str(exc) if isinstance(exc, GatewayError) else type(exc).__name__
        response.headers["X-Request-ID"] = request_id
        record["status_code"] = response.status_code
        record["latency_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
        record["time"] = datetime.now(timezone.utc).isoformat()
        response = await self.g.audit(record, request_id, response)
        seconds = time.perf_counter() - started
        self.g.metrics.observe_request(action, model, str(record.get("model_version", "")), response.status_code, seconds)
        access.info(
            "request", extra={"request_id": request_id, "action": action, "model": model,
                              "subject": record["actor"]["subject"], "status": response.status_code,
                              "decision": record["decision"], "latency_ms": round(seconds * 1000, 3)},
        )
        return response

    def identify(self, request: Request, record: dict[str, Any]) -> Identity:
        identity = self.g.authenticate(request)
        record["actor"] = {"subject": identity.subject, "method": identity.method, "tenant": identity.tenant}
        return identity

    def authorize(self, identity: Identity, action: str, resource: dict[str, str], request: Request,
                  record: dict[str, Any]) -> None:
        self.g.authorize(identity, action, resource, request.headers.get("x-purpose", ""), record)

    async def predict(self, request: Request, name: str, record: dict[str, Any]) -> Response:
        g = self.g
        declared_length_ok(request.headers.get("content-length"), g.config.validation.max_body_bytes)
        identity = self.identify(request, record)
        router = g.routers.get(name)
        if router is None:
            raise _NotFound(f"no model named {name!r} is served here")
        route = g.config.models[name]
        self.authorize(identity, "predict", {"model": name, "sensitivity": route.sensitivity,
                                              "tenant": route.tenant or ""}, request, record)
        g.rate_limit(identity, name)
        body = await read_capped(request.stream(), g.config.validation.max_body_bytes)
        record["input_digest"] = sha256(body).hexdigest()
        loaded = g.choose(router, request_id=record["request_id"], subject=identity.subject)
        record.update(model_version=loaded.version, model_digest=loaded.digest)
        limits = g.config.validation
        payload = parse_json(body, max(limits.max_depth, len(loaded.signature.input_shape) + 2))
        x = batch_from_payload(payload, loaded.signature, limits.max_batch)
        g.charge_quota(identity, name, len(x))
        if self.guard is not None:
            verdict = self.guard(x)
            g.metrics.guard_decisions.labels(verdict.action).inc()
            if verdict.action == "reject":
                record["decision"] = "guard_reject"
                raise RequestValidationError(f"input refused by the adversarial guard: {verdict.reason}", status=422)
            if verdict.action == "fallback" and verdict.fallback is not None:
                record["reason"] = f"guard fallback: {verdict.reason}"
                return _json({**verdict.fallback, "request_id": record["request_id"]})
        probs = await loaded.predict(x)
        if router.shadow is not None and router.shadow.healthy and router.mirrors(record["request_id"]):
            shadow = router.shadow
            router.mirror(probs, lambda: shadow.predict(x), g.shadow_observer(name))
        g.observe_extraction(identity, x, probs)
        return _json({
            "model": loaded.name, "version": loaded.version, "digest": loaded.digest,
            "predictions": probs.argmax(axis=1).tolist(), "probabilities": probs.tolist(),
            "request_id": record["request_id"],
        })


def _attach_routes(app: FastAPI, gateway: Gateway, pipeline: Pipeline) -> None:
    """Predict routes (one per served model, so the OpenAPI schema carries each input signature) and admin routes."""

    def predict_route(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def predict(request: Request) -> Response:
            return await pipeline.audited(request, "predict", name, lambda rec: pipeline.predict(request, name, rec))

        predict.__name__ = f"predict_{re.sub(r'[^a-z0-9]', '_', name)}"
        return predict

    predict_errors = _error_responses(400, 401, 403, 404, 413, 422, 429, 500, 503)
    for name, route in gateway.config.models.items():
        app.add_api_route(
            f"/v1/models/{name}/predict", predict_route(name), methods=["POST"], tags=["predict"],
            summary=f"Predict with {name}", response_class=Response,
            responses={200: {"description": "Predictions.", "content": {_JSON: {"schema": _PREDICTION_SCHEMA}}},
                       **predict_errors},
            openapi_extra=_predict_openapi(route, gateway, name),
        )

    @app.post("/v1/models/{name}/predict", include_in_schema=False)
    async def predict_unknown(name: str, request: Request) -> Response:
        shown = name if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name) else "(invalid)"
        return await pipeline.audited(request, "predict", shown, lambda rec: pipeline.predict(request, name, rec))

    admin_errors = _error_responses(401, 403, 429, 503)

    async def admin(request: Request, action: str, build: Callable[[], Any]) -> Response:
        async def step(record: dict[str, Any]) -> Response:
            identity = pipeline.identify(request, record)
            pipeline.authorize(identity, action, {"model": "*", "sensitivity": "", "tenant": ""}, request, record)
            gateway.rate_limit(identity, None)
            return _json(await asyncio.to_thread(build))

        return await pipeline.audited(request, f"admin.{action}", "", step)

    @app.get("/v1/models", tags=["models"], summary="Models this caller may use", responses=admin_errors)
    async def list_models(request: Request) -> Response:
        async def step(record: dict[str, Any]) -> Response:
            identity = pipeline.identify(request, record)
            gateway.rate_limit(identity, None)
            return _json({"models": gateway.visible_models(identity, request.headers.get("x-purpose", ""))})

        return await pipeline.audited(request, "models.list", "", step)

    @app.get("/v1/admin/routes", tags=["admin"], summary="Routes, canary/shadow state, model health",
             responses=admin_errors)
    async def routes(request: Request) -> Response:
        return await admin(request, "registry.read", gateway.describe_routes)

    @app.get("/v1/admin/registry", tags=["admin"], summary="Registered model versions", responses=admin_errors)
    async def registry(request: Request) -> Response:
        return await admin(request, "registry.read", gateway.registry_listing)

    @app.get("/v1/admin/audit/verify", tags=["admin"], summary="Verify the audit log's chain and checkpoints",
             responses=admin_errors)
    async def audit_verify(request: Request) -> Response:
        return await admin(request, "audit.read", gateway.verify_audit)

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz", tags=["health"], summary="Readiness: every primary model version intact",
             responses={503: {"description": "Not ready.", "content": {_JSON: {"schema": {"type": "object"}}}}})
    async def readyz() -> Response:
        broken = [r.name for r in gateway.routers.values() if not r.primary.healthy]
        return _json({"status": "unready", "broken": broken} if broken else {"status": "ready"}, 503 if broken else 200)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=Response,
             responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}})
    async def metrics() -> Response:
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE)


def _attach_error_handlers(app: FastAPI) -> None:
    """Framework-level errors (unknown path, wrong method) in the same JSON shape as the gateway's."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _json({"error": str(exc.detail), "request_id": _request_id(request)}, exc.status_code, exc.headers)

    @app.exception_handler(FastAPIValidationError)
    async def validation_error(request: Request, exc: FastAPIValidationError) -> Response:
        return _json({"error": "invalid request", "request_id": _request_id(request)}, 422)


def create_app(config: ServeConfig, *, guard: Guard | None = None) -> FastAPI:
    """The FastAPI app for ``config``: loads and verifies every model, opens the stores, wires the pipeline.

    ``guard`` is the adversarial-input hook (accept / reject / fallback); None serves without one.
    """
    gateway = Gateway.start(config)
    pipeline = Pipeline(gateway, guard)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        tasks = gateway.background_tasks()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for router in gateway.routers.values():
                await router.drain()
            await asyncio.to_thread(gateway.close)

    app = FastAPI(
        title="modelshield gateway", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Authenticated, authorised, rate-limited, validated and audited model inference.",
    )
    app.state.gateway = gateway
    _attach_error_handlers(app)
    _attach_routes(app, gateway, pipeline)
    return app


CONFIG_ENV = "MODELSHIELD_SERVE_CONFIG"
DEFAULT_CONFIG = Path("/etc/modelshield/serve.toml")


def config_path(given: str | os.PathLike[str] | None) -> Path:
    """The serve config: the argument, else ``$MODELSHIELD_SERVE_CONFIG``, else /etc/modelshield/serve.toml."""
    if given:
        return Path(given)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    if DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    raise InputError("no serve config", hint=f"pass --config serve.toml, set {CONFIG_ENV}, or use --demo")


def configure_logging(config: ServeConfig) -> None:
    """Structured JSON logs on stderr, secrets and PII masked by the configured rules."""
    from modelshield.serve.masking import JsonLogFormatter, Masker

    handler = logging.StreamHandler()
    masker = Masker.from_config(config.logging.model_dump(exclude={"level"}))
    handler.setFormatter(JsonLogFormatter(masker))
    root = logging.getLogger("modelshield")
    root.handlers[:] = [handler]
    root.setLevel(config.logging.level.upper())
    root.propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = [handler]


def app_from_env() -> FastAPI:
    """uvicorn factory (one app per worker): the app for the config file in ``$MODELSHIELD_SERVE_CONFIG``."""
    config = load_config(os.environ[CONFIG_ENV])
    configure_logging(config)
    return create_app(config)


def _ssl_context(_uvicorn_config: Any, _default: Any) -> ssl.SSLContext:
    """TLS context for uvicorn (a module-level function so worker processes can receive it)."""
    from modelshield.serve.mtls import server_ssl_context

    config = load_config(os.environ[CONFIG_ENV])
    s = config.server
    return server_ssl_context(s.tls_cert_file, s.tls_key_file, config.auth.mtls_ca_file,  # type: ignore[arg-type]
                              require_client_cert=config.auth.mtls_required)


def run_server(path: str | os.PathLike[str], *, host: str | None = None, port: int | None = None,
               workers: int | None = None) -> None:
    """Serve the config at ``path`` with uvicorn until interrupted; errors in it stop the start with one line."""
    import uvicorn

    path = Path(path).resolve()
    config = load_config(path)
    os.environ[CONFIG_ENV] = str(path)
    configure_logging(config)
    s = config.server
    workers = workers or s.workers
    options: dict[str, Any] = dict(
        host=host or s.host, port=s.port if port is None else port, access_log=False, log_config=None,
        server_header=False, proxy_headers=False, timeout_graceful_shutdown=10,
    )
    if s.tls_cert_file is not None:
        from modelshield.serve.mtls import MtlsH11Protocol

        options.update(ssl_context_factory=_ssl_context, http=MtlsH11Protocol if config.auth.mtls_ca_file else "h11")
        _ssl_context(None, None)  # a bad certificate stops the start here, with one line
    if workers > 1:
        uvicorn.run("modelshield.serve.app:app_from_env", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(config), **options)
