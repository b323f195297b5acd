"""The gateway application: ``create_app(config)`` wires the controls (``gateway``), the per-request
pipeline (``pipeline``) and the HTTP routes (``routes``); ``modelshield.serve.server`` runs it under uvicorn
(and imports this module, never the other way round).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from modelshield.serve.admin import AdminActions
from modelshield.serve.config import ServeConfig
from modelshield.serve.gateway import Gateway
from modelshield.serve.guarding import GatewayGuard, build_guards
from modelshield.serve.live import GatewayLive, build_monitor
from modelshield.serve.pipeline import Pipeline
from modelshield.serve.routes import attach_error_handlers, attach_routes

if TYPE_CHECKING:
    from modelshield.defenses.guard import Guard


def create_app(config: ServeConfig, *, guard: Guard | None = None) -> FastAPI:
    """The FastAPI app for ``config``: loads and verifies every model, opens the stores, wires the pipeline.

    ``guard`` (a ``modelshield.defenses.guard.Guard``) guards the models the config's ``[guard]`` tables leave
    unguarded; those tables build a calibrated ``Guard`` per model here.
    """
    gateway = Gateway.start(config)
    try:
        guards = build_guards(config.guards(), {name: r.primary.model for name, r in gateway.routers.items()})
    except BaseException:
        gateway.close()
        raise
    if guard is not None:
        guards.update({name: GatewayGuard(guard) for name in gateway.routers if name not in guards})
    for name, built in guards.items():
        primary = gateway.routers[name].primary
        built.bind(primary.executor, primary.max_batch)
    monitors = {}
    try:
        for name, setting in config.monitors().items():
            primary = gateway.routers[name].primary
            monitors[name] = (build_monitor(name, setting, primary.model, primary.sketch), setting)
    except BaseException:
        gateway.close()
        raise
    gateway.live = GatewayLive(
        list(gateway.routers),
        monitors,
        gateway.metrics,
        gateway.audit_log,
        redis_url=config.redis_url(),
        redis_prefix=config.rate_limits.redis_prefix,
    )
    gateway.admin = AdminActions(gateway, guards)
    pipeline = Pipeline(gateway, guards)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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

    # No redirects: ``/predict/`` is not ``/predict`` (404). A 307 would have the client resend its body and
    # credentials to a Location built from the Host header, and give every route a second spelling that
    # path rules in front of the gateway would have to know about.
    app = FastAPI(
        title="modelshield gateway",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Authenticated, authorised, rate-limited, validated and audited model inference.",
        redirect_slashes=False,
    )
    app.state.gateway = gateway
    attach_error_handlers(app)
    attach_routes(app, gateway, pipeline)
    return app
