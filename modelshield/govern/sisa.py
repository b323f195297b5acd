"""SISA training: Sharded, Isolated, Sliced, Aggregated — so that forgetting a record retrains one shard, not the model.

Bourtoule, Chandrasekaran, Choquette-Choo, Jia, Travers, Zhang, Lie, Papernot, "Machine Unlearning",
IEEE S&P 2021, https://arxiv.org/abs/1912.03817.

The training set is split into ``S`` disjoint shards (by a keyed hash of each record id, so a record's shard
never changes and cannot be steered by whoever picks the ids); each shard into ``R`` slices. A shard's model is
trained incrementally: stage ``r`` trains on slices ``0..r`` and is checkpointed. Predictions aggregate the
``S`` shard models (mean probabilities, or a majority vote). Unlearning a record reloads its shard's
checkpoint from before the record's slice and retrains the stages from there on the shard's remaining
records; every other shard is untouched, and the retrained model has provably never seen the record.

Work is counted as samples × epochs, the paper's measure, so it compares across machines.

Two kinds of shard learner: a torch network built from a class path (``package.module:Class``, as
``modelshield train`` does), checkpointed as safetensors; and a scikit-learn estimator, refitted on the shard
(no incremental slices: a refit sees the whole shard) and stored with skops, which loads without unpickling.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from modelshield.core.errors import InputError, MissingFileError
from modelshield.core.files import atomic_path
from modelshield.core.loading import build_arch, save_torch_model
from modelshield.core.model import Model

MANIFEST = "sisa.json"


def keyed_bucket(key: bytes, label: str, record_id: str, buckets: int) -> int:
    """HMAC-SHA-256 of ``label:record_id`` under ``key``, reduced to ``0..buckets-1``: stable and not steerable."""
    mac = hmac.new(key, f"{label}:{record_id}".encode(), hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big") % buckets


@dataclass(frozen=True)
class Placement:
    """Where each record goes: ``shard[i]`` and ``slice[i]`` for the i-th record id."""

    shard: np.ndarray
    slice: np.ndarray

    @classmethod
    def of(cls, record_ids: Sequence[str], key: bytes, shards: int, slices: int) -> Placement:
        return cls(
            np.array([keyed_bucket(key, "shard", r, shards) for r in record_ids], dtype=np.int64),
            np.array([keyed_bucket(key, "slice", r, slices) for r in record_ids], dtype=np.int64),
        )


class ShardLearner(ABC):
    """One shard's model: trained in stages from an optional checkpoint, saved, loaded, asked for probabilities."""

    kind: str
    incremental: bool
    """Whether stages continue from the previous checkpoint (torch) or refit from scratch (scikit-learn)."""

    @abstractmethod
    def fresh(self, seed: int) -> Any:
        """An untrained model."""

    @abstractmethod
    def fit(self, model: Any, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        """Train ``model`` on ``x``, ``y`` (one stage) and return it."""

    @abstractmethod
    def save(self, model: Any, path: Path) -> None: ...

    @abstractmethod
    def load(self, path: Path) -> Any: ...

    @abstractmethod
    def proba(self, model: Any, x: np.ndarray) -> np.ndarray:
        """(N, classes) probabilities."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON settings that rebuild this learner (stored in the manifest)."""

    @property
    @abstractmethod
    def epochs(self) -> int:
        """Passes over a stage's data, for the work count."""

    @property
    @abstractmethod
    def suffix(self) -> str: ...


class TorchLearner(ShardLearner):
    """A network from ``arch`` (``package.module:Class``) trained with Adam and cross-entropy, ``epochs`` per stage."""

    kind = "torch"
    incremental = True
    suffix = ".safetensors"

    def __init__(
        self,
        arch: str,
        arch_kwargs: dict[str, Any] | None = None,
        *,
        epochs: int = 5,
        lr: float = 3e-3,
        batch_size: int = 64,
    ) -> None:
        if epochs < 1 or batch_size < 1 or lr <= 0:
            raise InputError("epochs and batch size must be at least 1 and lr positive")
        self.arch, self.arch_kwargs = arch, dict(arch_kwargs or {})
        self._epochs, self.lr, self.batch_size = epochs, lr, batch_size
        build_arch(arch, self.arch_kwargs)  # fail now, not after the first shard

    @property
    def epochs(self) -> int:
        return self._epochs

    def fresh(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return build_arch(self.arch, self.arch_kwargs)

    def fit(self, model: nn.Module, x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
        gen = torch.Generator().manual_seed(seed)
        xt = torch.from_numpy(np.array(x, dtype=np.float32))  # a copy: pandas hands out read-only arrays
        yt = torch.from_numpy(np.array(y, dtype=np.int64))
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        model.train()
        # small batches run fastest on one thread, above all on a busy machine (see modelshield.demo)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for _ in range(self._epochs):
                perm = torch.randperm(len(xt), generator=gen)
                for i in range(0, len(xt), self.batch_size):
                    idx = perm[i : i + self.batch_size]
                    opt.zero_grad(set_to_none=True)
                    nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
                    opt.step()
        finally:
            torch.set_num_threads(threads)
        return model.eval()

    def save(self, model: nn.Module, path: Path) -> None:
        save_torch_model(model, path)

    def load(self, path: Path) -> nn.Module:
        from safetensors.torch import load_model

        net = build_arch(self.arch, self.arch_kwargs)
        load_model(net, os.fspath(path))
        return net.eval()

    def proba(self, model: nn.Module, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(model(torch.as_tensor(x, dtype=torch.float32)), dim=1).numpy()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "arch": self.arch,
            "arch_kwargs": self.arch_kwargs,
            "epochs": self._epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
        }


class SklearnLearner(ShardLearner):
    """A scikit-learn classifier, cloned unfitted for each shard and refitted on the shard's records."""

    kind = "sklearn"
    incremental = False
    suffix = ".skops"

    def __init__(self, estimator: Any) -> None:
        from sklearn.base import clone

        if not hasattr(estimator, "fit") or not hasattr(estimator, "predict_proba"):
            raise InputError(
                f"{type(estimator).__name__} has no fit/predict_proba; SISA needs a probabilistic classifier"
            )
        self.estimator = clone(estimator)

    @property
    def epochs(self) -> int:
        return 1

    def fresh(self, seed: int) -> Any:
        from sklearn.base import clone

        est = clone(self.estimator)
        if "random_state" in est.get_params():
            est.set_params(random_state=seed)
        return est

    def fit(self, model: Any, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        from threadpoolctl import threadpool_limits

        # a shard is small: BLAS threads only spin against each other (18 s instead of 0.4 s on a busy 2-core VM)
        with threadpool_limits(1):
            return model.fit(x.reshape(len(x), -1), y)

    def save(self, model: Any, path: Path) -> None:
        import skops.io as sio

        with atomic_path(path, mode=0o644) as tmp:
            sio.dump(model, os.fspath(tmp))

    def load(self, path: Path) -> Any:
        import skops.io as sio

        # only the types this learner's own estimator is made of are trusted; nothing else is loaded
        untrusted = sio.get_untrusted_types(file=os.fspath(path))
        allowed = set(sio.get_untrusted_types(data=sio.dumps(self.estimator)))
        if extra := sorted(set(untrusted) - allowed):
            raise InputError(f"{path} holds types the configured estimator does not use: {', '.join(extra[:5])}")
        return sio.load(os.fspath(path), trusted=untrusted)

    def proba(self, model: Any, x: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return np.asarray(model.predict_proba(x.reshape(len(x), -1)), dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        cls = type(self.estimator)
        params = self.estimator.get_params(deep=False)
        plain = {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool, type(None)))}
        return {
            "kind": self.kind,
            "estimator": f"{cls.__module__}:{cls.__qualname__}",
            "params": plain,
            "rebuildable": len(plain) == len(params),
        }

    @classmethod
    def rebuild(cls, desc: dict[str, Any]) -> SklearnLearner:
        """The learner a manifest describes: a scikit-learn class (nothing else is imported) with plain params."""
        import importlib

        module, _, name = str(desc.get("estimator", "")).partition(":")
        if not desc.get("rebuildable") or not module.startswith("sklearn.") or not name.isidentifier():
            raise InputError(f"cannot rebuild the estimator {desc.get('estimator')!r}; pass it to reopen the shards")
        try:
            estimator = getattr(importlib.import_module(module), name)(**desc["params"])
        except (ImportError, AttributeError, TypeError) as e:
            raise InputError(f"cannot rebuild {desc['estimator']}: {e}") from None
        return cls(estimator)


@dataclass
class Work:
    """Training done, in samples × epochs (Bourtoule et al.'s cost measure), and wall-clock seconds."""

    sample_epochs: int = 0
    seconds: float = 0.0
    shards: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"sample_epochs": self.sample_epochs, "seconds": round(self.seconds, 3), "shards": self.shards}


class SisaEnsemble:
    """S shard models trained SISA-style in ``directory`` (checkpoints plus ``sisa.json``).

    Example::

        ens = SisaEnsemble.train(dir, x, y, ids, TorchLearner("modelshield.demo:DigitsCNN"), key=k, shards=5)
        work = ens.unlearn(x_left, y_left, ids_left, removed=["r17"])
    """

    def __init__(self, directory: Path, learner: ShardLearner, manifest: dict[str, Any]) -> None:
        self.directory, self.learner, self.manifest = directory, learner, manifest
        self._models: dict[int, Any] = {}

    @property
    def shards(self) -> int:
        return int(self.manifest["shards"])

    @property
    def slices(self) -> int:
        return int(self.manifest["slices"])

    @property
    def num_classes(self) -> int:
        return int(self.manifest["num_classes"])

    def shard_records(self, shard: int) -> list[str]:
        """The record ids the shard's current model was trained on (the manifest's account of it)."""
        return [r for stage in self.manifest["trained_on"][str(shard)] for r in stage]

    def _checkpoint(self, shard: int, stage: int) -> Path:
        return self.directory / f"shard{shard:03d}" / f"slice{stage:03d}{self.learner.suffix}"

    @classmethod
    def train(
        cls,
        directory: Path | str,
        x: np.ndarray,
        y: np.ndarray,
        record_ids: Sequence[str],
        learner: ShardLearner,
        *,
        key: bytes,
        shards: int = 5,
        slices: int = 1,
        seed: int = 0,
        groups: Sequence[str] | None = None,
    ) -> tuple[SisaEnsemble, Work]:
        """Train every shard from scratch; ``key`` places records (keep it: unlearning needs the same one).

        ``groups`` (e.g. the data subject of each record) places a group's records in one shard and one slice,
        so erasing a subject retrains one shard from one checkpoint; the default places each record by its id."""
        ids = _checked_ids(record_ids, len(x), len(y))
        _check_groups(groups, ids)
        if shards < 1 or slices < 1:
            raise InputError(f"shards and slices must be at least 1, got {shards} and {slices}")
        if not learner.incremental and slices != 1:
            raise InputError(f"a {learner.kind} learner refits a whole shard; use slices=1")
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        labels = np.asarray(y, dtype=np.int64)
        manifest: dict[str, Any] = {
            "format": "modelshield-sisa/1",
            "paper": "Bourtoule et al., Machine Unlearning, IEEE S&P 2021",
            "learner": learner.describe(),
            "shards": shards,
            "slices": slices,
            "seed": seed,
            "num_classes": int(labels.max()) + 1 if len(labels) else 0,
            "key_id": hashlib.sha256(b"modelshield-sisa-key:" + key).hexdigest()[:16],
            "trained_on": {},
            "checkpoints": {},
        }
        manifest["placement"] = "group" if groups is not None else "record"
        ens = cls(path, learner, manifest)
        work = ens._train_shards(range(shards), np.asarray(x), labels, ids, key, start={}, groups=groups)
        ens.save_manifest()
        return ens, work

    @classmethod
    def open(cls, directory: Path | str, learner: ShardLearner | None = None) -> SisaEnsemble:
        """Reopen a trained ensemble, rebuilding its learner from the manifest unless one is given."""
        path = Path(directory)
        file = path / MANIFEST
        if not file.is_file():
            raise MissingFileError(f"{path} has no {MANIFEST}; it is not a SISA directory")
        try:
            manifest = json.loads(file.read_text())
            desc = manifest["learner"]
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{file} is not a SISA manifest") from None
        if learner is None and desc.get("kind") == "sklearn":
            learner = SklearnLearner.rebuild(desc)
        elif learner is None:
            learner = TorchLearner(
                desc["arch"], desc["arch_kwargs"], epochs=desc["epochs"], lr=desc["lr"], batch_size=desc["batch_size"]
            )
        return cls(path, learner, manifest)

    def check_key(self, key: bytes) -> None:
        if hashlib.sha256(b"modelshield-sisa-key:" + key).hexdigest()[:16] != self.manifest["key_id"]:
            raise InputError("this is not the key the SISA ensemble was trained with; shard placement would differ")

    def _train_shards(
        self,
        shards: Sequence[int],
        x: np.ndarray,
        y: np.ndarray,
        ids: list[str],
        key: bytes,
        start: dict[int, int],
        groups: Sequence[str] | None,
    ) -> Work:
        place = Placement.of(list(groups) if groups is not None else ids, key, self.shards, self.slices)
        work = Work(shards=list(shards))
        t0 = time.perf_counter()
        for s in shards:
            first = start.get(s, 0)
            seed = int(self.manifest["seed"]) * 1000 + s
            model = self.learner.load(self._checkpoint(s, first - 1)) if first > 0 else self.learner.fresh(seed)
            stages: list[list[str]] = self.manifest["trained_on"].get(str(s), [])[:first]
            digests: list[str] = self.manifest["checkpoints"].get(str(s), [])[:first]
            for r in range(first, self.slices):
                seen = (place.shard == s) & (place.slice <= r)
                if not self.learner.incremental:
                    model = self.learner.fresh(seed)
                model = self.learner.fit(model, x[seen], y[seen], seed + 7919 * r)
                work.sample_epochs += int(seen.sum()) * self.learner.epochs
                ckpt = self._checkpoint(s, r)
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                self.learner.save(model, ckpt)
                stages.append([ids[i] for i in np.flatnonzero((place.shard == s) & (place.slice == r))])
                digests.append(hashlib.sha256(ckpt.read_bytes()).hexdigest())
            self.manifest["trained_on"][str(s)] = stages
            self.manifest["checkpoints"][str(s)] = digests
            self._models[s] = model
        work.seconds = time.perf_counter() - t0
        return work

    def save_manifest(self) -> None:
        """Write ``sisa.json`` (after training, unlearning, or adding keys of one's own to ``manifest``)."""
        with atomic_path(self.directory / MANIFEST, mode=0o644) as tmp:
            tmp.write_text(json.dumps(self.manifest, indent=1, sort_keys=True))

    def locate(self, record_ids: Sequence[str]) -> dict[int, int]:
        """Shard → earliest slice holding any of ``record_ids``, from the manifest (ids it never saw are skipped)."""
        where: dict[str, tuple[int, int]] = {}
        for s, stages in self.manifest["trained_on"].items():
            for r, stage in enumerate(stages):
                for rid in stage:
                    where[rid] = (int(s), r)
        out: dict[int, int] = {}
        for rid in record_ids:
            if rid in where:
                s, r = where[rid]
                out[s] = min(r, out.get(s, r))
        return out

    def unlearn(
        self,
        x: np.ndarray,
        y: np.ndarray,
        record_ids: Sequence[str],
        removed: Sequence[str],
        *,
        key: bytes,
        groups: Sequence[str] | None = None,
    ) -> Work:
        """Forget ``removed``: retrain only the shards that held them, from the checkpoint before their earliest
        slice, on ``x``/``y``/``record_ids`` (and ``groups`` if it was trained with them) — the training data with
        the removed records already gone."""
        self.check_key(key)
        ids = _checked_ids(record_ids, len(x), len(y))
        _check_groups(groups, ids)
        if (groups is not None) != (self.manifest.get("placement") == "group"):
            raise InputError(f"this ensemble places records by {self.manifest.get('placement')}; pass groups to match")
        gone = set(removed)
        if leaked := gone & set(ids):
            raise InputError(f"{len(leaked)} removed record(s) are still in the data given for retraining")
        start = self.locate(sorted(gone))
        if not start:
            return Work()
        place = Placement.of(list(groups) if groups is not None else ids, key, self.shards, self.slices)
        for s in start:
            now = {ids[i] for i in np.flatnonzero(place.shard == s)}
            if now != set(self.shard_records(s)) - gone:
                raise InputError(
                    f"the records given for shard {s} differ from those it was trained on (less the removed ones); "
                    "pass the whole training set less the removed records, with the same ids and groups"
                )
        work = self._train_shards(
            sorted(start), np.asarray(x), np.asarray(y, dtype=np.int64), ids, key, start, groups=groups
        )
        self.save_manifest()
        return work

    def shard_proba(self, x: np.ndarray) -> np.ndarray:
        """(S, N, classes) probabilities of every shard model."""
        out = []
        for s in range(self.shards):
            if s not in self._models:
                self._models[s] = self.learner.load(self._checkpoint(s, self.slices - 1))
            p = self.learner.proba(self._models[s], x)
            if p.shape[1] < self.num_classes:  # a scikit-learn shard that saw fewer classes
                full = np.zeros((len(x), self.num_classes))
                full[:, self._models[s].classes_] = p
                p = full
            out.append(p)
        return np.stack(out)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Mean of the shard models' probabilities (the paper's soft aggregation)."""
        return np.asarray(self.shard_proba(x).mean(axis=0))

    def predict(self, x: np.ndarray, aggregation: str = "vote") -> np.ndarray:
        """Labels by majority vote of the shard models (ties to the lowest label), or by mean probabilities."""
        if aggregation == "mean":
            return np.asarray(self.predict_proba(x).argmax(axis=1))
        if aggregation != "vote":
            raise InputError(f"aggregation must be 'vote' or 'mean', not {aggregation!r}")
        votes = self.shard_proba(x).argmax(axis=2)  # (S, N)
        counts = np.apply_along_axis(np.bincount, 0, votes, minlength=self.num_classes)  # (classes, N)
        return np.asarray(counts.argmax(axis=0))

    def as_model(self, input_shape: tuple[int, ...], bounds: tuple[float, float] = (0.0, 1.0)) -> Model:
        """The ensemble as a :class:`~modelshield.core.model.Model` (log mean probabilities), for attacks and audits."""
        return SisaModel(self, input_shape, bounds)


class SisaModel(Model):
    """A SISA ensemble seen as a black-box classifier: log of the shard models' mean probabilities."""

    def __init__(self, ensemble: SisaEnsemble, input_shape: tuple[int, ...], bounds: tuple[float, float]) -> None:
        super().__init__()
        self.ensemble, self.input_shape, self.bounds = ensemble, tuple(input_shape), bounds
        self.num_classes = ensemble.num_classes

    def _scores(self, x: Tensor) -> Tensor:
        p = self.ensemble.predict_proba(x.detach().cpu().numpy())
        return torch.log(torch.as_tensor(p, dtype=torch.float32).clamp_min(1e-12))


def _check_groups(groups: Sequence[str] | None, ids: list[str]) -> None:
    if groups is not None and len(groups) != len(ids):
        raise InputError(f"{len(groups)} groups for {len(ids)} records: give one group per record")


def _checked_ids(record_ids: Sequence[str], nx: int, ny: int) -> list[str]:
    ids = [str(r) for r in record_ids]
    if not nx == ny == len(ids):
        raise InputError(f"{nx} inputs, {ny} labels and {len(ids)} record ids: they must be the same length")
    if len(set(ids)) != len(ids):
        raise InputError("record ids must be unique; SISA places and forgets records by id")
    return ids


__all__ = ["Placement", "SisaEnsemble", "SisaModel", "SklearnLearner", "ShardLearner", "TorchLearner", "Work"]
