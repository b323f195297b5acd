"""An ONNX graph run by onnxruntime as a black-box ``Model``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from torch import Tensor

from modelshield.core.adapters.base import BlackBoxModel, checked_labels, checked_scores, is_probabilities, to_numpy
from modelshield.core.errors import DependencyError, FormatError, InputError

_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}
_LABEL_TYPES = ("tensor(int64)", "tensor(int32)")
OnnxOutput = Literal["auto", "logits", "probabilities"]


def _static_dims(dims: Sequence[Any]) -> tuple[int, ...] | None:
    """The dims when every one is a fixed positive int, else None (symbolic or unknown)."""
    return tuple(dims) if all(isinstance(d, int) and d > 0 for d in dims) else None


class OnnxModel(BlackBoxModel):
    """A classifier exported to ONNX, run with onnxruntime on CPU or whichever provider is given.

    The graph must take one float tensor (N, *input_shape); its first rank-2 float output is the
    class scores. A graph whose batch dim is fixed (often to 1) is fed in chunks of that size.
    ``output="auto"`` probes the model once at construction (not counted as queries) and treats
    it as a softmax if every row is non-negative and sums to one; probabilities become
    log-probabilities. ``num_classes``, when given, must match what the graph outputs.

    A graph with an integer label output as well (what skl2onnx writes for a scikit-learn
    classifier) decides with it: that is the estimator's ``predict``, which can disagree with
    argmax of its probabilities (``SVC(probability=True)``). A graph whose only other output is
    not a float tensor (skl2onnx's default ZipMap of probabilities) is used as a label-only model,
    and then needs ``num_classes``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes,
        *,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        bounds: tuple[float, float] = (0.0, 1.0),
        output: OnnxOutput = "auto",
        providers: Sequence[str] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise DependencyError("OnnxModel needs onnxruntime", hint="pip install 'modelshield[onnx]'") from e
        if output not in ("auto", "logits", "probabilities"):
            raise InputError(f"output must be auto, logits or probabilities, not {output!r}")
        source = model if isinstance(model, bytes) else os.fspath(model)
        try:
            self.session = ort.InferenceSession(source, providers=list(providers or ort.get_available_providers()))
        except Exception as e:  # onnxruntime raises its own unrelated exception types
            raise FormatError(f"onnxruntime cannot load the model: {str(e).splitlines()[0]}") from e
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type not in _FLOAT_TYPES:
            raise InputError(f"OnnxModel needs a graph with one float input, this one has {[i.type for i in inputs]}")
        batch, *dims = inputs[0].shape
        self._input_name = inputs[0].name
        self._dtype = _FLOAT_TYPES[inputs[0].type]
        self._batch = batch if isinstance(batch, int) and batch > 0 else None
        graph_shape = _static_dims(dims)
        if input_shape is None:
            if graph_shape is None:
                raise InputError(
                    f"the graph's input shape {inputs[0].shape} is not static; pass input_shape (CLI: --input-shape)"
                )
            input_shape = graph_shape
        elif graph_shape is not None and tuple(input_shape) != graph_shape:
            raise InputError(f"input_shape {tuple(input_shape)} does not match the graph's {graph_shape}")
        super().__init__(input_shape=input_shape, bounds=bounds)
        self._label_name = next(
            (o.name for o in self.session.get_outputs() if o.type in _LABEL_TYPES and len(o.shape) == 1), None
        )
        self.labels_from_scores = self._label_name is None
        score_name = self._score_output()
        self._output_name = score_name or ""
        if score_name is None:
            if self._label_name is None:
                raise InputError("the graph has no float output to read class scores from, nor an integer label output")
            if num_classes is None:
                raise InputError("the graph outputs labels only; pass num_classes (CLI: --num-classes)")
            self.has_scores, self.num_classes, self.probabilities = False, int(num_classes), False
            return
        probe = self._run(np.random.default_rng(0).uniform(*self.bounds, (4, *self.input_shape)).astype(self._dtype))
        if probe.ndim != 2:
            raise InputError(f"the model outputs shape {probe.shape} for 4 inputs; expected (4, num_classes)")
        if num_classes is not None and num_classes != probe.shape[1]:
            raise InputError(f"the model outputs {probe.shape[1]} scores per sample, but num_classes={num_classes}")
        self.num_classes = int(probe.shape[1])
        self.probabilities = is_probabilities(probe) if output == "auto" else output == "probabilities"

    def _score_output(self) -> str | None:
        """Name of the first rank-2 float output, if any (skl2onnx graphs also output labels)."""
        floats = [o for o in self.session.get_outputs() if o.type in _FLOAT_TYPES]
        if not floats:
            return None
        return next((o for o in floats if len(o.shape) == 2), floats[0]).name

    def _run(self, x: np.ndarray, output: str | None = None) -> np.ndarray:
        """Run the graph for one output (default: the scores), in zero-padded chunks when its batch dim is fixed."""
        name = output or self._output_name
        if self._batch is None:
            return self.session.run([name], {self._input_name: x})[0]
        out = []
        for i in range(0, len(x), self._batch):
            chunk = x[i : i + self._batch]
            padded = np.zeros((self._batch, *chunk.shape[1:]), dtype=chunk.dtype)
            padded[: len(chunk)] = chunk
            out.append(self.session.run([name], {self._input_name: padded})[0][: len(chunk)])
        return np.concatenate(out)

    def _scores(self, x: Tensor) -> Tensor:
        scores = self._run(to_numpy(x, self._dtype))
        return checked_scores(
            scores, n=x.shape[0], num_classes=self.num_classes, probabilities=self.probabilities, device=x.device
        )

    def _labels(self, x: Tensor) -> Tensor:
        if self._label_name is None:
            return super()._labels(x)
        self._count(x)
        labels = self._run(to_numpy(x, self._dtype), self._label_name)
        return checked_labels(labels, n=x.shape[0], num_classes=self.num_classes, device=x.device)
