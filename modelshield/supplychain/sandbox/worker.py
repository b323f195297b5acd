"""The sandboxed process: lock itself in, then load the untrusted model and answer prediction requests.

Started by ``client.Sandbox`` as ``python -I -B -m modelshield.supplychain.sandbox.worker CONFIG``.
Frames it sends, in order:

1. ``{"op": "isolated", "ok": true, "layers": [...]}`` — written before any untrusted code runs, so
   the layer report cannot be forged by the model;
2. ``{"op": "ready", "ok": true, "input_shape", "num_classes", "bounds", "output"}`` once the model
   is loaded (or ``ok: false`` with an error);
3. one reply per request: ``{"ok": true}`` + the predictions, or ``ok: false`` with an error.

Everything after frame 1 may come from hostile code (it shares this process), so the parent checks
every frame; this module only makes honest models easy to talk to.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from modelshield.supplychain.sandbox import protocol
from modelshield.supplychain.sandbox.isolation import IsolationUnavailable, Policy, isolate

MAX_REQUEST_BYTES = 1 << 31
OUTPUTS = ("logits", "probabilities", "labels")
PROBE_FILE = ".modelshield-sandbox-probe"


@dataclass
class Predictor:
    """An untrusted model seen through numpy: batch in, scores (or labels) out."""

    predict: Callable[[np.ndarray], Any]
    output: str
    input_shape: tuple[int, ...]
    num_classes: int
    bounds: tuple[float, float]


def describe(exc: BaseException) -> str:
    """One line naming an exception raised by untrusted code."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def _torch_predictor(fn: Callable[[Any], Any], torch: Any, device: Any) -> Callable[[np.ndarray], Any]:
    """numpy in, numpy out around a torch callable, without gradients."""

    def predict(x: np.ndarray) -> Any:
        with torch.no_grad():
            return fn(torch.from_numpy(x).to(device)).detach().cpu().numpy()

    return predict


def adapt(
    obj: Any, input_shape: Sequence[int] | None, num_classes: int | None, bounds: tuple[float, float]
) -> Predictor:
    """Wrap what a vendor factory returned: a modelshield Model, a torch module, or an estimator-like object."""
    core_model = sys.modules.get("modelshield.core.model")
    torch = sys.modules.get("torch")
    if core_model is not None and isinstance(obj, core_model.Model):
        model, torch = obj, sys.modules["torch"]
        output = "logits" if model.has_scores else "labels"
        predict = _torch_predictor(model.logits if model.has_scores else model.predict, torch, model.device)
        return Predictor(predict, output, tuple(model.input_shape), int(model.num_classes), tuple(model.bounds))
    if torch is not None and isinstance(obj, torch.nn.Module):
        obj.eval()
        predict, output = _torch_predictor(obj, torch, torch.device("cpu")), "logits"
    elif hasattr(obj, "predict_proba"):
        predict, output = obj.predict_proba, "probabilities"
    elif hasattr(obj, "predict"):
        predict, output = obj.predict, "labels"
    elif callable(obj):
        predict, output = obj, "logits"
    else:
        raise TypeError(f"the factory returned a {type(obj).__name__}, which has no predict, predict_proba or __call__")
    shape = input_shape or getattr(obj, "input_shape", None)
    if shape is None and hasattr(obj, "n_features_in_"):
        shape = (int(obj.n_features_in_),)
    if shape is None:
        raise ValueError("the input shape is unknown: pass input_shape, or give the model an input_shape attribute")
    shape = tuple(int(s) for s in shape)
    classes = num_classes or getattr(obj, "num_classes", None)
    if classes is None and hasattr(obj, "classes_"):
        classes = len(obj.classes_)
    if classes is None and output != "labels":
        lo, hi = bounds
        classes = np.asarray(predict(np.full((1, *shape), (lo + hi) / 2, dtype=np.float32))).shape[-1]
    if classes is None:
        raise ValueError("the number of classes is unknown for a label-only model: pass num_classes")
    return Predictor(predict, output, shape, int(classes), bounds)


def load(
    source: dict[str, Any], input_shape: Sequence[int] | None, num_classes: int | None, bounds: tuple[float, float]
) -> Predictor:
    """Import the vendor factory (or load the model file) and adapt what it gives."""
    if source["kind"] == "file":
        from modelshield.integrity.safe_load import load_model

        options = {"input_shape": input_shape, "num_classes": num_classes, **source["options"]}
        options = {k: v for k, v in options.items() if v is not None}
        return adapt(load_model(source["path"], bounds=bounds, **options), input_shape, num_classes, bounds)
    sys.path.insert(0, source["folder"])
    module_name, _, attr = source["entry"].partition(":")
    factory: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        factory = getattr(factory, part)
    return adapt(factory(**source["kwargs"]), input_shape, num_classes, bounds)


