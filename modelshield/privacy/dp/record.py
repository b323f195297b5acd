"""The spent privacy budget travels with the model: in the weights file and beside it.

``model.safetensors`` carries the :class:`~.training.DPReport` as JSON under the header metadata key
``modelshield.dp`` (so it stays with the weights wherever they are copied, and is covered by their
hash and signature), and ``model.json`` — the architecture reference ``modelshield harden`` writes
and ``load_model`` needs — carries the same object under ``privacy``. :func:`registry_metadata` is
what ``Registry.register(metadata=...)`` stores for a DP model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from modelshield.core.errors import FormatError
from modelshield.core.file_formats import check_safetensors
from modelshield.core.loading import save_torch_model
from modelshield.defenses.training.history import write_json_atomic
from modelshield.privacy.dp.training import FORMAT, DPReport

METADATA_KEY = "modelshield.dp"


def registry_metadata(report: DPReport) -> dict[str, Any]:
    """The budget as registry metadata: the headline figures, without the per-epoch history."""
    summary = {k: v for k, v in report.to_dict().items() if k != "history"}
    return {"privacy": summary}


def save_dp_model(
    module: nn.Module, report: DPReport, out: Path, info: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Write ``out/model.safetensors`` (budget in its header) and ``out/model.json`` (``info`` + ``privacy``)."""
    out.mkdir(parents=True, exist_ok=True)
    meta = report.to_dict()
    weights = save_torch_model(module, out / "model.safetensors", {METADATA_KEY: json.dumps(meta, sort_keys=True)})
    sidecar = write_json_atomic(out / "model.json", {**(info or {}), "weights": weights.name, "privacy": meta})
    return {"weights": weights, "model": sidecar}


def read_dp_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The DP budget recorded in a safetensors file's header, or None for a model trained without DP.

    Reads the header only; the tensors are never loaded.
    """
    from safetensors import safe_open

    check_safetensors(Path(path))
    with safe_open(os.fspath(path), framework="pt") as f:
        text = (f.metadata() or {}).get(METADATA_KEY)
    if text is None:
        return None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FormatError(f"{path} has a {METADATA_KEY} header entry that is not a {FORMAT} record")
    return meta
