"""Start a run on one of Flower's engines, the way Flower documents it, and read back what the ServerApp wrote.

Both are Flower 1.42's documented path: a ``flower-superlink`` and ``flwr run`` submitting the app
(``run_simulation()`` is deprecated in 1.42), as processes on loopback ports chosen free, with a
private ``FLWR_HOME`` holding the connection.

- Simulation Engine: the SuperLink runs with ``--simulation`` and Ray executes the ClientApps of
  ``num-supernodes`` virtual clients. Ray is kept small (``num_cpus`` for the whole engine, one CPU
  per client actor) because its defaults take every core and its memory monitor kills idle
  workers on small machines (Flower issues #5855 and #1383).
- Deployment Engine: one real ``flower-supernode`` per client, each told its shard by
  ``--node-config partition-id=…``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

from modelshield.core.errors import DependencyError, InputError
from modelshield.privacy.federated.accounting import planned_rounds
from modelshield.privacy.federated.settings import FederatedSettings

ENGINES = ("simulation", "deployment")
_APP = "modelshield.privacy.federated.apps"
_RAY_START_TIMEOUT = "timed out during startup"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # colour and cursor codes Flower's logger writes


def _flower() -> None:
    try:
        import flwr  # noqa: F401
    except ImportError:
        raise DependencyError("federated learning needs Flower", hint="pip install 'modelshield[federated]'") from None


def _read(out: Path) -> dict[str, Any]:
    if not out.is_file():
        raise InputError("the Flower ServerApp ended without writing results; run with --verbose to see its log")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise InputError(f"a Flower process exited with code {proc.returncode} while starting")
        with closing(socket.socket()) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise InputError(f"a Flower process did not open port {port} within {timeout:.0f} s")


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        raise DependencyError(f"Flower's {name} command is not installed", hint="pip install 'modelshield[federated]'")
    return found


@contextmanager
def _process(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _hint(cause: str) -> str:
    """What to do next; for Ray's start-up timeout, the cause measured on a loaded machine (docs/federated.md)."""
    if _RAY_START_TIMEOUT in cause and importlib.util.find_spec("rfc3987_syntax") is not None:
        return (
            "Ray's raylet gives its Python agents a fixed ~15 s to start, and with rfc3987-syntax installed every "
            "'import ray' compiles a Lark grammar; pip uninstall rfc3987-syntax, or use --engine deployment"
        )
    return "run with --verbose"


def _app_dir(root: Path, settings_file: Path) -> Path:
    """A minimal Flower app project whose components are modelshield's apps."""
    app = root / "app"
    app.mkdir()
    (app / "pyproject.toml").write_text(
        "[build-system]\nrequires = ['hatchling']\nbuild-backend = 'hatchling.build'\n\n"
        "[project]\nname = 'modelshieldfl'\nversion = '1.0.0'\ndependencies = []\n\n"
        "[tool.flwr.app]\npublisher = 'modelshield'\n\n"
        f"[tool.flwr.app.components]\nserverapp = '{_APP}:server_app'\nclientapp = '{_APP}:client_app'\n\n"
        f"[tool.flwr.app.config]\nsettings-file = {json.dumps(str(settings_file))}\n"
    )
    return app


def _connection(port: int, settings: FederatedSettings, engine: str, num_cpus: int) -> str:
    """The ``[superlink]`` connection ``flwr run`` reads from ``$FLWR_HOME/config.toml``."""
    text = f"[superlink]\ndefault = 'local'\n\n[superlink.local]\naddress = '127.0.0.1:{port}'\ninsecure = true\n"
    if engine == "simulation":  # Ray kept small: Flower issues #5855 and #1383 (idle workers, out-of-memory kills)
        text += (
            f"options.num-supernodes = {settings.clients}\n"
            "options.backend.client-resources.num-cpus = 1\n"
            "options.backend.client-resources.num-gpus = 0.0\n"
            f"options.backend.init-args.num-cpus = {num_cpus}\n"
            "options.backend.init-args.num-gpus = 0\n"
        )
    return text


