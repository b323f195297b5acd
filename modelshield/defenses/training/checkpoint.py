"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder holds ``epoch-NNNN.safetensors`` (network weights, the best epoch's
weights, optimiser state tensors, RNG states, the method's carried tensors) and
``latest.json`` (epoch, history, early-stopping counters, optimiser scalars and hyper-
parameters, and the settings the run must be resumed with), which names its tensor file and
pins its SHA-256. Files are written under temporary names and renamed into place, the JSON
last, so a crash at any moment leaves the previous checkpoint intact and loadable.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from modelshield.core.errors import FormatError, InputError, MissingFileError
from modelshield.core.file_formats import check_safetensors
from modelshield.core.files import atomic_path, hash_file
from modelshield.defenses.training.history import TrainResult, read_json_object, write_json_atomic

FORMAT = "modelshield.train-checkpoint/1"
LATEST = "latest.json"
_TENSOR_FILE = re.compile(r"epoch-\d{4,}\.safetensors")
_REQUIRED = {"epoch": int, "tensors": str, "sha256": str, "optimizer": dict, "result": dict}


@dataclass
class LoopState:
    """Where a run stands between epochs: what a checkpoint must bring back."""

    epoch: int
    result: TrainResult
    best_metric: float | None = None
    bad_epochs: int = 0
    best_weights: dict[str, Tensor] | None = None


def has_checkpoint(folder: Path) -> bool:
    """True when ``folder`` holds a checkpoint to resume from."""
    return (folder / LATEST).is_file()


def _host(t: Tensor) -> Tensor:
    """A contiguous CPU copy that shares no storage (safetensors refuses shared tensors)."""
    return t.detach().to("cpu", copy=True).contiguous()


def _split_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Optimiser state as tensors (``optim.<param>.<name>``) and JSON-ready scalars and groups."""
    sd = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{name}"] = _host(value)
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "state": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], saved: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, entry in saved["state"].items():
        state.setdefault(int(idx), {}).update(entry)
    groups = []
    for current, stored in zip(optimizer.param_groups, saved["param_groups"], strict=True):
        # JSON turns tuples (Adam's betas) into lists; give hyper-parameters back their type.
        groups.append({k: tuple(v) if isinstance(current.get(k), tuple) else v for k, v in stored.items()})
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(
    folder: Path,
    *,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    method_tensors: dict[str, Tensor],
    shuffle: torch.Generator,
    state: LoopState,
    fingerprint: dict[str, Any],
) -> Path:
    """Write the checkpoint after epoch ``state.epoch``; drop the previous tensor file once replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    tensors = {f"model.{k}": _host(v) for k, v in module.state_dict().items()}
    if state.best_weights is not None:
        tensors.update({f"best.{k}": _host(v) for k, v in state.best_weights.items()})
    optim_tensors, optim_json = _split_optimizer(optimizer)
    tensors.update(optim_tensors)
    tensors.update({f"method.{k}": _host(v) for k, v in method_tensors.items()})
    tensors["rng.cpu"] = torch.get_rng_state()
    tensors["rng.shuffle"] = shuffle.get_state().cpu()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    name = f"epoch-{state.epoch:04d}.safetensors"
    with atomic_path(folder / name, mode=0o644) as tmp:  # fsynced before latest.json points at it
        save_file(tensors, os.fspath(tmp))
    previous = _read_latest(folder)["tensors"] if has_checkpoint(folder) else None
    write_json_atomic(
        folder / LATEST,
        {
            "format": FORMAT,
            "epoch": state.epoch,
            "tensors": name,
            "sha256": hash_file(folder / name)[0],
            "best_metric": state.best_metric,
            "bad_epochs": state.bad_epochs,
            "optimizer": optim_json,
            "fingerprint": fingerprint,
            "result": state.result.to_dict(),
        },
    )
    if previous and previous != name:
        (folder / previous).unlink(missing_ok=True)
    return folder / name


def _read_latest(folder: Path) -> dict[str, Any]:
    path = folder / LATEST
    meta = read_json_object(path, f"{folder} holds no training checkpoint ({LATEST} is missing)")
    if meta.get("format") != FORMAT:
        raise FormatError(f"{path} is not a modelshield training checkpoint ({FORMAT})")
    for key, kind in _REQUIRED.items():
        if not isinstance(meta.get(key), kind):
            raise FormatError(f"{path}: {key!r} is missing or not a {kind.__name__}; the checkpoint was altered")
    if not _TENSOR_FILE.fullmatch(meta["tensors"]):  # the name is joined to the folder, read, and later deleted
        raise FormatError(f"{path} names tensor file {meta['tensors']!r}, not epoch-NNNN.safetensors in its folder")
    return meta


def load_checkpoint(
    folder: Path,
    *,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    fingerprint: dict[str, Any],
) -> tuple[LoopState, dict[str, Tensor]]:
    """Restore weights, optimiser and RNG states in place; return the loop state and the method's tensors.

    Refuses a checkpoint written with other settings (method, ε, batch size, seed, data...)
    because continuing it would silently produce a different run.
    """
    from safetensors.torch import load_file

    meta = _read_latest(folder)
    stored = meta.get("fingerprint", {})
    changed = sorted(k for k in set(stored) | set(fingerprint) if stored.get(k) != fingerprint.get(k))
    if changed:
        detail = ", ".join(f"{k}: {stored.get(k)!r} → {fingerprint.get(k)!r}" for k in changed)
        raise InputError(
            f"the checkpoint in {folder} was written with other settings ({detail})",
            hint="resume with the original settings, or train into a new folder",
        )
    path = folder / str(meta["tensors"])
    if not path.is_file():
        raise MissingFileError(f"{path} is missing; the checkpoint in {folder} cannot be resumed")
    if hash_file(path)[0] != meta["sha256"]:
        raise FormatError(f"{path} does not match the SHA-256 recorded in {folder / LATEST}: it was altered")
    check_safetensors(path)
    tensors = load_file(os.fspath(path))
    device = next(module.parameters()).device
    module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")} or None
    # Optimiser tensors stay on the host: load_state_dict moves each where its policy wants it.
    try:
        _restore_optimizer(optimizer, {k: v for k, v in tensors.items() if k.startswith("optim.")}, meta["optimizer"])
        torch.set_rng_state(tensors["rng.cpu"])
        shuffle.set_state(tensors["rng.shuffle"].to(shuffle.get_state().device))
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        state = LoopState(
            epoch=meta["epoch"],
            result=TrainResult.from_dict(meta["result"]),
            best_metric=meta.get("best_metric"),
            bad_epochs=int(meta.get("bad_epochs", 0)),
            best_weights=best,
        )
    except (KeyError, TypeError, ValueError) as exc:  # fingerprint and hash matched, so the JSON was edited
        raise FormatError(f"the checkpoint in {folder} is inconsistent ({type(exc).__name__}: {exc})") from None
    method = {k[7:]: v.to(device) for k, v in tensors.items() if k.startswith("method.")}
    return state, method
