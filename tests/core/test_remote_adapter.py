"""RemoteModel against a real uvicorn server on loopback, serving scikit-learn on the wire protocol."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Response
from pydantic import BaseModel
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from modelshield.core.adapters import RemoteModel
from modelshield.core.errors import CapabilityError, InputError, RemoteModelError

API_KEY = "test-key-0f3a"


class Batch(BaseModel):
    inputs: list


def require_key(x_api_key: str = Header("")) -> None:
    if x_api_key != API_KEY:
        raise HTTPException(status_code=401, detail="invalid API key")


def make_app(estimator: LogisticRegression) -> FastAPI:
    app = FastAPI(dependencies=[Depends(require_key)])
    calls = {"flaky": 0}

    def features(batch: Batch) -> np.ndarray:
        x = np.asarray(batch.inputs, dtype=np.float64)
        return x.reshape(len(x), -1)

    @app.post("/probabilities")
    def probabilities(batch: Batch) -> dict:
        return {"probabilities": estimator.predict_proba(features(batch)).tolist()}

    @app.post("/logits")
    def logits(batch: Batch) -> dict:
        return {"logits": estimator.decision_function(features(batch)).tolist()}

    @app.post("/labels")
    def labels(batch: Batch) -> dict:
        return {"labels": estimator.predict(features(batch)).tolist()}

    @app.post("/garbage")
    def garbage(batch: Batch) -> Response:
        return Response("<html>Internal proxy page</html>", media_type="text/html")

    @app.post("/nan")
    def nan(batch: Batch) -> Response:
        rows = ",".join(["[NaN" + ",0" * 9 + "]"] * len(batch.inputs))
        return Response(f'{{"logits": [{rows}]}}', media_type="application/json")

    @app.post("/guarded")
    def guarded(batch: Batch) -> dict:  # the gateway's guard: abstained rows get label -1 and no scores
        probs: list = estimator.predict_proba(features(batch)).tolist()
        probs[0] = None
        return {"predictions": [-1, *estimator.predict(features(batch))[1:].tolist()], "probabilities": probs}

    @app.post("/narrow")
    def narrow(batch: Batch) -> dict:
        return {"probabilities": estimator.predict_proba(features(batch))[:, :3].tolist()}

    @app.post("/flaky", response_model=None)
    def flaky(batch: Batch) -> Response | dict:
        calls["flaky"] += 1
        if calls["flaky"] % 2:
            return Response("busy", status_code=503)
        return {"labels": estimator.predict(features(batch)).tolist()}

    @app.post("/down")
    def down(batch: Batch) -> Response:
        return Response("maintenance", status_code=503)

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(logreg: LogisticRegression) -> Iterator[str]:
    """A live uvicorn server on a free loopback port, stopped after the module's tests."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(make_app(logreg), log_level="warning", lifespan="off", log_config=None))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started, "uvicorn did not start"
    with threadpool_limits(1):  # the server's BLAS threads would fight the test's on a shared CPU
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(timeout=5)
    sock.close()


def remote(url: str, **kwargs) -> RemoteModel:
    return RemoteModel(url, input_shape=(1, 8, 8), num_classes=10, **{"headers": {"X-API-Key": API_KEY}, **kwargs})


def test_probabilities_become_log_probabilities_in_batches(server, logreg, digits_small):
    model = remote(f"{server}/probabilities", batch_size=16)
    x = digits_small.x[:40]
    assert model.has_scores and not model.white_box
    np.testing.assert_allclose(model.logits(x).exp().numpy(), logreg.predict_proba(x.flatten(1).numpy()), atol=1e-5)
    assert model.predict(x).tolist() == logreg.predict(x.flatten(1).numpy()).tolist()
    assert model.queries == 1 + 2 * len(x)  # the has_scores probe, then two passes


def test_logits_are_passed_through(server, logreg, digits_small):
    model = remote(f"{server}/logits", output="logits")
    x = digits_small.x[:8]
    expected = torch.from_numpy(logreg.decision_function(x.flatten(1).numpy()).astype(np.float32))
    torch.testing.assert_close(model.logits(x), expected)
    assert model.queries == len(x)


def test_label_only_service(server, logreg, digits_small):
    model = remote(f"{server}/labels")
    assert model.predict(digits_small.x).tolist() == logreg.predict(digits_small.x.flatten(1).numpy()).tolist()
    assert not model.has_scores
    with pytest.raises(CapabilityError):
        model.logits(digits_small.x[:2])
    assert model.queries == len(digits_small)


def test_retries_a_busy_service_once(server, digits_small):
    assert remote(f"{server}/flaky", max_retries=1).predict(digits_small.x[:4]).shape == (4,)


@pytest.mark.parametrize(
    ("path", "kwargs", "message"),
    [
        ("/probabilities", {"headers": {"X-API-Key": "wrong-key-9b1"}}, "HTTP 401: .*invalid API key"),
        ("/garbage", {}, "not JSON: <html>Internal proxy page</html>"),
        ("/nan", {}, "NaN or Inf"),
        ("/narrow", {}, r"shape \(4, 3\)"),
        ("/probabilities", {"output": "labels"}, "answered with probabilities, expected labels"),
        ("/down", {"max_retries": 1}, "HTTP 503: maintenance"),
        ("/guarded", {}, "abstained on 1 of 4 inputs .*the endpoint is guarded"),
    ],
)
def test_bad_answers_raise_one_line_errors(server, digits_small, path, kwargs, message):
    with pytest.raises(RemoteModelError, match=message) as info:
        remote(server + path, **kwargs).predict(digits_small.x[:4])
    assert "\n" not in str(info.value)
    assert "wrong-key-9b1" not in str(info.value) and API_KEY not in str(info.value)


def test_unreachable_service_and_bad_urls():
    with pytest.raises(RemoteModelError, match="unreachable"):
        remote(f"http://127.0.0.1:{free_port()}/predict", max_retries=0).predict(torch.zeros(1, 1, 8, 8))
    with pytest.raises(InputError, match="http"):
        remote("ftp://127.0.0.1/model")


@pytest.mark.parametrize("route, attacks", [("probabilities", {"square", "hopskipjump"}), ("labels", {"hopskipjump"})])
def test_assess_cli_red_teams_a_live_endpoint(server, tmp_path, monkeypatch, capsys, route, attacks):
    """`modelshield assess --model URL` runs only the black-box attacks the endpoint's answers allow."""
    import json
    import sys

    from modelshield.cli.main import main

    out = tmp_path / route
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "modelshield",
            "assess",
            "--model",
            f"{server}/{route}",
            "--header",
            f"X-API-Key: {API_KEY}",
            "--data",
            "sklearn:digits",
            "--samples",
            "12",
            "--queries",
            "30",
            "--eps",
            "0.2",
            "--out",
            str(out),
        ],
    )
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None), capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert {a["attack"] for a in report["attacks"]} == attacks
    assert all(a["queries"] > 0 for a in report["attacks"])
    assert API_KEY not in (out / "report.json").read_text() + (out / "report.html").read_text()
