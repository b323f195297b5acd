"""Running the gateway: the config file's location, structured logging, TLS, and uvicorn.

uvicorn runs on uvloop and the httptools parser when they are installed (``modelshield[serve]``); with
mutual TLS it uses the h11-based protocol that exposes the client certificate. Either way the protocol closes a
connection whose request headers do not all arrive within 10 s (``modelshield.serve.deadlines``).
"""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshield.core.errors import InputError
from modelshield.serve.config import ServeConfig, load_config

if TYPE_CHECKING:
    from fastapi import FastAPI

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
    from modelshield.serve.app import create_app

    return create_app(config)


def _ssl_context(_uvicorn_config: Any, _default: Any) -> ssl.SSLContext:
    """TLS context for uvicorn (a module-level function so worker processes can receive it)."""
    from modelshield.serve.mtls import server_ssl_context

    config = load_config(os.environ[CONFIG_ENV])
    s = config.server
    if s.tls_cert_file is None or s.tls_key_file is None:
        raise InputError("TLS needs both [server] tls_cert_file and tls_key_file")
    return server_ssl_context(
        s.tls_cert_file, s.tls_key_file, config.auth.mtls_ca_file, require_client_cert=config.auth.mtls_required
    )


def run_server(
    path: str | os.PathLike[str], *, host: str | None = None, port: int | None = None, workers: int | None = None
) -> None:
    """Serve the config at ``path`` with uvicorn until interrupted; errors in it stop the start with one line.

    The config is checked before the app (torch, FastAPI) is imported, so a bad one fails in a fraction of a second.
    """
    path = Path(path).resolve()
    config = load_config(path)
    import uvicorn

    from modelshield.serve.app import create_app

    os.environ[CONFIG_ENV] = str(path)
    configure_logging(config)
    s = config.server
    workers = workers or s.workers
    options: dict[str, Any] = dict(
        host=host or s.host,
        port=s.port if port is None else port,
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    from modelshield.serve.deadlines import H11WithDeadline, http_protocol

    options["http"] = http_protocol()  # uvicorn's, with a deadline for request headers (slowloris)
    if s.tls_cert_file is not None:
        from modelshield.serve.mtls import MtlsH11Protocol

        options.update(
            ssl_context_factory=_ssl_context, http=MtlsH11Protocol if config.auth.mtls_ca_file else H11WithDeadline
        )
        _ssl_context(None, None)  # a bad certificate stops the start here, with one line
    if workers > 1:
        uvicorn.run("modelshield.serve.server:app_from_env", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(config), **options)
