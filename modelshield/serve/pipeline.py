"""The per-request security pipeline; every predict request goes through the same steps, in this order.

    Content-Length cap → plain JSON (Content-Type, no Content-Encoding) → authenticate → authorise (policy)
      → rate limits → read body (capped) → JSON depth + parse (no repeated keys)
      → validate against the model's signature → rate limits for the rest of the batch (``cost = "samples"``)
      → daily quota (per sample)
      → guard (optional; ``[guard]`` in the config or ``create_app(guard=)``; batched) → predict (batched; a lone fast
        forward on the event loop) → audit append (durable) → respond
      → extraction signal (after the response is sent)

The audit record of a request is committed before its response is sent; if the audit log cannot
take it, the client gets 503 and never an unaudited 2xx. Denials (401/403/429/4xx) are audited too.
Errors are JSON ``{"error": ..., "request_id": ...}`` with the status their exception carries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

import numpy as np
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from modelshield.serve.admin import MAX_ADMIN_BODY
from modelshield.serve.errors import AuthenticationError, GatewayError, RequestValidationError
from modelshield.serve.gateway import Gateway
from modelshield.serve.guarding import GatewayGuard
from modelshield.serve.headers import one_header, require_json_body
from modelshield.serve.identity import Identity
from modelshield.serve.ratelimit import largest_batch
from modelshield.serve.responses import NotFound, decision, error_response, json_response, request_id
from modelshield.serve.sessions import COOKIE
from modelshield.serve.validation import batch_from_body, declared_length_ok, read_capped

log = logging.getLogger("modelshield.serve")
access = logging.getLogger("modelshield.serve.access")

Step = Callable[[dict[str, Any]], Awaitable[Response]]
_ANY_MODEL = {"model": "*", "sensitivity": "", "tenant": ""}


class Pipeline:
    """The per-request steps, bound to one ``Gateway``; one instance serves every request."""

    def __init__(self, gateway: Gateway, guards: Mapping[str, GatewayGuard] | None = None) -> None:
        self.g = gateway
        self.guards = guards or {}

    async def audited(self, request: Request, action: str, model: str, step: Step) -> Response:
        """Run ``step``, then append the request's audit record (durably) before returning its response."""
        started = time.perf_counter()
        rid = request_id(request)
        record: dict[str, Any] = {
            "action": action,
            "model": model,
            "request_id": rid,
            "client_ip": request.client.host if request.client else None,
            "actor": {"subject": "anonymous", "method": None, "tenant": None},
        }
        try:
            response = await step(record)
            record["decision"] = record.get("decision") or "allow"
        except Exception as exc:  # every failure becomes a JSON error, audited like a success
            if isinstance(exc, RequestValidationError):
                self.g.metrics.validation_failures.labels(str(exc.status)).inc()
            elif not isinstance(exc, GatewayError):
                log.exception("request %s failed", rid)
            response = error_response(exc, rid)
            record["decision"] = record.get("decision") or decision(exc)
            record["reason"] = str(exc) if isinstance(exc, GatewayError) else type(exc).__name__
        response.headers["X-Request-ID"] = rid
        record["status_code"] = response.status_code
        record["latency_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
        record["time"] = datetime.now(UTC).isoformat()
        response = await self.g.audit(record, rid, response)
        if self.g.live is not None:
            self.g.live.observe_request(record)
        seconds = time.perf_counter() - started
        self.g.metrics.observe_request(
            action, model, str(record.get("model_version", "")), response.status_code, seconds
        )
        if access.isEnabledFor(logging.INFO):
            access.info(
                "request",
                extra={
                    "request_id": rid,
                    "action": action,
                    "model": model,
                    "subject": record["actor"]["subject"],
                    "status": response.status_code,
                    "decision": record["decision"],
                    "latency_ms": round(seconds * 1000, 3),
                },
            )
        return response

    def identify(self, request: Request, record: dict[str, Any]) -> Identity:
        identity = self.g.authenticate(request)
        record["actor"] = {"subject": identity.subject, "method": identity.method, "tenant": identity.tenant}
        return identity

    def authorize(
        self, identity: Identity, action: str, resource: dict[str, str], request: Request, record: dict[str, Any]
    ) -> None:
        self.g.authorize(identity, action, resource, one_header(request.headers, "x-purpose") or "", record)

    async def predict_request(self, request: Request, name: str, shown: str | None = None) -> Response:
        """One audited predict request for model ``name`` (logged as ``shown`` when the name is not trusted)."""
        return await self.audited(request, "predict", shown or name, lambda rec: self.predict(request, name, rec))

    async def predict(self, request: Request, name: str, record: dict[str, Any]) -> Response:
        """The predict steps from the module docstring, up to the response (audited by ``audited``)."""
        g = self.g
        declared_length_ok(request.headers.get("content-length"), g.config.validation.max_body_bytes)
        require_json_body(request.headers)
        identity = self.identify(request, record)
        router = g.routers.get(name)
        if router is None:
            raise NotFound(f"no model named {name!r} is served here")
        route = g.config.models[name]
        self.authorize(
            identity,
            "predict",
            {"model": name, "sensitivity": route.sensitivity, "tenant": route.tenant or ""},
            request,
            record,
        )
        await g.rate_limit(identity, name)
        limits = g.config.validation
        body = await read_capped(request.stream(), limits.max_body_bytes, limits.body_timeout_seconds)
        record["input_digest"] = sha256(body).hexdigest()
        loaded = g.choose(router, request_id=record["request_id"], subject=identity.subject)
        record.update(model_version=loaded.version, model_digest=loaded.digest)
        x = batch_from_body(
            body,
            loaded.signature,
            max_batch=limits.max_batch,
            max_depth=max(limits.max_depth, len(loaded.signature.input_shape) + 2),
        )
        await self.charge_samples(identity, name, len(x))
        if g.live is not None:  # every valid input is traffic, whatever the guard then makes of it
            g.live.observe_inputs(name, x)
        guard = self.guards.get(name)
        if guard is not None:  # batched with concurrent requests, on the primary's forward thread
            verdict = await guard.decide(x)
            g.metrics.guard_decisions.labels(verdict.action).inc()
            record["guard"] = verdict.audit
            if verdict.action == "reject":
                record["decision"] = "guard_reject"
                raise RequestValidationError(f"input refused by the adversarial guard: {verdict.reason}", status=422)
            if verdict.action == "fallback" and verdict.fallback is not None:
                record.update(decision="guard_fallback", reason=f"guard fallback: {verdict.reason}")
                fb = verdict.fallback
                kept = [i for i, a in enumerate(fb["guard"]) if a == "accept"]
                answered = np.asarray([fb["probabilities"][i] for i in kept], dtype=np.float64)
                if g.live is not None and kept:  # the model's own answers to the inputs the guard accepted
                    g.live.observe_outputs(name, answered)
                response = json_response(
                    {**fb, "version": loaded.version, "digest": loaded.digest, "request_id": record["request_id"]}
                )
                if g.extraction is not None and kept:  # one flagged input must not hide the batch's other answers
                    response.background = BackgroundTask(
                        g.watch_extraction, identity, name, x[kept], answered, record["client_ip"]
                    )
                return response
        probs = await loaded.predict(x)
        if g.live is not None:
            g.live.observe_outputs(name, probs)
        if router.shadow is not None and router.shadow.healthy and router.mirrors(record["request_id"]):
            shadow = router.shadow
            router.mirror(probs, lambda: shadow.predict(x), g.shadow_observer(name))
        response = json_response(
            {
                "model": loaded.name,
                "version": loaded.version,
                "digest": loaded.digest,
                "predictions": probs.argmax(axis=1).tolist(),
                "probabilities": probs.tolist(),
                "request_id": record["request_id"],
            }
        )
        if g.extraction is not None:
            response.background = BackgroundTask(g.watch_extraction, identity, name, x, probs, record["client_ip"])
        return response

    async def charge_samples(self, identity: Identity, name: str, samples: int) -> None:
        """Charge a validated batch: with ``rate_limits.cost = "samples"`` the rest of its samples on the rate limits
        (the first was spent before the body was read), and every sample on the daily quota. A batch that no
        bucket could ever hold is refused with 413 and the largest that can pass."""
        g = self.g
        per_sample = g.config.rate_limits.cost == "samples"
        limiters = [lim for _, lim in g.limiters] if per_sample else []
        ceiling = largest_batch(limiters + ([g.quota] if g.quota is not None else []))
        if samples > ceiling:
            raise RequestValidationError(
                f"a batch of {samples} samples can never pass the rate limits; send at most {ceiling:g} per request",
                status=413,
            )
        if per_sample and samples > 1:
            await g.rate_limit(identity, name, cost=samples - 1, paid=1.0)
        await g.charge_quota(identity, name, samples)

    async def admin(self, request: Request, action: str, build: Callable[[], Any]) -> Response:
        """An admin read: authenticate, authorise ``action`` on every model, rate-limit, build off the loop."""

        async def step(record: dict[str, Any]) -> Response:
            identity = self.identify(request, record)
            self.authorize(identity, action, _ANY_MODEL, request, record)
            await self.g.rate_limit(identity, None)
            return json_response(await asyncio.to_thread(build))

        return await self.audited(request, f"admin.{action}", "", step)

    async def admin_write(
        self,
        request: Request,
        action: str,
        handle: Callable[[Identity, bytes], tuple[dict[str, Any], dict[str, Any]]],
        *,
        audit_action: str | None = None,
        model: str = "",
    ) -> Response:
        """An admin change (``modelshield.serve.admin``): authenticate, authorise ``action``, rate-limit, read the
        capped JSON body, apply it off the loop; the audit record carries what ``handle`` says changed."""

        async def step(record: dict[str, Any]) -> Response:
            identity = self.identify(request, record)
            self.authorize(identity, action, _ANY_MODEL, request, record)
            await self.g.rate_limit(identity, None)
            require_json_body(request.headers)
            raw = await read_capped(request.stream(), MAX_ADMIN_BODY, self.g.config.validation.body_timeout_seconds)
            audited, body = await asyncio.to_thread(handle, identity, raw)
            record.update(audited)
            return json_response(body, headers={"Cache-Control": "no-store"})

        return await self.audited(request, audit_action or f"admin.{action}", model, step)

    async def monitor(self, request: Request) -> Response:
        """The live-monitoring view (``monitor.read``): with the key in the header, or a dashboard session cookie."""
        live = self.g.live
        if live is None:
            raise RuntimeError("Pipeline.monitor without live monitoring")

        async def step(record: dict[str, Any]) -> Response:
            identity = self.session_identity(request, record)
            self.authorize(identity, "monitor.read", _ANY_MODEL, request, record)
            await self.g.rate_limit(identity, None)
            events = await asyncio.to_thread(live.read_events)
            return json_response({**live.snapshot(), "events": events}, headers={"Cache-Control": "no-store"})

        return await self.audited(request, "admin.monitor.read", "", step)

    def session_identity(self, request: Request, record: dict[str, Any]) -> Identity:
        """The caller of a dashboard read: its credentials when it sends any, else its session cookie's identity."""
        token = request.cookies.get(COOKIE)
        if token is None or "authorization" in request.headers or self.g.authenticator is None:
            return self.identify(request, record)
        identity = self.g.sessions.identity(token)
        if identity is None:
            self.g.metrics.denials.labels("authn").inc()
            raise AuthenticationError("the dashboard session has expired; sign in again")
        record["actor"] = {"subject": identity.subject, "method": "session", "tenant": identity.tenant}
        return identity

    async def open_session(self, request: Request) -> Response:
        """``POST /v1/admin/session``: the key in the header opens a dashboard session (an HttpOnly cookie)."""

        async def step(record: dict[str, Any]) -> Response:
            identity = self.identify(request, record)
            self.authorize(identity, "monitor.read", _ANY_MODEL, request, record)
            await self.g.rate_limit(identity, None)
            token, expires = self.g.sessions.open(identity)
            response = json_response({"subject": identity.subject, "expires": expires})
            response.set_cookie(
                COOKIE,
                token,
                max_age=int(self.g.sessions.lifetime),
                path="/",
                secure=request.url.scheme == "https",
                httponly=True,
                samesite="strict",
            )
            return response

        return await self.audited(request, "admin.session.open", "", step)

    async def close_session(self, request: Request) -> Response:
        """``DELETE /v1/admin/session``: forget the session and clear the cookie (no credentials needed)."""

        async def step(record: dict[str, Any]) -> Response:
            token = request.cookies.get(COOKIE)
            if token is not None:
                identity = self.g.sessions.identity(token)
                if identity is not None:
                    record["actor"] = {"subject": identity.subject, "method": "session", "tenant": identity.tenant}
                self.g.sessions.close(token)
            response = json_response({"closed": token is not None})
            response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
            return response

        return await self.audited(request, "admin.session.close", "", step)

    async def list_models(self, request: Request) -> Response:
        """The models this caller's policy lets it predict with."""

        async def step(record: dict[str, Any]) -> Response:
            identity = self.identify(request, record)
            await self.g.rate_limit(identity, None)
            purpose = one_header(request.headers, "x-purpose") or ""
            return json_response({"models": self.g.visible_models(identity, purpose)})

        return await self.audited(request, "models.list", "", step)
