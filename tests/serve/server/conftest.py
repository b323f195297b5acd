"""Real gateways on loopback sockets: uvicorn in a thread (or a subprocess), a SQLite store, real keys."""

from __future__ import annotations

import base64
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import uvicorn

from modelshield.core.datasets import sklearn_dataset
from modelshield.core.loading import save_torch_model
from modelshield.demo import train_digits_cnn
from modelshield.serve.app import create_app
from modelshield.serve.config import ServeConfig, parse_config
from modelshield.serve.runtime import file_digest

ARCH = {"arch": "modelshield.demo:DigitsCNN", "input_shape": [1, 8, 8]}


@dataclass
class State:
    """A gateway's files: store, pepper, audit keys and the API keys issued for each role."""

    root: Path
    db_url: str
    pepper: Path
    private_key: Path
    public_key: Path
    keys: dict[str, str]

    def audit_events(self) -> list[dict[str, Any]]:
        import json

        with sqlite3.connect(self.root / "store.db") as conn:
            return [json.loads(e) for (e,) in conn.execute("SELECT event FROM audit_records ORDER BY seq")]


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The demo CNN trained briefly (gateway tests need a real model, not an accurate one) and its digest."""
    torch.set_num_threads(1)
    net = train_digits_cnn(sklearn_dataset("digits", "train", seed=0), epochs=4)
    path = tmp_path_factory.mktemp("model") / "digits.safetensors"
    save_torch_model(net, path)
    return path, file_digest(path)


def make_state(root: Path, roles: dict[str, list[str]], clearance: str = "internal") -> State:
    """Create a store, a pepper, an audit key pair and one API key (subject = name) per entry of ``roles``."""
    from modelshield.audit.keys import generate_keypair
    from modelshield.serve.apikeys import ApiKeyStore

    root.mkdir(parents=True, exist_ok=True)
    pepper = root / "pepper"
    fd = os.open(pepper, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(secrets.token_bytes(32)).decode())
    private, public = root / "audit.pem", root / "audit.pub.pem"
    generate_keypair(private, public)
    db_url = f"sqlite:///{root / 'store.db'}"
    store = ApiKeyStore.open(db_url, pepper_file=pepper)
    keys = {
        name: store.create(name, r, expires_in=3600, attributes={"clearance": clearance}).plaintext
        for name, r in roles.items()
    }
    store.close()
    return State(root, db_url, pepper, private, public, keys)


def secure_config(state: State, models: dict[str, dict[str, Any]], **sections: dict[str, Any]) -> ServeConfig:
    """Every control on; ``sections`` override tables (e.g. rate_limits)."""
    data: dict[str, Any] = {
        "models": models,
        "server": {"store_url": state.db_url, "rehash_seconds": 0.2},
        "auth": {"api_key_pepper_file": str(state.pepper)},
        "audit": {
            "db_url": state.db_url,
            "signing_key_file": str(state.private_key),
            "public_key_file": str(state.public_key),
            "checkpoint_seconds": 0.5,
        },
        "validation": {"max_body_bytes": 65536, "max_batch": 64},
    }
    for name, table in sections.items():
        data[name] = {**data.get(name, {}), **table}
    return parse_config(data)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def running(config: ServeConfig, uvicorn_options: dict[str, Any] | None = None, **kwargs: Any) -> Iterator[str]:
    """The gateway for ``config`` served by uvicorn on a free loopback port in a thread; yields its URL
    (https when ``uvicorn_options`` carry a TLS context factory)."""
    app = create_app(config, **kwargs)
    sock = free_socket()
    options = uvicorn_options or {}
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, log_config=None, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    try:
        scheme = "https" if "ssl_context_factory" in options else "http"
        yield f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


# Child processes (the CLI, a served gateway) run torch on one thread: the machine is shared by the test workers.
ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def audit_verify(db_url: str, public_key: Path) -> subprocess.CompletedProcess[str]:
    """Run ``modelshield audit verify`` in its own process, as an auditor would after the fact."""
    return subprocess.run(
        [sys.executable, "-m", "modelshield", "audit", "verify", "--db", db_url, "--public-key", str(public_key)],
        capture_output=True,
        text=True,
        env=ONE_THREAD_ENV,
        timeout=60,
    )
