"""Request validation from the model's input signature, before any model code runs.

Order matters: the body is read with a byte cap (a declared Content-Length over the cap is
refused before reading), its JSON nesting depth is checked on the raw bytes (so a deeply nested
body never reaches the recursive parser), then the parsed batch is checked for size, shape,
dtype, NaN/Inf and the model's value bounds. Every refusal is a ``RequestValidationError`` with
the HTTP status the client should see: 400 (not JSON), 413 (too large), 422 (wrong content).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelshield.serve.errors import RequestValidationError

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")


@dataclass(frozen=True)
class InputSignature:
    """What a model accepts: per-sample shape, element dtype and the box its values live in."""

    input_shape: tuple[int, ...]
    bounds: tuple[float, float]
    num_classes: int
    dtype: str = "float32"

    @classmethod
    def of(cls, model: Any) -> InputSignature:
        """The signature of a ``modelshield.core.model.Model`` adapter."""
        lo, hi = model.bounds
        return cls(tuple(model.input_shape), (float(lo), float(hi)), int(model.num_classes))

    def json_schema(self) -> dict[str, Any]:
        """The request body's JSON schema (nested arrays of numbers), for the OpenAPI document."""
        item: dict[str, Any] = {"type": "number", "minimum": self.bounds[0], "maximum": self.bounds[1]}
        for size in reversed(self.input_shape):
            item = {"type": "array", "items": item, "minItems": size, "maxItems": size}
        return item


def declared_length_ok(content_length: str | None, max_bytes: int) -> None:
    """Refuse early when the client announces a body over the cap (no byte of it is read)."""
    if content_length is None:
        return
    try:
        n = int(content_length)
    except ValueError:
        raise RequestValidationError("Content-Length is not a number", status=400) from None
    if n < 0:
        raise RequestValidationError("Content-Length is negative", status=400)
    if n > max_bytes:
        raise RequestValidationError(f"body of {n} bytes is over the {max_bytes}-byte limit", status=413)


async def read_capped(chunks: AsyncIterator[bytes], max_bytes: int, timeout: float | None = None) -> bytes:
    """Read a streamed body, stopping as soon as it passes ``max_bytes`` (chunked uploads included) or has taken
    ``timeout`` seconds (408): uvicorn times out idle connections, not a request whose body stops half-way."""
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise RequestValidationError(f"body is over the {max_bytes}-byte limit", status=413)
                parts.append(chunk)
    except TimeoutError:
        raise RequestValidationError(
            f"the body did not arrive within {timeout:g} s ({size} bytes came)", status=408
        ) from None
    return b"".join(parts)


def json_depth_ok(body: bytes, max_depth: int) -> None:
    """Refuse JSON nested deeper than ``max_depth`` arrays/objects, judged on the raw bytes.

    Strings are blanked (they may hold brackets), everything but brackets is dropped, and the
    innermost pairs are peeled ``max_depth`` times; anything left is nested too deep (or broken,
    which the parser then reports).
    """
    shape = _STRINGS.sub(b'""', body).translate(_SQUARE, _NOT_BRACKETS)
    for _ in range(max_depth):
        if not shape:
            return
        shape = shape.replace(b"[]", b"")
    if shape:
        raise RequestValidationError(f"JSON is nested deeper than {max_depth} levels", status=400)


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: parsers disagree on which copy of a repeated key wins."""
    out = dict(pairs)
    if len(out) != len(pairs):
        raise RequestValidationError("JSON body repeats an object key", status=400)
    return out


def parse_json(body: bytes, max_depth: int) -> Any:
    """Parse a UTF-8 JSON body after the depth check; NaN/Infinity literals and repeated keys are refused."""
    json_depth_ok(body, max_depth)
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constants, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        # the parser's position, or Python's advice on a too-long integer (sys.set_int_max_str_digits), is not
        # the client's business
        reason = str(exc).split(":")[0] if isinstance(exc, json.JSONDecodeError) else str(exc).split(";")[0]
        raise RequestValidationError(f"body is not valid JSON: {reason}", status=400) from None


def batch_from_body(body: bytes, signature: InputSignature, *, max_batch: int, max_depth: int) -> np.ndarray:
    """Parse and check a predict body; JSON booleans are refused (numpy would silently read true as 1.0).

    Once ``batch_from_payload`` has accepted the payload it holds only the key "inputs" and numbers, so a
    ``true``/``false`` anywhere in the raw bytes can only be a boolean among the inputs.
    """
    x = batch_from_payload(parse_json(body, max_depth), signature, max_batch)
    if b"true" in body or b"false" in body:
        raise RequestValidationError("inputs must be numbers, not true/false", status=422)
    return x


def batch_from_payload(payload: Any, signature: InputSignature, max_batch: int) -> np.ndarray:
    """The (N, *input_shape) float32 batch in ``{"inputs": [...]}``, or a 413/422 saying what is wrong."""
    if not isinstance(payload, dict) or set(payload) != {"inputs"}:
        raise RequestValidationError('body must be a JSON object with exactly one key, "inputs"', status=422)
    inputs = payload["inputs"]
    if not isinstance(inputs, list) or not inputs:
        raise RequestValidationError('"inputs" must be a non-empty list of samples', status=422)
    if len(inputs) > max_batch:
        raise RequestValidationError(f"batch of {len(inputs)} samples is over the limit of {max_batch}", status=413)
    expected = "(N, " + ", ".join(map(str, signature.input_shape)) + ")"
    try:
        raw = np.asarray(inputs)
    except ValueError:
        raise RequestValidationError(
            f"inputs are ragged; every sample must have shape {expected}", status=422
        ) from None
    if raw.dtype.kind not in "iuf":
        raise RequestValidationError(f"inputs must be numbers, not {raw.dtype.name} values", status=422)
    if raw.shape[1:] != signature.input_shape:
        raise RequestValidationError(f"inputs have shape {raw.shape}, the model expects {expected}", status=422)
    with np.errstate(over="ignore"):  # too large for float32 becomes Inf, refused just below
        x = raw.astype(signature.dtype, copy=False)
    if not np.isfinite(x).all():
        raise RequestValidationError("inputs contain NaN or Inf (or numbers too large for float32)", status=422)
    lo, hi = signature.bounds
    tol = 1e-5 * max(1.0, hi - lo)
    low, high = float(x.min()), float(x.max())
    if low < lo - tol or high > hi + tol:
        raise RequestValidationError(
            f"inputs range over [{low:.4g}, {high:.4g}], outside the model's bounds [{lo:g}, {hi:g}]", status=422
        )
    return x
