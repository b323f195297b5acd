"""A classifier behind an HTTP endpoint as a black-box ``Model``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from modelshield.core.adapters.base import ServedModel
from modelshield.core.errors import DependencyError, InputError, RemoteModelError

try:
    import httpx
except ImportError:  # the `remote` extra is optional
    httpx = None  # type: ignore[assignment]

RemoteOutput = Literal["auto", "logits", "probabilities", "labels"]
Abstentions = Literal["refuse", "count"]
_KINDS = ("logits", "probabilities", "labels")
ABSTAIN = -1
"""The label ``predict`` gives an input the endpoint abstained on (never an adversarial success)."""


class RemoteModel(ServedModel):
    """A model served over HTTP: our gateway, or any service that speaks this wire protocol.

    One POST per chunk of at most ``batch_size`` samples, JSON both ways::

        POST <url>                      Content-Type: application/json, plus ``headers``
        {"inputs": [sample, ...]}       each sample a nested list of shape input_shape

        200 {"logits": [[float, ...], ...]}          (N, num_classes) raw scores, or
        200 {"probabilities": [[float, ...], ...]}   (N, num_classes) rows summing to 1, or
        200 {"labels": [int, ...]}                   (N,) class indices: a label-only model

    Answers come in the order of the inputs. The kind is fixed by ``output`` or, with "auto",
    by the first answer (``has_scores`` sends a one-sample probe, counted, when asked first).

    A row that is ``null`` is an abstention: a guard in front of the model (our gateway's guard with
    ``fallback = "abstain"`` answers ``"probabilities": [null, ...]`` and label −1 for the inputs it
    flags) withheld the answer. With ``abstentions="refuse"`` (the default) that raises
    ``RemoteModelError``, and callers that know better ask again (``redteam.adaptive``). With
    ``"count"`` (what ``modelshield assess`` uses) ``predict`` gives such an input the label
    :data:`ABSTAIN` (−1), which is wrong on a clean input and never an adversarial success; to a
    score-based attack it reads as the uniform distribution (the answer that tells nothing). Once
    the endpoint has abstained, ``labels_from_scores`` is False, so attacks confirm a success with
    ``predict`` before they stop. ``abstained`` counts the inputs withheld, as ``queries`` counts
    those asked.
    Transport errors, 429 and 5xx are retried ``max_retries`` times with a short back-off; any
    other failure, a wrong shape, a kind that changes or a non-finite value raises
    ``RemoteModelError`` with one line of reason. ``headers`` (API keys, Authorization) are sent,
    never logged, and kept out of every message.
    """

    def __init__(
        self,
        url: str,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        headers: Mapping[str, str] | None = None,
        batch_size: int = 256,
        timeout: float = 30.0,
        max_retries: int = 2,
        output: RemoteOutput = "auto",
        abstentions: Abstentions = "refuse",
    ) -> None:
        if httpx is None:
            raise DependencyError("RemoteModel needs httpx", hint="pip install 'modelshield[remote]'")
        super().__init__(input_shape=input_shape, bounds=bounds)
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise InputError(f"the model URL must be http(s)://host/..., not {parsed.copy_with(query=None)}")
        if output not in ("auto", *_KINDS):
            raise InputError(f"output must be auto, logits, probabilities or labels, not {output!r}")
        if abstentions not in ("refuse", "count"):
            raise InputError(f"abstentions must be refuse or count, not {abstentions!r}")
        if num_classes < 2 or batch_size < 1 or max_retries < 0:
            raise InputError("RemoteModel needs num_classes >= 2, batch_size >= 1 and max_retries >= 0")
        self.reply_error = RemoteModelError
        self.url = url
        self.num_classes = int(num_classes)
        self.batch_size = int(batch_size)
        self.max_retries = int(max_retries)
        self._where = str(parsed.copy_with(query=None))  # a query string may carry a token
        self._kind: str | None = None if output == "auto" else output
        self._client = httpx.Client(headers=dict(headers or {}), timeout=timeout)
        self.abstentions = abstentions
        self.abstained = 0
        self._withheld: list[np.ndarray] = []  # per chunk of the current call: which rows were abstained on

    @property
    def labels_from_scores(self) -> bool:  # type: ignore[override]
        """False once the endpoint has abstained: its labels (−1 there) then differ from the scores' argmax."""
        return self.abstained == 0

    @property
    def has_scores(self) -> bool:  # type: ignore[override]
        """Whether the service returns scores; asks it once when ``output="auto"`` and no answer came yet."""
        if self._kind is None:
            self._labels(torch.full((1, *self.input_shape), sum(self.bounds) / 2))
        return self._kind != "labels"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _ask(self, batch: np.ndarray) -> tuple[str, np.ndarray]:
        values = self._post(batch)
        assert self._kind is not None  # fixed by the first answer
        return self._kind, values

    def _answer(self, x: Tensor) -> Tensor:
        self._withheld = []
        return super()._answer(x)

    def _labels(self, x: Tensor) -> Tensor:
        out = super()._labels(x)
        if self._withheld and any(m.any() for m in self._withheld):
            out = out.clone()
            out[torch.from_numpy(np.concatenate(self._withheld)).to(out.device)] = ABSTAIN
        return out

    def _post(self, batch: np.ndarray) -> np.ndarray:
        """One request; returns the answer's array and fixes the kind on the first answer."""
        response = self._send({"inputs": batch.tolist()})
        try:
            payload = response.json()
        except ValueError:
            raise self._error("answered with something that is not JSON", response) from None
        kinds = [k for k in _KINDS if k in payload] if isinstance(payload, dict) else []
        if len(kinds) != 1:
            raise self._error("answered without exactly one of logits, probabilities or labels", response)
        if self._kind is None:
            self._kind = kinds[0]
        elif kinds[0] != self._kind:
            raise self._error(f"answered with {kinds[0]}, expected {self._kind}", response)
        rows = payload[self._kind]
        withheld = np.asarray([r is None for r in rows] if isinstance(rows, list) else [], dtype=bool)
        if withheld.any() and self.abstentions == "refuse":
            raise RemoteModelError(
                f"{self._where} abstained on {int(withheld.sum())} of {len(rows)} inputs (no {self._kind} for them): "
                "the endpoint is guarded; RemoteModel(abstentions='count') reads an abstention as label -1, or "
                "assess the model behind the guard (modelshield assess --model FILE)"
            )
        if withheld.any():  # the uniform answer (it tells nothing), or a placeholder label that _labels replaces
            uniform = [0.0 if self._kind == "logits" else 1.0 / self.num_classes] * self.num_classes
            rows = [(0 if self._kind == "labels" else uniform) if r is None else r for r in rows]
            self.abstained += int(withheld.sum())
        self._withheld.append(withheld)
        try:
            return np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            raise self._error(f"answered with {self._kind} that are not a numeric array", response) from None

    def _send(self, body: dict[str, Any]) -> httpx.Response:
        """POST with retries on transport errors, 429 and 5xx."""
        attempt = 0
        while True:
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TransportError as e:
                if attempt >= self.max_retries:
                    reason = " ".join(str(e).split())
                    raise RemoteModelError(f"{self._where} unreachable: {type(e).__name__} {reason}".strip()) from None
            else:
                if response.is_success:
                    return response
                if attempt >= self.max_retries or not (response.status_code == 429 or response.status_code >= 500):
                    raise self._error(f"answered HTTP {response.status_code}", response)
            time.sleep(0.1 * 2**attempt)
            attempt += 1

    def _error(self, reason: str, response: httpx.Response) -> RemoteModelError:
        body = " ".join(response.text[:200].split())
        return RemoteModelError(f"{self._where} {reason}: {body}")
