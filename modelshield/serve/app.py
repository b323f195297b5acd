"""The gateway application: ``create_app(config)`` wires the controls (``gateway``), the per-request
pipeline (``pipeline``) and the HTTP routes (``routes``); ``modelshield.serve.server`` runs it under uvicorn.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

from modelshield.serve.config import ServeConfig, load_config
from modelshield.serve.gateway import Gateway
from modelshield.serve.guarding import build_guards
from modelshield.serve.pipeline import Pipeline
from modelshield.serve.routes import attach_error_handlers, attach_routes
from modelshield.serve.validation import Guard

CONFIG_ENV = "MODELSHIELD_SERVE_CONFIG"


def create_app(config: ServeConfig, *, guard: Guard | None = None) -> FastAPI:
    """The FastAPI app for ``config``: loads and verifies every model, opens the stores, wires the pipeline.

    ``guard`` is the adversarial-input hook (accept / reject / fallback) for models the config's ``[guard]``
    tables leave unguarded; those tables build a calibrated ``modelshield.defenses.guard.Guard`` per model here.
    """
    gateway = Gateway.start(config)
    try:
        guards = build_guards(config.guards(), {name: r.primary.model for name, r in gateway.routers.items()})
    except BaseException:
        gateway.close()
        raise
    for name, built in guards.items():
        primary = gateway.routers[name].primary
        built.bind(primary.executor, primary.max_batch)
    pipeline = Pipeline(gateway, guard, guards)

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
    attach_error_handlers(app)
    attach_routes(app, gateway, pipeline)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory (one app per worker): the app for the config file in ``$MODELSHIELD_SERVE_CONFIG``."""
    from modelshield.serve.server import configure_logging

    config = load_config(os.environ[CONFIG_ENV])
    configure_logging(config)
    return create_app(config)
