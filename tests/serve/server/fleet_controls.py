"""Gateway replicas on one shared store: the fleet-controls harness.

The store holds a registry with two versions of the digits CNN (version 2 in production, served by a route that
names no version), API keys for an admin and three predictors, and the audit log; every replica serves that
route with a calibrated guard on its own loopback port. A replica is a real ``modelshield serve`` process
(``cli.serve.gateway_process``), or, with ``processes=False``, an app of its own under uvicorn in a thread of
this process (``conftest.running``: its own stores, Redis listeners and control loop, seconds instead of a
process start that takes a minute on a loaded machine). Used by ``test_fleet_controls.py`` and
``bench/fleet_controls.py``.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import secrets
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from modelshield.cli.serve import gateway_process
from modelshield.serve.config import load_config
from tests.fleet.fleet import REDIS_URL, ensure_redis, free_port
from tests.serve.server.conftest import running

PREDICTORS = ("alice", "bob", "carol")
GUARD = (
    '[models.digits.guard]\ndetector = "feature-squeezing"\ndetector_options = { bits = 2 }\n'
    'calibration_data = "sklearn:digits:train"\nfpr = 0.05\nfallback = "abstain"\ncalibration_samples = 100\n'
)


class ControlFleet:
    """``replicas`` gateways on ``db_url`` (and the local Redis when ``redis``), polling every ``poll_seconds``."""

    def __init__(
        self,
        work: Path,
        weights: Path,
        db_url: str,
        *,
        redis: bool,
        poll_seconds: float = 2.0,
        replicas: int = 2,
        processes: bool = True,
        workers: int = 1,
    ) -> None:
        self.work, self.weights, self.db_url = work, weights, db_url
        self.redis, self.poll_seconds, self.count, self.processes = redis, poll_seconds, replicas, processes
        self.workers = workers if processes else 1
        self.prefix = f"mstest-fleet-{secrets.token_hex(4)}"
        self.urls: list[str] = []
        self.keys: dict[str, str] = {}
        #: each process replica's log (JSON lines), by URL
        self.logs: dict[str, Path] = {}
        self._stack = contextlib.ExitStack()
        self._n = itertools.count(1)

    def __enter__(self) -> ControlFleet:
        try:
            self._prepare()
            with ThreadPoolExecutor(self.count if self.processes else 1) as pool:  # processes start together
                self.urls = list(pool.map(lambda _: self.start_replica(), range(self.count)))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        if self.redis:  # the buckets and channels of this fleet only
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(f"{self.prefix}:*"))
            if keys:
                client.delete(*keys)

    def _prepare(self) -> None:
        from modelshield.audit.keys import generate_keypair
        from modelshield.registry import Registry
        from modelshield.serve.apikeys import ApiKeyStore

        if self.redis:
            ensure_redis(REDIS_URL)
        self.work.mkdir(parents=True, exist_ok=True)
        self.pepper = self.work / "pepper"
        fd = os.open(self.pepper, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)).decode())
        generate_keypair(self.work / "audit.pem", self.work / "audit.pub.pem")
        store = ApiKeyStore.open(self.db_url, pepper_file=self.pepper)
        try:
            for subject, roles in {"admin": ["admin"], **{p: ["predictor"] for p in PREDICTORS}}.items():
                self.keys[subject] = store.create(subject, roles, attributes={"clearance": "internal"}).plaintext
        finally:
            store.close()
        meta = {"file": "model.safetensors", "num_classes": 10, "bounds": [0.0, 1.0]}
        meta |= {"arch": "modelshield.demo:DigitsCNN", "input_shape": [1, 8, 8]}
        with Registry.open(self.db_url) as registry:
            for n in (1, 2):
                folder = self.work / f"v{n}"
                folder.mkdir()
                shutil.copy(self.weights, folder / "model.safetensors")
                (folder / "NOTES.txt").write_text(f"release {n}\n")
                mv = registry.register("digits", folder, owner="test", metadata=meta)
            registry.promote("digits", mv.version, "staged")
            registry.promote("digits", mv.version, "production")

    def _config(self, port: int) -> Path:
        redis = f'redis_url = "{REDIS_URL}"\n' if self.redis else ""
        path = self.work / f"serve-{port}.toml"
        path.write_text(
            f'[server]\nport = {port}\nworkers = {self.workers}\nstore_url = "{self.db_url}"\n'
            f"control_poll_seconds = {self.poll_seconds}\n\n"
            f'[models.digits]\nregistry_name = "digits"\n\n{GUARD}\n'
            f'[auth]\napi_key_pepper_file = "{self.pepper}"\n\n'
            f'[audit]\ndb_url = "{self.db_url}"\nsigning_key_file = "{self.work / "audit.pem"}"\n'
            f'public_key_file = "{self.work / "audit.pub.pem"}"\n\n'
            f'[rate_limits]\n{redis}redis_prefix = "{self.prefix}"\nper_identity_rps = 1000\n'
            "per_identity_burst = 1000\ndaily_quota = 1000000\n"
        )
        return path

    def start_replica(self) -> str:
        """One more replica on a free port (a replica that starts after changes were made); its URL."""
        port = free_port()
        if not self.processes:
            return self._stack.enter_context(running(load_config(self._config(port))))
        log = self.work / f"replica-{next(self._n)}.log"
        url = self._stack.enter_context(gateway_process(self._config(port), port, log, wait_s=180))
        self.logs[url] = log
        return url

    # -- calls -------------------------------------------------------------------------------------------------

    def admin(self, url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST an admin change to one replica; its answer (which must be 200)."""
        r = httpx.post(url + path, json=body, headers=self.bearer("admin"), timeout=60)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def controls(self, url: str) -> dict[str, Any]:
        r = httpx.get(url + "/v1/admin/controls", headers=self.bearer("admin"), timeout=30)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def predict(self, url: str, who: str, inputs: Any) -> httpx.Response:
        return httpx.post(
            url + "/v1/models/digits/predict", json={"inputs": inputs}, headers=self.bearer(who), timeout=30
        )

    def bearer(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys.get(who, who)}"}


def seconds_until(done: Callable[[], bool], within: float, what: str) -> float:
    """How long until ``done()`` holds, asked every 10 ms; fails the test past ``within`` seconds."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within:g} s")
        time.sleep(0.01)
    return time.monotonic() - started
