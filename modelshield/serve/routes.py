"""The gateway's HTTP surface: predict routes (one per model, so OpenAPI carries each input signature),
the models list, admin reads, health and metrics, and framework errors in the gateway's JSON shape.

Predict requests for served models are dispatched by ``PredictFastPath``, a plain ASGI middleware, straight
to the pipeline: FastAPI's routing and dependency machinery would cost about a quarter of the request's CPU.
The FastAPI routes for the same paths stay for the OpenAPI document (and answer the same way if reached).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError as FastAPIValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from modelshield.serve.gateway import Gateway
from modelshield.serve.identity import Identity
from modelshield.serve.metrics import CONTENT_TYPE
from modelshield.serve.pipeline import Pipeline
from modelshield.serve.readiness import Readiness
from modelshield.serve.responses import JSON, json_response, request_id

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "request_id": {"type": "string"}},
}
_ERRORS = {
    400: "Malformed request: not JSON, a repeated object key, nested too deep, or a bad or repeated header.",
    401: "No, bad, expired or revoked credentials, or a credential header sent twice.",
    403: "Authenticated, but the policy does not allow it.",
    404: "No such model.",
    408: "The body did not arrive within [validation] body_timeout_seconds of the request's headers.",
    413: "Body or batch over the configured limit.",
    415: "The body is not sent as plain JSON: Content-Type must be application/json (UTF-8), with no Content-Encoding.",
    422: "The inputs do not fit the model's input signature (shape, dtype, range, NaN/Inf), or the adversarial guard "
    "refused them.",
    429: "Over a rate limit or quota; see Retry-After.",
    500: "The model failed on a valid input.",
    503: "The model version failed its integrity check, or a dependency (audit log, Redis) is down.",
}
_PREDICTION_SCHEMA = {
    "type": "object",
    "required": ["model", "version", "digest", "predictions", "probabilities", "request_id"],
    "properties": {
        "model": {"type": "string"},
        "version": {"type": "string"},
        "digest": {"type": "string"},
        "predictions": {"type": "array", "items": {"type": "integer"}},
        # null for an input the adversarial guard flagged, when its fallback abstains (label -1)
        "probabilities": {"type": "array", "items": {"type": ["array", "null"], "items": {"type": "number"}}},
        "request_id": {"type": "string"},
    },
}


def _error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"description": _ERRORS[code], "content": {JSON: {"schema": _ERROR_SCHEMA}}}
        if code == 429:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
        out[code] = entry
    return out


def _predict_openapi(gateway: Gateway, name: str) -> dict[str, Any]:
    """The request body schema of one model's predict operation, from its input signature."""
    signature = gateway.routers[name].primary.signature
    inputs = {
        "type": "array",
        "minItems": 1,
        "maxItems": gateway.config.validation.max_batch,
        "items": signature.json_schema(),
    }
    schema = {"type": "object", "required": ["inputs"], "additionalProperties": False, "properties": {"inputs": inputs}}
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}


def predict_path(name: str) -> str:
    return f"/v1/models/{name}/predict"


