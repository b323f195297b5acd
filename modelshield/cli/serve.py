"""``modelshield serve``: the inference gateway, from a config file or as a ready-to-try demo."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

DEMO_TTL_SECONDS = 7 * 24 * 3600
# The demo's adversarial guard. Abstain, not reject: a 422 refuses a whole batch, so at a 5% false-positive
# rate most clean batches of 64 would fail; abstaining costs only the flagged input its answer. 2-bit
# squeezing catches 76% of PGD (ε=0.1) at 5% FPR on digits, the default 4 bits about half that.
DEMO_GUARD = (
    '[guard]\ndetector = "feature-squeezing"\ndetector_options = { bits = 2 }\n'
    'calibration_data = "sklearn:digits:train"\nfpr = 0.05\nfallback = "abstain"\n'
)

# The demo's live monitoring: inputs tested for drift against the digits training split, outputs watched by
# CUSUM / Page–Hinkley; 10-second windows so the dashboard (/admin/dashboard) moves while you watch.
DEMO_MONITOR = (
    '[monitor]\nreference_data = "sklearn:digits:train"\nwindow = 500\nmin_rows = 100\ncheck_seconds = 2.0\n'
    "bucket_seconds = 10.0\nbuckets = 180\n"
)


def _train_demo_weights(weights: Path) -> None:
    """Train the digits CNN once and cache its weights (safetensors) in the demo folder."""
    import torch

    from modelshield.core.loading import save_torch_model
    from modelshield.demo import demo_model_and_data

    torch.set_num_threads(1)
    model, _ = demo_model_and_data()
    weights.parent.mkdir(parents=True, exist_ok=True)
    partial = weights.with_suffix(".partial")
    save_torch_model(model, partial)
    partial.replace(weights)


def _example_request(path: Path, weights: Path) -> None:
    """A real test digit that the demo's guard accepts and the model gets right, as the curl line's request body.

    At its 5% false-positive target the guard flags 6.0% of the clean test digits (27 of 450, the first one
    among them), so the example is chosen with the guard the gateway builds, not taken blindly.
    """
    import tomllib

    from modelshield.core.datasets import sklearn_dataset
    from modelshield.demo import DEMO_INPUT_SHAPE
    from modelshield.integrity.safe_load import load_model
    from modelshield.serve.config import GuardConfig
    from modelshield.serve.guarding import build_guard

    test = sklearn_dataset("digits", "test", seed=0)
    model = load_model(weights, arch="modelshield.demo:DigitsCNN", input_shape=DEMO_INPUT_SHAPE)
    guard = build_guard("demo", model, GuardConfig(**tomllib.loads(DEMO_GUARD)["guard"]))
    x, y = test.x[:64], test.y[:64]
    accepted = [v.action == "accept" for v in guard.guard.inspect(x)]
    right = (model.predict(x) == y).tolist()
    index = next(i for i in range(len(x)) if accepted[i] and right[i])
    path.write_text(json.dumps({"inputs": x[index : index + 1].tolist()}), encoding="utf-8")


def _registered_demo(db_url: str, model_dir: Path) -> tuple[int, str]:
    """The registry version holding these demo weights (registered and promoted the first time)."""
    from modelshield.demo import DEMO_INPUT_SHAPE, DEMO_NUM_CLASSES
    from modelshield.registry import Registry
    from modelshield.serve.runtime import file_digest

    registry = Registry.open(db_url)
    try:
        digest = file_digest(model_dir)
        for mv in registry.list("demo"):
            if mv.digest.removeprefix("sha256:") == digest and mv.status != "retired":
                return mv.version, digest
        metadata = {
            "file": "model.safetensors",
            "arch": "modelshield.demo:DigitsCNN",
            "input_shape": list(DEMO_INPUT_SHAPE),
            "num_classes": DEMO_NUM_CLASSES,
            "bounds": [0.0, 1.0],
        }
        mv = registry.register(
            "demo", model_dir, owner="modelshield-demo", datasets=["sklearn:digits"], metadata=metadata
        )
        registry.promote("demo", mv.version, "staged")
        registry.promote("demo", mv.version, "production")
        return mv.version, digest
    finally:
        registry.close()


def prepare_demo(state: Path, host: str, port: int) -> tuple[Path, str, Path]:
    """Everything the demo needs under ``state``: weights, store, registry entry, audit key, two API keys, config.

    Returns the config path, the predictor key (to show once) and the file holding the admin key.
    """
    from modelshield.audit.keys import generate_keypair
    from modelshield.integrity.keys import atomic_output
    from modelshield.serve.apikeys import PEPPER_ENV, ApiKeyStore, pepper_path

    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)
    model_dir = state / "model"
    if not (model_dir / "model.safetensors").is_file():
        typer.echo("training the demo digits model (once; cached in the demo folder)...", err=True)
        _train_demo_weights(model_dir / "model.safetensors")
    example = state / "example-request.json"
    if not example.is_file():
        _example_request(example, model_dir / "model.safetensors")
    db_url = f"sqlite:///{state / 'modelshield.db'}"
    version, digest = _registered_demo(db_url, model_dir)
    private, public = state / "audit-signing.pem", state / "audit-signing.pub.pem"
    if not private.is_file():
        generate_keypair(private, public)
    os.environ["MODELSHIELD_HOME"] = str(state)  # the demo's own pepper, created there the first time
    os.environ.pop(PEPPER_ENV, None)
    pepper = pepper_path(None)
    store = ApiKeyStore.open(db_url)
    try:
        admin = store.create(
            "demo-admin", ["admin"], expires_in=DEMO_TTL_SECONDS, attributes={"clearance": "restricted"}
        )
        predictor = store.create(
            "demo-predictor", ["predictor"], expires_in=DEMO_TTL_SECONDS, attributes={"clearance": "internal"}
        )
    finally:
        store.close()
    admin_file = state / "admin.key"
    with atomic_output(admin_file, mode=0o600) as f:  # 0600 even if an older file had another mode
        f.write((admin.plaintext + "\n").encode())
    config = state / "serve.toml"
    config.write_text(
        "# modelshield serve --demo: every control on\n"
        f'[server]\nhost = "{host}"\nport = {port}\n\n'
        f'[models.demo]\nversion = {version}\ndigest = "{digest}"\n\n'
        f'[auth]\napi_keys = true\napi_key_pepper_file = "{pepper}"\n\n'
        f'[audit]\ndb_url = "{db_url}"\nsigning_key_file = "{private}"\npublic_key_file = "{public}"\n'
        "checkpoint_every = 1000\ncheckpoint_seconds = 5.0\n\n"
        "[rate_limits]\nper_identity_rps = 50\nper_identity_burst = 100\ndaily_quota = 100000\n"
        "# one token a request, as the demo's published red-team and benchmark figures were measured (the default is\n"
        '# "samples": one token per input of a batch)\ncost = "requests"\n\n' + DEMO_GUARD + "\n" + DEMO_MONITOR,
        encoding="utf-8",
    )
    return config, predictor.plaintext, admin_file


def free_port() -> int:
    """A loopback port nobody listens on now (the OS picks it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gateway_process(config: Path, port: int, log_path: Path, wait_s: float = 120.0) -> Iterator[str]:
    """``modelshield serve --config CONFIG`` in a child process on loopback ``port``, its output in ``log_path``:
    yields the base URL once /healthz answers, and stops the process after. Drills and red-team runs attack a
    real gateway this way, not an in-process app, so what they measure is what a client sees."""
    import subprocess
    import sys
    import time

    import httpx

    from modelshield.core.errors import RemoteModelError

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelshield", "serve", "--config", str(config)], stdout=log, stderr=log, env=env
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + wait_s
            while True:
                if proc.poll() is not None:
                    raise RemoteModelError(f"the demo gateway exited with code {proc.returncode}; see {log_path}")
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).is_success:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RemoteModelError(f"the demo gateway did not start in {wait_s:.0f} s; see {log_path}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def register(app: typer.Typer) -> None:
    """Add ``modelshield serve``."""

    @app.command("serve")
    def serve(
        config: Annotated[
            Path | None,
            typer.Option(
                help="Gateway config (TOML). Default: $MODELSHIELD_SERVE_CONFIG or /etc/modelshield/serve.toml."
            ),
        ] = None,
        demo: Annotated[
            bool, typer.Option("--demo", help="Serve the built-in digits model with every control on.")
        ] = False,
        host: Annotated[str | None, typer.Option(help="Address to bind (default from the config: 127.0.0.1).")] = None,
        port: Annotated[int | None, typer.Option(help="Port (default from the config: 8000).")] = None,
        workers: Annotated[
            int | None, typer.Option(min=1, help="Worker processes (default from the config: 1).")
        ] = None,
        state_dir: Annotated[
            Path | None, typer.Option(help="Demo state folder (default: $MODELSHIELD_HOME/demo).")
        ] = None,
    ) -> None:
        """Serve models behind authentication, policy, rate limits, validation and a durable audit log."""
        from modelshield.core.errors import InputError
        from modelshield.serve.server import config_path, run_server

        if demo:
            if config is not None:
                raise InputError("--demo writes its own config; drop --config")
            from modelshield.core.storage import data_home

            state = state_dir or data_home() / "demo"
            chosen_host, chosen_port = host or "127.0.0.1", 8000 if port is None else port
            path, key, admin_file = prepare_demo(state, chosen_host, chosen_port)
            url = f"http://{chosen_host}:{chosen_port}"
            typer.echo(
                f"\nmodelshield demo gateway: {url}  (state, audit log and keys in {state})\n"
                f"  predictor API key (shown once, valid 7 days): {key}\n"
                f"  admin API key: in {admin_file} (mode 0600)\n"
                "  adversarial guard: on (feature squeezing, 2-bit, calibrated on sklearn:digits:train at 5% false "
                "positives); flagged inputs get label -1 (abstain)\n"
                f"  try:  curl -s -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
                f"--data @{state / 'example-request.json'} {url}/v1/models/demo/predict\n"
                f'  audit: curl -s -H "Authorization: Bearer $(cat {admin_file})" {url}/v1/admin/audit/verify\n'
                f"  dashboard: {url}/admin/dashboard  (sign in with the admin key; live drift, traffic and alerts)\n",
                err=True,
            )
            run_server(path, workers=workers)
            return
        run_server(config_path(config), host=host, port=port, workers=workers)
