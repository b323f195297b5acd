"""What a training run reports: one record per epoch, and the run's outcome."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelshield.core.errors import FormatError, MissingFileError
from modelshield.core.files import atomic_output


@dataclass
class EpochRecord:
    """One epoch: mean training loss, validation accuracies, learning rate at its end, wall time."""

    epoch: int
    loss: float
    clean_accuracy: float | None
    robust_accuracy: float | None
    lr: float
    seconds: float


@dataclass
class TrainResult:
    """The run: its method and settings, the per-epoch history and how it ended."""

    method: str
    params: dict[str, Any]
    config: dict[str, Any]
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    resumed_from_epoch: int | None = None
    val_eps: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (what ``history.json`` holds)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        """Rebuild a result written by :meth:`to_dict`."""
        data = dict(data)
        data["history"] = [EpochRecord(**r) for r in data.get("history", [])]
        return cls(**data)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the result as JSON, atomically (a crash never leaves half a file)."""
        return write_json_atomic(Path(path), self.to_dict())


def read_json_object(path: Path, missing: str) -> dict[str, Any]:
    """A JSON object from ``path``; ``missing`` explains an absent file, bad JSON is a :class:`FormatError`."""
    if not path.is_file():
        raise MissingFileError(missing)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FormatError(f"{path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path} holds JSON but not an object")
    return data


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON next to ``path`` and rename it into place."""
    with atomic_output(path, mode=0o644) as f:
        f.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return path
