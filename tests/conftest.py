"""Shared fixtures: the demo digits CNN trained once per session, torch on one thread, in-process CLI runs,
and ASGI apps served by uvicorn on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import torch
from entrypoint import invoke_main

from modelshield.core.datasets import Dataset
from modelshield.core.model import TorchModel

RunMain = Callable[..., tuple[int, str, str]]
ServeAsgi = Callable[..., AbstractContextManager[int]]


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """Torch on one thread: the machine is shared, and the small batches of these tests run fastest (and
    reproducibly) on one. Session-scoped and autouse, so it is in force before any session fixture trains."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def demo_trained_once() -> Iterator[None]:
    """In-process ``--demo`` runs (assess, harden, watermark, serve) train the demo CNN once per seed per session.

    Training is deterministic for a seed (one thread), so each call gets a deep copy of the model trained on its
    first call, and torch's global RNG is left as that training left it: what follows the call sees the same
    weights and random numbers as after a fresh training, a few seconds sooner. Subprocess runs still train."""
    import copy

    import modelshield.demo

    train = modelshield.demo.demo_model_and_data
    trained: dict[int, tuple[tuple[TorchModel, Dataset], torch.Tensor]] = {}

    def demo_model_and_data(seed: int = 0) -> tuple[TorchModel, Dataset]:
        if seed not in trained:
            trained[seed] = (train(seed=seed), torch.get_rng_state())
        result, rng = trained[seed]
        torch.set_rng_state(rng)
        return copy.deepcopy(result)

    mp = pytest.MonkeyPatch()
    mp.setattr(modelshield.demo, "demo_model_and_data", demo_model_and_data)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def digits(demo_trained_once: None) -> tuple[TorchModel, Dataset]:
    """The demo model and the digits test split (450 images, 1×8×8 in [0, 1]), from the same training as --demo."""
    import modelshield.demo

    return modelshield.demo.demo_model_and_data(seed=0)


@pytest.fixture(scope="session")
def digits_model(digits: tuple[TorchModel, Dataset]) -> TorchModel:
    return digits[0]


@pytest.fixture(scope="session")
def digits_test(digits: tuple[TorchModel, Dataset]) -> Dataset:
    return digits[1]


@pytest.fixture
def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunMain:
    """``run_main("scan", path)``: ``invoke_main`` as a fixture."""
    return lambda *args: invoke_main(list(args), monkeypatch, capsys)


@pytest.fixture(scope="session")
def serve_asgi() -> ServeAsgi:
    """``with serve_asgi(app, **uvicorn_options) as port:`` serves ``app`` with uvicorn in a thread on a free
    127.0.0.1 port (the socket is bound before the server starts, so no other process can take the port).
    uvicorn's logging config stays off: its handlers would hold this test's captured stderr, which pytest closes
    after the test, and a later record written there fails ("I/O operation on closed file")."""

    @contextmanager
    def serve(app: Any, **options: Any) -> Iterator[int]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        import uvicorn

        server = uvicorn.Server(
            uvicorn.Config(app, **{"log_level": "warning", "lifespan": "off", "log_config": None, **options})
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        try:
            yield int(sock.getsockname()[1])
        finally:
            server.should_exit = True
            thread.join(timeout=5)
            sock.close()

    return serve


@pytest.fixture(scope="session")
def guarded_demo_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(predict URL, predictor API key) of the demo gateway (`modelshield serve --demo`'s config: API keys, audit
    log, feature-squeezing guard with fallback abstain) in a child process, on a briefly trained digits CNN, its
    guard calibrated on 300 inputs and without live monitoring so that it starts in seconds. One per session:
    the RemoteModel and the Ray-sharding abstention tests share it (it answers deterministically)."""
    import json

    from modelshield.cli.serve import DEMO_GUARD, DEMO_MONITOR, free_port, gateway_process, prepare_demo
    from modelshield.core.datasets import sklearn_dataset
    from modelshield.core.loading import save_torch_model
    from modelshield.demo import train_digits_cnn

    state = tmp_path_factory.mktemp("guarded-demo")
    torch.manual_seed(0)
    net = train_digits_cnn(sklearn_dataset("digits", "train", seed=0), epochs=2)
    save_torch_model(net, state / "model" / "model.safetensors")
    test = sklearn_dataset("digits", "test", seed=0)
    (state / "example-request.json").write_text(json.dumps({"inputs": test.x[:1].tolist()}))
    port = free_port()
    with pytest.MonkeyPatch.context() as env:  # prepare_demo points MODELSHIELD_HOME at its folder
        env.setenv("MODELSHIELD_HOME", str(state))
        config, key, _ = prepare_demo(state, "127.0.0.1", port)
        quick = DEMO_GUARD.replace('fallback = "abstain"\n', 'fallback = "abstain"\ncalibration_samples = 300\n')
        config.write_text(config.read_text().replace(DEMO_MONITOR, "").replace(DEMO_GUARD, quick))
        with gateway_process(config, port, state / "gateway.log") as url:
            yield f"{url}/v1/models/demo/predict", key