def _run_flwr(
    settings: FederatedSettings, *, engine: str, num_cpus: int = 2, timeout: float = 1800.0, verbose: bool = False
) -> dict[str, Any]:
    """Start a SuperLink (in simulation mode, or with one SuperNode per client) and submit the app with ``flwr run``."""
    _flower()
    planned_rounds(settings.check())  # a target ε that not one round fits is refused before any process starts
    with tempfile.TemporaryDirectory(prefix="ms-fl-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        s = settings.with_out(str(root / "results.json"))
        settings_file = root / "settings.json"
        settings_file.write_text(s.to_json())
        home = root / "flwr-home"
        home.mkdir()
        port, health, *node_ports = _free_ports(2 + (s.clients if engine == "deployment" else 0))
        (home / "config.toml").write_text(_connection(port, s, engine, num_cpus))
        # the SuperLink and SuperNodes start flower-superexec and flwr-* by name: this interpreter's first on PATH
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        env = {**os.environ, "FLWR_HOME": str(home), "PYTHONUNBUFFERED": "1", "PATH": path, "RAY_DEDUP_LOGS": "0"}
        link_args = [
            _bin("flower-superlink"), "--insecure", "--database", str(root / "state.db"), "--host", "127.0.0.1",
            "--port", str(port), "--health-server-address", f"127.0.0.1:{health}",
            "--disable-runtime-dependency-installation",
        ]  # fmt: skip
        if engine == "simulation":
            link_args.append("--simulation")
        link = stack.enter_context(_process(link_args, root / "superlink.log", env))
        _wait_port(port, link, 60)
        for pid, node_port in enumerate(node_ports):
            stack.enter_context(
                _process(
                    [_bin("flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{port}",
                     "--port", str(node_port), "--node-config", f"partition-id={pid} num-partitions={s.clients}"],
                    root / f"supernode-{pid}.log", env,
                )
            )  # fmt: skip
        app = _app_dir(root, settings_file)
        try:
            run = subprocess.run(
                [_bin("flwr"), "run", str(app), "local", "--stream"],
                capture_output=True, env=env, timeout=timeout, cwd=root,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise InputError(f"the federated run did not finish within {timeout:.0f} s") from None
        out = Path(s.out)
        detail = _ANSI.sub("", (run.stdout + run.stderr).decode(errors="replace"))
        if verbose:
            sys.stderr.write(detail)
        if run.returncode != 0 or not out.is_file():
            if verbose:
                sys.stderr.write("".join(p.read_text(errors="replace")[-4000:] for p in sorted(root.glob("*.log"))))
            lines = [ln.strip() for ln in detail.splitlines() if ln.strip()]
            cause = next((ln for ln in lines if _RAY_START_TIMEOUT in ln), lines[-1] if lines else "no output")
            raise InputError(f"flwr run failed (exit {run.returncode}): {cause}", hint=_hint(cause))
        return _read(out)


def run_simulation(settings: FederatedSettings, *, num_cpus: int = 2, verbose: bool = False) -> dict[str, Any]:
    """Run ``settings`` on Flower's Simulation Engine (a SuperLink in simulation mode, Ray with ``num_cpus``).

    Ray gives its raylet a fixed 30 s to register, which a loaded machine can miss; that failure
    (nothing has trained yet) is retried once."""
    try:
        return _run_flwr(settings, engine="simulation", num_cpus=num_cpus, verbose=verbose)
    except InputError as exc:
        if _RAY_START_TIMEOUT not in str(exc):
            raise
    return _run_flwr(settings, engine="simulation", num_cpus=num_cpus, verbose=verbose)


def run_deployment(settings: FederatedSettings, *, verbose: bool = False) -> dict[str, Any]:
    """Run ``settings`` on Flower's Deployment Engine: a SuperLink and one SuperNode per client on loopback."""
    return _run_flwr(settings, engine="deployment", verbose=verbose)


def run(settings: FederatedSettings, *, engine: str = "simulation", verbose: bool = False) -> dict[str, Any]:
    """Run ``settings`` on the named engine ('simulation' or 'deployment')."""
    if engine == "simulation":
        return run_simulation(settings, verbose=verbose)
    if engine == "deployment":
        return run_deployment(settings, verbose=verbose)
    raise InputError(f"--engine must be simulation or deployment, not {engine!r}")