def probe(port: int, unix_path: str, outside: Sequence[str]) -> list[dict[str, Any]]:
    """Try to leave the sandbox: reach the parent over TCP, UDP and a Unix socket, write outside scratch, then in it."""
    results = []

    def attempt(name: str, action: Callable[[], object], should_work: bool = False) -> None:
        try:
            action()
            outcome = {"attempt": name, "succeeded": True, "detail": "succeeded"}
        except OSError as e:
            outcome = {"attempt": name, "succeeded": False, "detail": e.strerror or str(e)}
        outcome["expected"] = should_work
        results.append(outcome)

    def tcp() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass

    def udp() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"escaped", ("127.0.0.1", port))

    def unix() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(unix_path)

    def write(folder: str) -> Callable[[], object]:
        def action() -> None:
            with open(os.path.join(folder, PROBE_FILE), "w") as f:
                f.write("escaped")

        return action

    attempt(f"tcp: connect to 127.0.0.1:{port}, where the parent listens", tcp)
    attempt(f"udp: send to 127.0.0.1:{port}, where the parent listens", udp)
    attempt(f"unix: connect to {unix_path}, where the parent listens", unix)
    for folder in outside:
        attempt(f"write in {folder}", write(folder))
    attempt("write in scratch", write(os.environ["MODELSHIELD_SCRATCH"]), should_work=True)
    return results


def _check_batch(x: np.ndarray, shape: tuple[int, ...]) -> None:
    if x.dtype != np.float32 or x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise ValueError(f"expected a float32 batch of shape (N, {', '.join(map(str, shape))})")


def serve(request_fd: int, reply_fd: int, predictor: Predictor) -> None:
    """Answer predict requests until the parent says close or goes away."""
    while True:
        try:
            header, arrays = protocol.receive(request_fd, max_bytes=MAX_REQUEST_BYTES)
        except protocol.PeerClosed:
            return
        if header.get("op") == "close":
            return
        try:
            x = arrays[0]
            _check_batch(x, predictor.input_shape)
            out = np.asarray(predictor.predict(x))
            frame = protocol.encode({"ok": True, "output": predictor.output}, [out])
        except MemoryError:
            protocol.send(reply_fd, {"ok": False, "kind": "memory", "error": "out of memory"})
            os._exit(4)
        except Exception as e:  # whatever the vendor code raises is reported, not fatal
            frame = protocol.encode({"ok": False, "kind": "vendor", "error": describe(e)})
        protocol.write_all(reply_fd, frame)


def main(argv: list[str]) -> int:
    """Isolate, report the layers, load the model, serve."""
    config = json.loads(argv[1])
    request_fd, reply_fd = config["request_fd"], config["reply_fd"]
    policy = Policy.from_json(config["policy"])
    try:
        report = isolate(policy, (request_fd, reply_fd))
    except (IsolationUnavailable, OSError) as e:
        protocol.send(reply_fd, {"op": "isolated", "ok": False, "kind": "isolation", "error": describe(e)})
        return 3
    protocol.send(reply_fd, {"op": "isolated", "ok": True, "layers": [asdict(layer) for layer in report.layers]})
    source = config["source"]
    if source["kind"] == "probe":
        protocol.send(
            reply_fd, {"op": "probed", "ok": True, "probes": probe(source["port"], source["unix"], source["outside"])}
        )
        return 0
    lo, hi = config["bounds"]
    try:
        predictor = load(source, config["input_shape"], config["num_classes"], (float(lo), float(hi)))
    except MemoryError:
        protocol.send(reply_fd, {"op": "ready", "ok": False, "kind": "memory", "error": "out of memory"})
        os._exit(4)
    except BaseException as e:  # noqa: BLE001 - untrusted code may raise anything, SystemExit included
        protocol.send(reply_fd, {"op": "ready", "ok": False, "kind": "vendor", "error": describe(e)})
        return 1
    protocol.send(
        reply_fd,
        {
            "op": "ready",
            "ok": True,
            "input_shape": list(predictor.input_shape),
            "num_classes": predictor.num_classes,
            "bounds": list(predictor.bounds),
            "output": predictor.output,
        },
    )
    serve(request_fd, reply_fd, predictor)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