class OneLength:
    """ASGI middleware: a request that declares its length twice (Content-Length and Transfer-Encoding) gets 400
    and the connection is closed (RFC 9112 §6.3): a proxy in front may have cut the stream at the other length, so
    nothing after it on this connection can be trusted to be the next request. httptools refuses such requests
    itself; h11 (the protocol under mutual TLS) would read the chunked body and keep the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            names = {name for name, _ in scope["headers"]}  # ASGI header names are lower-case bytes
            if b"content-length" in names and b"transfer-encoding" in names:
                body = {
                    "error": "send Content-Length or Transfer-Encoding, not both",
                    "request_id": request_id(Request(scope)),
                }
                await json_response(body, 400, {"Connection": "close"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


class PredictFastPath:
    """ASGI middleware: ``POST /v1/models/<served name>/predict`` goes straight to the pipeline."""

    def __init__(self, app: ASGIApp, pipeline: Pipeline, names: list[str]) -> None:
        self.app = app
        self.pipeline = pipeline
        self.paths = {predict_path(name): name for name in names}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self.paths.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if name is None:
            await self.app(scope, receive, send)
            return
        response = await self.pipeline.predict_request(Request(scope, receive), name)
        await response(scope, receive, send)


def attach_routes(app: FastAPI, gateway: Gateway, pipeline: Pipeline) -> None:
    """Every route of the gateway, on ``app``."""
    readiness = Readiness(gateway)

    def predict_route(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def predict(request: Request) -> Response:
            return await pipeline.predict_request(request, name)

        predict.__name__ = f"predict_{re.sub(r'[^a-z0-9]', '_', name)}"
        return predict

    predict_errors = _error_responses(400, 401, 403, 404, 408, 413, 415, 422, 429, 500, 503)
    for name in gateway.config.models:
        app.add_api_route(
            predict_path(name),
            predict_route(name),
            methods=["POST"],
            tags=["predict"],
            summary=f"Predict with {name}",
            response_class=Response,
            responses={
                200: {"description": "Predictions.", "content": {JSON: {"schema": _PREDICTION_SCHEMA}}},
                **predict_errors,
            },
            openapi_extra=_predict_openapi(gateway, name),
        )

    @app.post("/v1/models/{name}/predict", include_in_schema=False)
    async def predict_unknown(name: str, request: Request) -> Response:
        return await pipeline.predict_request(request, name, _shown(name))

    admin_errors = _error_responses(400, 401, 403, 429, 503)

    @app.get("/v1/models", tags=["models"], summary="Models this caller may use", responses=admin_errors)
    async def list_models(request: Request) -> Response:
        return await pipeline.list_models(request)

    @app.get(
        "/v1/admin/routes", tags=["admin"], summary="Routes, canary/shadow state, model health", responses=admin_errors
    )
    async def routes(request: Request) -> Response:
        return await pipeline.admin(request, "registry.read", gateway.describe_routes)

    @app.get("/v1/admin/registry", tags=["admin"], summary="Registered model versions", responses=admin_errors)
    async def registry(request: Request) -> Response:
        return await pipeline.admin(request, "registry.read", gateway.registry_listing)

    @app.get(
        "/v1/admin/audit/verify",
        tags=["admin"],
        summary="Verify the audit log's chain and checkpoints",
        responses=admin_errors,
    )
    async def audit_verify(request: Request) -> Response:
        return await pipeline.admin(request, "audit.read", gateway.verify_audit)

    @app.get(
        "/v1/admin/monitor",
        tags=["admin"],
        summary="Live monitoring: drift, traffic and security events per model and time window, correlated",
        responses=admin_errors,
    )
    async def monitor(request: Request) -> Response:
        return await pipeline.monitor(request)

    attach_admin_writes(app, gateway, pipeline)

    @app.post(
        "/v1/admin/session",
        tags=["admin"],
        summary="Open a dashboard session (the key in the Authorization header; an HttpOnly cookie back)",
        responses=admin_errors,
    )
    async def open_session(request: Request) -> Response:
        return await pipeline.open_session(request)

    @app.delete("/v1/admin/session", tags=["admin"], summary="Close the dashboard session", responses=admin_errors)
    async def close_session(request: Request) -> Response:
        return await pipeline.close_session(request)

    for file, media in (
        ("dashboard.html", "text/html"),
        ("dashboard.js", "text/javascript"),
        ("dashboard.css", "text/css"),
    ):
        app.add_api_route(
            "/admin/dashboard" if file.endswith(".html") else f"/admin/{file}",
            _static(file, media),
            methods=["GET"],
            include_in_schema=False,
        )

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: every primary model version intact, the audit log writing, the store and Redis answering",
        responses={503: {"description": "Not ready.", "content": {JSON: {"schema": {"type": "object"}}}}},
    )
    async def readyz() -> Response:
        # only ok/failing per component: why (file paths, database host) is in the gateway's log, not told to probes
        ready, body = await readiness.report()
        return json_response(body, 200 if ready else 503)

    for path, probe in (("/healthz", healthz), ("/readyz", readyz)):  # load balancers probe with HEAD (RFC 9110 §9.3.2)
        app.add_api_route(path, probe, methods=["HEAD"], include_in_schema=False)

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE)

    app.add_middleware(PredictFastPath, pipeline=pipeline, names=list(gateway.config.models))
    app.add_middleware(OneLength)  # added last: runs first


def attach_admin_writes(app: FastAPI, gateway: Gateway, pipeline: Pipeline) -> None:
    """The admin write API (``modelshield.serve.admin``): containment actions, each authorised and audited."""
    from modelshield.serve import admin as a

    actions = gateway.admin
    if actions is None:
        raise RuntimeError("attach_admin_writes before the gateway's admin actions are set")
    errors = _error_responses(400, 401, 403, 404, 408, 413, 415, 422, 429, 503)

    def described(body: type[BaseModel], summary: str) -> dict[str, Any]:
        """The route options of an admin write: its JSON body's schema (from its pydantic model) and errors."""
        content = {JSON: {"schema": body.model_json_schema()}}
        return {
            "tags": ["admin"],
            "summary": summary,
            "responses": errors,
            "openapi_extra": {"requestBody": {"required": True, "content": content}},
        }

    def audited_as(
        summary: dict[str, Any], body: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"admin": summary}, body if body is not None else summary

    @app.post("/v1/admin/keys/revoke", **described(a.RevokeBody, "Revoke a key, or every key of a subject"))
    async def revoke(request: Request) -> Response:
        return await pipeline.admin_write(
            request, "keys.revoke", lambda who, raw: audited_as(actions.revoke(a.parse_body(raw, a.RevokeBody)))
        )

    @app.post("/v1/admin/keys/rotate", **described(a.RotateBody, "Rotate a key (its successor in the answer, once)"))
    async def rotate(request: Request) -> Response:
        def handle(who: Identity, raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
            summary, plaintext = actions.rotate(a.parse_body(raw, a.RotateBody))
            return audited_as(summary, {**summary, "new_key": plaintext})

        return await pipeline.admin_write(request, "keys.rotate", handle)

    @app.post(
        "/v1/admin/models/{name}/pin",
        **described(a.PinBody, "Pin a version (default: the previous one) and serve it now"),
    )
    async def pin(name: str, request: Request) -> Response:
        return await pipeline.admin_write(
            request,
            "registry.pin",
            lambda who, raw: audited_as(actions.pin(name, a.parse_body(raw, a.PinBody), who.subject)),
            model=_shown(name),
        )

    @app.post(
        "/v1/admin/models/{name}/quarantine",
        **described(a.QuarantineBody, "Stop serving a version (default: the one served now)"),
    )
    async def quarantine(name: str, request: Request) -> Response:
        return await pipeline.admin_write(
            request,
            "registry.quarantine",
            lambda who, raw: audited_as(actions.quarantine(name, a.parse_body(raw, a.QuarantineBody))),
            model=_shown(name),
        )

    @app.post("/v1/admin/limits", **described(a.LimitBody, "Tighten one identity's rate limit for a while"))
    async def limits(request: Request) -> Response:
        return await pipeline.admin_write(
            request, "controls.limits", lambda who, raw: audited_as(actions.limit(a.parse_body(raw, a.LimitBody)))
        )

    @app.post("/v1/admin/guard", **described(a.GuardBody, "Switch the adversarial guard to strict or back"))
    async def guard(request: Request) -> Response:
        return await pipeline.admin_write(
            request, "controls.guard", lambda who, raw: audited_as(actions.guard(a.parse_body(raw, a.GuardBody)))
        )

    @app.get("/v1/admin/controls", tags=["admin"], summary="Run-time overrides in force", responses=errors)
    async def controls(request: Request) -> Response:
        return await pipeline.admin(request, "controls.read", actions.describe)

    @app.post(
        "/v1/admin/incident/notes",
        **described(a.IncidentNote, "Record one step of an incident playbook run in the audit log"),
    )
    async def incident_note(request: Request) -> Response:
        def handle(who: Identity, raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
            note = a.parse_body(raw, a.IncidentNote).model_dump()
            return {"incident": note, "decision": "allow"}, {"recorded": True}

        return await pipeline.admin_write(request, "incident.note", handle, audit_action="incident.step")


def _shown(name: str) -> str:
    """A model name from the URL as the audit log may show it (an untrusted one is not written as sent)."""
    return name if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name) else "(invalid)"


#: the dashboard runs only its own script and style, talks only to this gateway, and cannot be framed
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _static(file: str, media: str) -> Callable[[], Awaitable[Response]]:
    """A handler answering a packaged dashboard file (no data in it: the page asks /v1/admin/monitor, behind auth)."""
    body = (resources.files("modelshield.serve") / "static" / file).read_bytes()
    headers = {
        "Content-Security-Policy": DASHBOARD_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }

    async def static() -> Response:
        return Response(body, media_type=media, headers=headers)

    static.__name__ = "dashboard_" + file.replace(".", "_")
    return static


def _allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route of ``app`` answers on the path of ``scope``."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods
    return sorted(methods)


def attach_error_handlers(app: FastAPI) -> None:
    """Framework-level errors (unknown path, wrong method) in the same JSON shape as the gateway's."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names the methods of the first route on the path only
            headers["Allow"] = ", ".join(_allowed_methods(app, request.scope))
        return json_response({"error": str(exc.detail), "request_id": request_id(request)}, exc.status_code, headers)

    @app.exception_handler(FastAPIValidationError)
    async def validation_error(request: Request, exc: FastAPIValidationError) -> Response:
        return json_response({"error": "invalid request", "request_id": request_id(request)}, 422)
